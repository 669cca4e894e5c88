"""nginx/OpenResty JSON access logs of a proxy in front of the OpenAI API.

nginx: `log_format … escape=json` lines whose field names the operator chose; the usual ones
are read (`$time_iso8601`/`$msec`, `$remote_addr`, `$request_uri`, `$status`, `$upstream_status`,
`$request_time`, `$request_body`, `$http_authorization`, `$upstream_http_x_request_id`,
`$upstream_http_openai_organization`, `$upstream_http_openai_processing_ms`). The response
body is not logged by nginx: input is estimated from the request body, output is unknown.
The key in `$http_authorization` is reduced at parse time and never stored.
"""

from __future__ import annotations

from typing import Any

from ..errors import RecordError
from ..schema import Call
from .base import Format, ParseContext
from .calls import call_from_bodies
from .coerce import as_float, as_int, as_str, first_non_empty, maybe_json, merge_metadata, parse_ts, reduce_key
from .openai_bodies import endpoint_from_path, is_request

_NGINX_TIME = ("time_iso8601", "time", "timestamp", "@timestamp", "msec", "time_local")
_NGINX_BODY = ("request_body", "body")


class NginxJsonFormat(Format):
    name = "nginx"
    priority = 40
    description = "nginx/OpenResty JSON access logs (log_format escape=json) of a proxy in front of the API"
    detection = "a JSON object with remote_addr and request_body (or request_uri ending in an OpenAI endpoint)"

    def detect(self, record: Any) -> bool:
        if not isinstance(record, dict) or "remote_addr" not in record:
            return False
        uri = as_str(record.get("request_uri")) or as_str(record.get("uri")) or ""
        return any(k in record for k in _NGINX_BODY) or endpoint_from_path(uri) is not None

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        if not isinstance(record, dict) or "remote_addr" not in record:
            return []
        uri = as_str(record.get("request_uri")) or as_str(record.get("uri")) or ""
        endpoint = endpoint_from_path(uri)
        if endpoint is None:
            return []  # some other location on the same server: not an API call
        body = next((record[k] for k in _NGINX_BODY if k in record), None)
        request = maybe_json(body) if body not in (None, "", "-") else None
        flags = []
        if body == "-" or (body is not None and request is None and body != ""):
            flags.append("request_body_not_logged")
        raw_ts = first_non_empty(record, _NGINX_TIME)
        if raw_ts is None:
            raise RecordError("no time field ($time_iso8601 or $msec) in the access log line")
        numeric = isinstance(raw_ts, int | float) or str(raw_ts).replace(".", "").isdigit()
        ts = parse_ts(raw_ts, "time", unit="s" if numeric else None)  # $msec is seconds with a fraction
        upstream = as_str(record.get("upstream_status"))
        status = as_int((upstream.split(",")[-1].strip() if upstream else None) or record.get("status"), "status")
        call = call_from_bodies(ctx, self.name, request=request if is_request(request) else None, ts=ts,
                                status_code=status, endpoint=endpoint)
        if flags:
            call.estimate_flags = ",".join(sorted(set((call.estimate_flags or "").split(",") + flags) - {""}))
        rid = as_str(record.get("upstream_http_x_request_id"))
        if rid and rid != "-":
            call.request_id = rid
            call.call_id = rid
        call.route = uri.split("?", 1)[0]
        xff = as_str(record.get("http_x_forwarded_for"))
        call.client_ip = (xff.split(",")[0].strip() if xff and xff != "-" else None) or as_str(record.get("remote_addr"))
        call.latency_ms = (as_float(record.get("request_time"), "request_time") or 0) * 1000 or None
        call.org_id = as_str(record.get("upstream_http_openai_organization"))
        call.project_id = as_str(record.get("upstream_http_openai_project"))
        reduce_key(call, record.get("http_authorization"), ctx.hasher)
        merge_metadata(call, ((k, record.get(k)) for k in ("upstream_http_openai_processing_ms", "http_user_agent",
                                                           "server_name", "host")), drop=("-",))
        return [call]
