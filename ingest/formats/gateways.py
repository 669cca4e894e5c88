"""Gateway access logs: Kong's AI Proxy (file-log plugin) and nginx/OpenResty JSON access logs.

Kong: one JSON object a line with Kong's own fields (`started_at` in epoch ms, `client_ip`,
`route`, `consumer`, `request`, `response`, `latencies`) and the AI plugin's `ai.proxy.usage.*`,
`ai.proxy.meta.*`, optional `ai.proxy.payload.{request,response}`. Kong 3.7-3.9 wrote
`ai.<plugin>.usage.prompt_token` / `completion_token` (singular); both are read.
Sources: Kong developer docs "AI Gateway audit log reference" and the file-log plugin's
"Log format" sample.

nginx: `log_format … escape=json` lines whose field names the operator chose; the usual ones
are read (`$time_iso8601`/`$msec`, `$remote_addr`, `$request_uri`, `$status`, `$upstream_status`,
`$request_time`, `$request_body`, `$http_authorization`, `$upstream_http_x_request_id`,
`$upstream_http_openai_organization`, `$upstream_http_openai_processing_ms`). The response
body is not logged by nginx: input is estimated from the request body, output is unknown.
The key in `$http_authorization` is reduced at parse time and never stored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import RecordError
from ..schema import Call
from .base import Format, ParseContext, as_float, as_int, as_str, as_token_count, get_path, parse_ts, reduce_key
from .calls import call_from_bodies
from .openai_bodies import Usage, endpoint_from_path, is_request


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return None
    return value


def _first_key(d: dict[str, Any], *names: str) -> Any:
    return next((d[n] for n in names if d.get(n) is not None), None)


def _kong_ai(record: dict[str, Any]) -> dict[str, Any] | None:  # noqa: D401
    ai = record.get("ai")
    if isinstance(ai, dict):
        for key in ("proxy", "ai-proxy", "ai-proxy-advanced"):
            if isinstance(ai.get(key), dict):
                return ai[key]
    flat = get_path(record, "ai.proxy")
    return flat if isinstance(flat, dict) else None


class KongAIFormat(Format):
    name = "kong"
    description = "Kong Gateway AI Proxy logs (file-log/http-log plugins)"
    detection = "a JSON object with started_at and ai.proxy (or ai.ai-proxy) usage/meta"

    def detect(self, record: Any) -> bool:
        return isinstance(record, dict) and "started_at" in record and _kong_ai(record) is not None

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        ai = _kong_ai(record) if isinstance(record, dict) else None
        if ai is None:
            return []  # Kong logs every route; only AI Proxy requests are calls
        usage_d: dict[str, Any] = ai["usage"] if isinstance(ai.get("usage"), dict) else {}
        meta: dict[str, Any] = ai["meta"] if isinstance(ai.get("meta"), dict) else {}
        payload: dict[str, Any] = ai["payload"] if isinstance(ai.get("payload"), dict) else {}
        request = _maybe_json(payload.get("request"))
        response = _maybe_json(payload.get("response"))
        req: dict[str, Any] = record["request"] if isinstance(record.get("request"), dict) else {}
        resp: dict[str, Any] = record["response"] if isinstance(record.get("response"), dict) else {}
        uri = as_str(req.get("uri")) or as_str(record.get("upstream_uri"))
        usage = Usage(
            input=as_token_count(_first_key(usage_d, "prompt_tokens", "prompt_token", "input_tokens"), "prompt_tokens"),
            output=as_token_count(_first_key(usage_d, "completion_tokens", "completion_token", "output_tokens"),
                                  "completion_tokens"),
            total=as_token_count(usage_d.get("total_tokens"), "total_tokens"),
        )
        details_in = usage_d.get("prompt_tokens_details") or {}
        details_out = usage_d.get("completion_tokens_details") or {}
        if isinstance(details_in, dict):
            usage.cached = as_token_count(details_in.get("cached_tokens"), "cached_tokens")
        if isinstance(details_out, dict):
            usage.reasoning = as_token_count(details_out.get("reasoning_tokens"), "reasoning_tokens")
        has_usage = usage.input is not None or usage.output is not None
        status = as_int(resp.get("status"), "response.status")
        call = call_from_bodies(
            ctx, self.name, request=request if is_request(request) else None,
            response=response if isinstance(response, dict) else None,
            ts=parse_ts(record.get("started_at"), "started_at", unit="ms"),
            status_code=status, endpoint=endpoint_from_path(uri), usage=usage if has_usage else None,
        )
        call.model_requested = as_str(meta.get("request_model")) or call.model_requested
        call.model = as_str(meta.get("response_model")) or call.model or call.model_requested
        route: dict[str, Any] = record["route"] if isinstance(record.get("route"), dict) else {}
        call.route = as_str(route.get("name")) or uri
        call.client_ip = as_str(record.get("client_ip"))
        consumer: dict[str, Any] = record["consumer"] if isinstance(record.get("consumer"), dict) else {}
        call.key_alias = as_str(consumer.get("username")) or as_str(consumer.get("custom_id"))
        if call.call_id.startswith("tt-") and as_str(req.get("id")):
            call.call_id = "kong-" + str(req["id"])
        call.request_id = as_str(req.get("id"))
        lat: dict[str, Any] = record["latencies"] if isinstance(record.get("latencies"), dict) else {}
        call.latency_ms = as_float(lat.get("request"), "latencies.request") or as_float(meta.get("llm_latency"), "llm_latency")
        md = call.metadata if call.metadata is not None else {}
        for k, v in (("provider", meta.get("provider_name")), ("kong.plugin_id", meta.get("plugin_id")),
                     ("kong.request_mode", meta.get("request_mode")), ("kong.cost_usd", usage_d.get("cost")),
                     ("kong.service", get_path(record, "service.name")),
                     ("kong.consumer_id", consumer.get("id")), ("kong.workspace", record.get("workspace_name"))):
            sv = as_str(v)
            if sv is not None:
                md[k] = sv
        call.metadata = md or None
        return [call]


_NGINX_TIME = ("time_iso8601", "time", "timestamp", "@timestamp", "msec", "time_local")
_NGINX_BODY = ("request_body", "body")


class NginxJsonFormat(Format):
    name = "nginx"
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
        request = _maybe_json(body) if body not in (None, "", "-") else None
        flags = []
        if body == "-" or (body is not None and request is None and body != ""):
            flags.append("request_body_not_logged")
        raw_ts = next((record[k] for k in _NGINX_TIME if record.get(k) not in (None, "")), None)
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
        md = call.metadata if call.metadata is not None else {}
        for k in ("upstream_http_openai_processing_ms", "http_user_agent", "server_name", "host"):
            if as_str(record.get(k)) not in (None, "-"):
                md[k] = str(record[k])
        call.metadata = md or None
        return [call]
