"""Application JSON-lines logs that embed OpenAI request and/or response bodies.

Found by shape: an object with `model` + `messages`/`input`/`prompt` is a request; an object
with `object` = chat.completion/response/list/text_completion (or an error body) is a
response; a list of `chat.completion.chunk`s or an SSE string is a stream. The context
(timestamp, key, user, route, IP, headers) comes from the mapping profile's paths.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ..schema import Call
from .base import FileParser, Format, ParseContext
from .calls import call_from_bodies
from .coerce import (
    as_float,
    as_int,
    as_str,
    embedded_json,
    first_non_empty,
    get_path,
    merge_metadata,
    parse_ts,
    reduce_key,
)
from .discover import Found, discover, header_dict, is_request_like
from .openai_bodies import endpoint_from_path, is_response, is_stream
from .profile import DEFAULT_PROFILE, Profile

_KEEP_HEADER_PREFIXES = ("x-ratelimit-", "openai-", "x-feature", "x-tenant", "x-team", "x-app", "x-user")
_HEADER_COLUMNS = {
    "openai-organization": "org_id",
    "openai-project": "project_id",
    "x-request-id": "request_id",
}
_SECRET_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "set-cookie", "proxy-authorization"}


_NOTHING = Found()
_DEPLOYMENT = re.compile(r"/deployments/([^/?#]+)/")


def azure_deployment(url: str | None) -> str | None:
    """`/openai/deployments/<name>/chat/completions`: Azure OpenAI names the deployment, not the model."""
    m = _DEPLOYMENT.search(url or "")
    return m.group(1) if m else None


def route_of(url: str | None) -> str | None:
    """The path of an app URL (`/essays/grade?x=1` -> `/essays/grade`); an OpenAI API URL is no app route."""
    if not url or endpoint_from_path(url):
        return None
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    return path or None


_HOST_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$|^\[([0-9A-Fa-f:.]+)\]:\d+$")


def first_ip(value: str | None) -> str | None:
    """`X-Forwarded-For: client, proxy1` -> the client; Go's `RemoteAddr` `1.2.3.4:5678` -> `1.2.3.4`."""
    if not value:
        return None
    ip = value.split(",", 1)[0].strip()
    m = _HOST_PORT.match(ip)
    return (m.group(1) or m.group(2)) if m else (ip or None)


_DROP, _KEY, _SECRET, _COLUMN, _KEEP = range(5)  # what a header is to `apply_headers`


@lru_cache(maxsize=4096)
def _header_kind(name: str) -> tuple[str, int]:
    """(lower-cased name, what it is); a log repeats a handful of header names, so once per name."""
    low = name.lower()
    if low in ("authorization", "api-key", "x-api-key"):
        return low, _KEY
    if low in _SECRET_HEADERS:
        return low, _SECRET
    if low.startswith(_KEEP_HEADER_PREFIXES):
        return low, _KEEP  # a column if that column is still empty, else kept as metadata
    return low, _COLUMN if low in _HEADER_COLUMNS else _DROP


def apply_headers(call: Call, objects: list[dict[str, Any]], ctx: ParseContext) -> None:
    """Key, org/project/request-id columns and kept metadata from header objects, in order."""
    kept: list[tuple[str, str]] = []  # headers worth keeping as metadata, merged once at the end
    for headers in objects:
        for name, value in headers.items():
            low, kind = _header_kind(str(name))
            if kind in (_DROP, _SECRET):
                continue
            sval = as_str(value)
            if sval is None:
                continue
            if kind == _KEY:
                if call.api_key_fp is None:
                    reduce_key(call, sval, ctx.hasher, azure=low != "authorization")
                continue
            column = _HEADER_COLUMNS.get(low)
            if column and getattr(call, column) is None:
                setattr(call, column, sval)
            elif kind == _KEEP:
                kept.append((low, sval))
    if kept:
        merge_metadata(call, kept, overwrite=False)


