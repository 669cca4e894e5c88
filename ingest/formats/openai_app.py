"""Application JSON-lines logs that embed OpenAI request and/or response bodies.

Found by shape: an object with `model` + `messages`/`input`/`prompt` is a request; an object
with `object` = chat.completion/response/list/text_completion (or an error body) is a
response; a list of `chat.completion.chunk`s or an SSE string is a stream. The context
(timestamp, key, user, route, IP, headers) comes from the mapping profile's paths.
"""

from __future__ import annotations

from typing import Any

from ..schema import Call
from .base import (
    Format,
    ParseContext,
    as_float,
    as_int,
    as_str,
    get_path,
    parse_ts,
    reduce_key,
)
from .calls import call_from_bodies
from .openai_bodies import endpoint_from_path, is_request, is_response, is_stream
from .profile import DEFAULT_PROFILE, Profile

_KEEP_HEADER_PREFIXES = ("x-ratelimit-", "openai-", "x-feature", "x-tenant", "x-team", "x-app", "x-user")
_HEADER_COLUMNS = {
    "openai-organization": "org_id",
    "openai-project": "project_id",
    "x-request-id": "request_id",
}
_SECRET_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "set-cookie", "proxy-authorization"}


def _first(record: dict[str, Any], paths: list[str]) -> Any:
    """First non-empty value among the paths; a plain key is one dict lookup (the hot path)."""
    for path in paths:
        v = record.get(path)
        if v is None and "." in path:
            v = get_path(record, path)
        if v is not None and v != "":
            return v
    return None


def _find_bodies(record: dict[str, Any], max_depth: int = 3) -> tuple[dict | None, Any]:
    """Breadth-first search for a request-shaped and a response-shaped (or stream) value."""
    request: dict | None = None
    response: Any = None
    frontier: list[Any] = [record]
    for _ in range(max_depth):
        nxt: list[Any] = []
        for obj in frontier:
            if request is None and is_request(obj):
                request = obj
            elif response is None and (is_response(obj) or is_stream(obj)):
                response = obj
            elif isinstance(obj, dict):
                nxt.extend(v for v in obj.values() if isinstance(v, dict | list) or is_stream(v))
        if request is not None and response is not None:
            break
        frontier = nxt
    return request, response


class OpenAIAppFormat(Format):
    name = "openai"
    description = ("Application JSON logs embedding OpenAI request/response bodies "
                   "(chat, responses, embeddings, completions, streams)")
    detection = ("a JSON object holding (at depth up to 3) a request body {model, messages|input|prompt} "
                 "or a response body {object: chat.completion|response|list|text_completion}")

    def __init__(self, profile: Profile = DEFAULT_PROFILE) -> None:
        self.profile = profile
        f = profile.fields
        self._paths: dict[str, list[str]] = {name: getattr(f, name) for name in (
            "timestamp", "api_key", "key_alias", "user", "route", "client_ip", "status_code", "latency_ms", "org_id",
            "project_id", "request_id", "url", "request", "response", "headers", "metadata_objects")}
        if profile is not DEFAULT_PROFILE:
            self.name = f"profile:{profile.name}"  # type: ignore[misc]

    def detect(self, record: Any) -> bool:
        if not isinstance(record, dict):
            return False
        if self.profile.when is not None and not self._passes_filter(record):
            return False
        req, resp = self._bodies(record)
        return req is not None or resp is not None

    def _passes_filter(self, record: dict[str, Any]) -> bool:
        f = self.profile.when
        assert f is not None
        v = get_path(record, f.field)
        if f.one_of is not None:
            return v in f.one_of
        return v == f.equals

    def _bodies(self, record: dict[str, Any]) -> tuple[dict | None, Any]:
        req = _first(record, self._paths["request"])
        resp = _first(record, self._paths["response"])
        if not isinstance(req, dict) or not is_request(req):
            req = None
        if not (is_response(resp) or is_stream(resp)):
            resp = None
        if self.profile.discover_bodies and (req is None or resp is None):
            found_req, found_resp = _find_bodies(record)
            req = req or found_req
            resp = resp if resp is not None else found_resp
        return req, resp

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        if not isinstance(record, dict):
            return []
        if self.profile.when is not None and not self._passes_filter(record):
            return []
        request, response = self._bodies(record)
        if request is None and response is None:
            return []
        f = self.profile.fields
        raw_ts = _first(record, self._paths['timestamp'])
        ts = parse_ts(raw_ts, "timestamp", unit=f.timestamp_unit) if raw_ts is not None else None
        status = as_int(_first(record, self._paths['status_code']), "status_code")
        if status is not None and not 100 <= status <= 599:
            status = None  # e.g. a `status: 1` that is not an HTTP status
        url = as_str(_first(record, self._paths['url']))
        route = as_str(_first(record, self._paths['route']))
        endpoint = endpoint_from_path(url) or endpoint_from_path(route)
        call = call_from_bodies(
            ctx, self.name, request=request, response=response, ts=ts, status_code=status, endpoint=endpoint
        )
        call.route = route
        call.client_ip = as_str(_first(record, self._paths['client_ip']))
        call.latency_ms = as_float(_first(record, self._paths['latency_ms']), "latency_ms")
        call.key_alias = as_str(_first(record, self._paths['key_alias']))
        call.org_id = as_str(_first(record, self._paths['org_id']))
        call.project_id = as_str(_first(record, self._paths['project_id']))
        call.request_id = as_str(_first(record, self._paths['request_id']))
        if call.user is None:
            user = _first(record, self._paths['user'])
            call.user = as_str(user) if not isinstance(user, dict) else None
        reduce_key(call, _first(record, self._paths['api_key']), ctx.hasher)
        self._apply_headers(call, record, ctx)
        self._apply_metadata(call, record)
        return [call]

    def _apply_headers(self, call: Call, record: dict[str, Any], ctx: ParseContext) -> None:
        for path in self._paths["headers"]:
            headers = _first(record, [path])
            if isinstance(headers, list):  # HAR-style [{name, value}]
                headers = {h.get("name"): h.get("value") for h in headers if isinstance(h, dict)}
            if not isinstance(headers, dict):
                continue
            for name, value in headers.items():
                low = str(name).lower()
                sval = as_str(value)
                if sval is None:
                    continue
                if low in ("authorization", "api-key", "x-api-key"):
                    if call.api_key_fp is None:
                        reduce_key(call, sval, ctx.hasher)
                    continue
                if low in _SECRET_HEADERS:
                    continue
                column = _HEADER_COLUMNS.get(low)
                if column and getattr(call, column) is None:
                    setattr(call, column, sval)
                elif low.startswith(_KEEP_HEADER_PREFIXES):
                    md = call.metadata if call.metadata is not None else {}
                    md.setdefault(low, sval)
                    call.metadata = md

    def _apply_metadata(self, call: Call, record: dict[str, Any]) -> None:
        f = self.profile.fields
        md = call.metadata if call.metadata is not None else {}
        for path in self._paths["metadata_objects"]:
            obj = _first(record, [path])
            if isinstance(obj, dict):
                for k, v in obj.items():
                    sv = as_str(v)
                    if sv is not None:
                        md.setdefault(str(k), sv)
        for name, dotted in f.metadata.items():
            sv = as_str(get_path(record, dotted))
            if sv is not None:
                md[name] = sv
        call.metadata = md or None
