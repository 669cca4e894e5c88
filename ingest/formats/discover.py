"""Find what an application log line holds, wherever the logger put it.

Loggers nest the call's context in their own ways: ECS under `http.request.headers`, pino under
`req.headers`, a middleware under `http.headers`, HAR-style `[{name, value}]` header lists, bodies
logged as JSON strings or inside lists of events. One bounded breadth-first walk finds the
request and response bodies (by shape), the key (any Authorization / api-key header), user, route,
URL, client IP, request id, status and timestamp (by name), and the dotted path of each, for
`formats suggest`. Shallower values win. A key is only ever handed on raw to `reduce_key`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import RecordError
from ..keys import looks_like_key, strip_scheme
from .coerce import embedded_json, parse_ts
from .openai_bodies import is_response, is_stream

MAX_DEPTH = 10  # levels of objects, lists and JSON strings below the line
MAX_NODES = 4000  # objects and lists visited per line: bounded work on any input
MAX_LIST_ITEMS = 200  # elements looked at per list
MAX_JSON_STRINGS = 32  # JSON-encoded strings decoded per line

# Names (lower-cased, without `_`, `-`, `@`) of the last key, or of `parent.key`, per field.
FIELD_NAMES: dict[str, frozenset[str]] = {
    "timestamp": frozenset({
        "timestamp", "time", "ts", "t", "datetime", "asctime", "loggedat", "eventtime", "timegenerated",
        "timeunixnano", "realtimetimestamp", "logtime"}),
    "user": frozenset({
        "user", "userid", "enduser", "enduserid", "user.id", "enduser.id", "usr.id", "user.name",
        "safetyidentifier"}),
    "route": frozenset({
        "route", "path", "http.route", "http.path", "url.path", "requestpath", "req.path", "endpointpath",
        "urlpath", "httproute", "routepattern"}),
    "url": frozenset({
        "url", "requesturl", "url.full", "url.original", "req.url", "request.url", "uri", "requesturi",
        "http.url", "http.target", "fullurl"}),
    "client_ip": frozenset({
        "clientip", "client.ip", "client.address", "remoteaddr", "remoteaddress", "remoteip", "sourceip",
        "source.ip", "source.address", "ip", "clientaddress", "peerip", "xforwardedfor", "realip", "xrealip"}),
    "request_id": frozenset({
        "requestid", "xrequestid", "req.id", "http.request.id", "request.id", "correlationid", "xcorrelationid"}),
    "status_code": frozenset({
        "statuscode", "status", "httpstatus", "res.statuscode", "response.status", "response.statuscode",
        "http.response.statuscode", "httpresponsestatuscode", "responsestatus", "httprequest.status"}),
}
KEY_NAMES = frozenset({"authorization", "apikey", "xapikey", "openaiapikey", "proxyauthorization", "xopenaikey"})
AZURE_KEY_NAMES = frozenset({"apikey", "xapikey"})
HEADER_CONTAINERS = frozenset({"headers", "requestheaders", "reqheaders", "httpheaders", "header"})
_NORM = re.compile(r"[_\-@\s]")
_AZURE_KEY = re.compile(r"[A-Za-z0-9]{32,100}")


# Generic names are trusted only near the top of the record (max dots in their path); `t` (CLEF's `@t`) only at the top.
_GENERIC = {"user": 2, "ip": 2, "path": 2, "status": 2, "time": 2, "ts": 2, "timestamp": 3, "url": 2, "uri": 2,
            "route": 3, "t": 0, "uid": 1}
_BY_NAME: dict[str, str] = {n: f for f, names in FIELD_NAMES.items() for n in names}  # one lookup per leaf
_LEAF_NAMES = frozenset(_BY_NAME) | KEY_NAMES  # a leaf under any other name (and parent) says nothing
_QUALIFIED_PARENTS = frozenset(n.rsplit(".", 1)[0] for n in _BY_NAME if "." in n)  # `parent.key` names' parents


def names_a_leaf(parent: str, key: str) -> bool:
    """Whether the walk would look at a scalar under `key` in an object under `parent` (normalized):
    what a fast path must decline, since the walk could take the value for some field."""
    return norm(key) in _LEAF_NAMES or parent in _QUALIFIED_PARENTS


@lru_cache(maxsize=4096)
def norm(name: str) -> str:
    """`X-Request-Id` -> `xrequestid`, `@timestamp` -> `timestamp` (dots kept: `user.id`). Keys repeat: cached."""
    return _NORM.sub("", name.lower())


def is_request_like(obj: Any) -> bool:
    """An OpenAI request body; Azure's carry no `model` (the deployment is in the URL)."""
    if not isinstance(obj, dict):
        return False
    if "model" in obj and ("messages" in obj or "input" in obj or "prompt" in obj):
        return True
    msgs = obj.get("messages")
    return isinstance(msgs, list) and bool(msgs) and isinstance(msgs[0], dict) and "role" in msgs[0]


@dataclass(slots=True)
class Found:
    """What one line holds and where (dotted paths, for `formats suggest`). Values are raw."""

    request: dict[str, Any] | None = None
    response: Any = None
    key: str | None = None  # raw key or Authorization value: reduce it, never store it
    key_azure: bool = False  # came from an `api-key` header (Azure keys have no `sk-` prefix)
    values: dict[str, Any] = field(default_factory=dict)  # field -> first value found
    paths: dict[str, str] = field(default_factory=dict)  # field (and request/response/api_key) -> path
    headers: list[dict[str, Any]] = field(default_factory=list)  # header objects (HAR lists turned into dicts)
    nodes: int = 0


def _path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _usable_ts(value: Any) -> bool:
    try:
        return parse_ts(value) is not None
    except (RecordError, OverflowError, ValueError):
        return False