class OpenAIAppFormat(Format):
    name = "openai"
    priority = 1000  # the generic shape (bodies found anywhere): tried after every specific format
    description = ("Application JSON logs embedding OpenAI request/response bodies "
                   "(chat, responses, embeddings, completions, streams)")
    detection = ("a JSON object holding, at any depth (also inside JSON strings and lists), a request body "
                 "{model, messages|input|prompt} or a response body {object: chat.completion|response|list|"
                 "text_completion} or a stream")

    def __init__(self, profile: Profile = DEFAULT_PROFILE) -> None:
        self.profile = profile
        f = profile.fields
        self._paths: dict[str, list[str]] = {name: getattr(f, name) for name in (
            "timestamp", "api_key", "key_alias", "user", "route", "client_ip", "status_code", "latency_ms", "org_id",
            "project_id", "request_id", "url", "request", "response", "headers", "metadata_objects")}
        if profile is not DEFAULT_PROFILE:
            self.name = f"profile:{profile.name}"
        self._last: tuple[Any, Found] | None = None

    def detect(self, record: Any) -> bool:
        if not isinstance(record, dict):
            return False
        if self.excludes(record):
            return False
        req, resp = self._bodies(record)
        return req is not None or resp is not None

    def excludes(self, record: Any) -> bool:
        """The profile's `when:` filter says this line is not an API call (skipped, never quarantined)."""
        return self.profile.when is not None and isinstance(record, dict) and not self._passes_filter(record)

    def _passes_filter(self, record: dict[str, Any]) -> bool:
        f = self.profile.when
        assert f is not None
        v = get_path(record, f.field)
        if f.one_of is not None:
            return v in f.one_of
        return bool(v == f.equals)

    def record_parser(self, ctx: ParseContext) -> FileParser:
        """The default profile's lines mostly share one envelope: read those directly (`fast_app`)."""
        from . import fast_app

        if self.profile is DEFAULT_PROFILE and fast_app.ENABLED:
            return fast_app.EnvelopeParser(self, ctx)
        return FileParser(self, ctx)

    def _discover(self, record: dict[str, Any]) -> Found:
        """One walk per record, shared by detect() and parse() of the same record."""
        if self._last is not None and self._last[0] is record:
            return self._last[1]
        found = discover(record)
        self._last = (record, found)
        return found

    def _bodies(self, record: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
        req = first_non_empty(record, self._paths["request"], dotted=True)
        resp = first_non_empty(record, self._paths["response"], dotted=True)
        if isinstance(req, str):
            req = embedded_json(req)  # a body logged as a JSON string
        if isinstance(resp, str) and not is_stream(resp):
            resp = embedded_json(resp)
        if not is_request_like(req):
            req = None
        if not (is_response(resp) or is_stream(resp)):
            resp = None
        if self.profile.discover_bodies and (req is None or resp is None):
            found = self._discover(record)
            req = req or found.request
            resp = resp if resp is not None else found.response
        return req, resp

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        if not isinstance(record, dict) or self.excludes(record):
            return []
        request, response = self._bodies(record)
        if request is None and response is None:
            return []
        f = self.profile.fields
        p = self._paths
        # Fields the profile's paths do not find are looked for at any depth (unless the profile says not to);
        # the walk runs once, and only when something is missing.
        lazy: list[Found] = []

        def found_() -> Found:
            if not lazy:
                lazy.append(self._discover(record) if self.profile.discover_bodies else _NOTHING)
            return lazy[0]

        def pick(name: str) -> Any:
            v = first_non_empty(record, p[name], dotted=True)
            if isinstance(v, dict | list):  # e.g. ECS/slog `user: {id: …}`: not the value itself
                v = None
            return v if v is not None else found_().values.get(name)

        raw_ts = first_non_empty(record, p["timestamp"], dotted=True)
        ts = parse_ts(raw_ts, "timestamp", unit=f.timestamp_unit) if raw_ts is not None else None
        if ts is None and "timestamp" in found_().values:
            ts = parse_ts(found_().values["timestamp"], "timestamp")
        status = as_int(pick("status_code"), "status_code")
        if status is not None and not 100 <= status <= 599:
            status = None  # e.g. a `status: 1` that is not an HTTP status
        url = as_str(pick("url"))
        route = as_str(pick("route")) or route_of(url)
        endpoint = endpoint_from_path(url) or endpoint_from_path(route)
        call = call_from_bodies(
            ctx, self.name, request=request, response=response, ts=ts, status_code=status, endpoint=endpoint
        )
        deployment = azure_deployment(url)
        if deployment:
            call.model_requested = call.model_requested or deployment
            call.model = call.model or deployment
            merge_metadata(call, [("azure_deployment", deployment)])
        call.route = route
        call.client_ip = first_ip(as_str(pick("client_ip")))
        call.latency_ms = as_float(first_non_empty(record, p["latency_ms"], dotted=True), "latency_ms")
        call.key_alias = as_str(first_non_empty(record, p["key_alias"], dotted=True))
        call.org_id = as_str(first_non_empty(record, p["org_id"], dotted=True))
        call.project_id = as_str(first_non_empty(record, p["project_id"], dotted=True))
        call.request_id = as_str(pick("request_id"))
        if call.user is None:
            user = pick("user")
            call.user = as_str(user) if not isinstance(user, dict) else None
        reduce_key(call, first_non_empty(record, p["api_key"], dotted=True), ctx.hasher)
        known = self.header_objects(record)
        apply_headers(call, known, ctx)
        if call.api_key_fp is None or lazy:
            found = found_()
            if call.api_key_fp is None and found.key is not None:
                reduce_key(call, found.key, ctx.hasher, azure=found.key_azure)
            # the ones found at depth that are not the known ones (the same object, or the same HAR list
            # turned into a dict again): applying one twice would file its columns as metadata
            apply_headers(call, [h for h in found.headers if h not in known], ctx)
        self._apply_metadata(call, record)
        return [call]

    def header_objects(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The header objects at the profile's paths (HAR-style lists turned into dicts)."""
        return [h for h in (header_dict(first_non_empty(record, [path], dotted=True))
                            for path in self._paths["headers"]) if h is not None]

    def _apply_metadata(self, call: Call, record: dict[str, Any]) -> None:
        f = self.profile.fields
        for path in self._paths["metadata_objects"]:
            obj = first_non_empty(record, [path], dotted=True)
            if isinstance(obj, dict):
                merge_metadata(call, obj.items(), overwrite=False)
        if f.metadata:
            merge_metadata(call, [(name, get_path(record, dotted)) for name, dotted in f.metadata.items()])