def discover(record: Any, max_depth: int = MAX_DEPTH) -> Found:
    """One bounded breadth-first walk over `record`: bodies by shape, context fields by name."""
    found = Found()
    frontier: list[tuple[Any, str, str]] = [(record, "", "")]  # (value, path, parent key normalized)
    strings = 0
    for _depth in range(max_depth + 1):
        nxt: list[tuple[Any, str, str]] = []
        for obj, path, parent in frontier:
            if found.nodes >= MAX_NODES:
                return found
            found.nodes += 1
            if isinstance(obj, dict):
                if found.request is None and is_request_like(obj):
                    found.request, found.paths["request"] = obj, path
                    continue
                if found.response is None and is_response(obj):
                    found.response, found.paths["response"] = obj, path
                    continue
                if is_har_pair(obj):
                    _take(found, obj, path, parent)  # a single {name, value} pair
                    continue
                for k, v in obj.items():
                    if not isinstance(k, str):
                        continue
                    child = _path(path, k)
                    nk = norm(k)
                    kind = type(v)
                    if kind is list and len(v) == 1 and type(v[0]) is str and not v[0].startswith(("{", "[")):
                        v, child, kind = v[0], child + ".0", str  # Go's http.Header: every header value is a list of strings
                    # Cheap type tests first: most values are plain scalars (this runs for every key of a line).
                    if kind is str:
                        head = v[:1]
                        if head.isspace():
                            head = v.lstrip()[:1]
                        if head in ("d", "e") and found.response is None and is_stream(v):  # SSE transcript
                            found.response, found.paths["response"] = v, child
                        elif head in ("{", "[") and (decoded := _maybe_json(v, strings)) is not None:
                            strings += 1
                            nxt.append((decoded, child, nk))
                        elif nk in _LEAF_NAMES or parent in _QUALIFIED_PARENTS:
                            _leaf(found, nk, parent, v, child)
                    elif isinstance(v, dict | list):
                        if found.response is None and is_stream(v):  # a list of chunks or events
                            found.response, found.paths["response"] = v, child
                            continue
                        if nk in HEADER_CONTAINERS:
                            found.headers.append(_har_to_dict(v) if isinstance(v, list) else v)
                        nxt.append((v, child, nk))
                    elif v is not None and (nk in _LEAF_NAMES or parent in _QUALIFIED_PARENTS):
                        _leaf(found, nk, parent, v, child)  # numbers (decoders make no str/dict/list subclasses)
            elif isinstance(obj, list):
                if found.response is None and is_stream(obj):
                    found.response, found.paths["response"] = obj, path
                    continue
                for i, v in enumerate(obj[:MAX_LIST_ITEMS]):
                    if isinstance(v, dict | list):
                        nxt.append((v, _path(path, str(i)), parent))
                    elif isinstance(v, str) and (decoded := _maybe_json(v, strings)) is not None:
                        strings += 1
                        nxt.append((decoded, _path(path, str(i)), parent))
        frontier = nxt
        if not frontier:
            break
    return found


def _maybe_json(value: str, decoded_so_far: int) -> Any:
    if decoded_so_far >= MAX_JSON_STRINGS:
        return None
    return embedded_json(value)


def _har_keys(obj: dict[str, Any]) -> tuple[str, str] | None:
    """The name and value keys of a HAR-style pair: {name, value} (HAR, OTLP-ish) or {Name, Value} (.NET)."""
    if len(obj) > 3:
        return None
    for n, v in (("name", "value"), ("Name", "Value")):
        if n in obj and v in obj and isinstance(obj[n], str):
            return n, v
    return None


def is_har_pair(obj: dict[str, Any]) -> bool:
    """A single HAR-style `{name, value}` object (the walk reads it as one named value)."""
    return _har_keys(obj) is not None


def header_dict(headers: Any) -> dict[str, Any] | None:
    """A headers object as a dict: as logged, or from a HAR-style `[{name, value}]` list; else None."""
    if isinstance(headers, list):
        return _har_to_dict(headers)
    return headers if isinstance(headers, dict) else None


def _har_to_dict(items: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for h in items:
        if isinstance(h, dict) and (k := _har_keys(h)) is not None:
            out[h[k[0]]] = h[k[1]]
    return out


def _take(found: Found, pair: dict[str, Any], path: str, parent: str) -> None:
    n, v = _har_keys(pair) or ("name", "value")
    _leaf(found, norm(pair[n]), parent, pair.get(v), f"{path}.{v}")


def _leaf(found: Found, nk: str, parent: str, value: Any, path: str) -> None:
    if value is None or value == "" or isinstance(value, bool):
        return
    if nk in KEY_NAMES and isinstance(value, str):
        if found.key is None:
            key = strip_scheme(value)
            if looks_like_key(key):
                found.key, found.paths["api_key"] = value, path
            elif nk in AZURE_KEY_NAMES and _AZURE_KEY.fullmatch(key):
                found.key, found.key_azure, found.paths["api_key"] = value, True, path
        return
    if not isinstance(value, str | int | float):
        return
    qualified = _BY_NAME.get(f"{parent}.{nk}") if parent in _QUALIFIED_PARENTS else None
    bare = _BY_NAME.get(nk)
    if bare is not None and nk in _GENERIC and path.count(".") > _GENERIC[nk]:
        bare = None  # `status`, `user`, `path` deep inside some unrelated object say nothing about the call
    for name in (qualified, bare):
        if name is None or name in found.values:
            continue
        if name == "timestamp" and not _usable_ts(value):
            continue
        if name == "status_code" and not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            continue
        if name in ("user", "route", "url", "client_ip", "request_id") and not isinstance(value, str | int):
            continue
        found.values[name] = value
        found.paths[name] = path
        return
