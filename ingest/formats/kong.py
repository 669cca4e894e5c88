"""Kong Gateway AI Proxy logs (file-log / http-log plugins).

Kong: one JSON object a line with Kong's own fields (`started_at` in epoch ms, `client_ip`,
`route`, `consumer`, `request`, `response`, `latencies`) and the AI plugin's `ai.proxy.usage.*`,
`ai.proxy.meta.*`, optional `ai.proxy.payload.{request,response}`. Kong 3.7-3.9 wrote
`ai.<plugin>.usage.prompt_token` / `completion_token` (singular); both are read.
Sources: Kong developer docs "AI Gateway audit log reference" and the file-log plugin's
"Log format" sample.
"""

from __future__ import annotations

from typing import Any

from ..schema import Call
from .base import Format, ParseContext
from .calls import call_from_bodies
from .coerce import (
    as_float,
    as_int,
    as_str,
    as_token_count,
    first_non_empty,
    get_path,
    maybe_json,
    merge_metadata,
    parse_ts,
)
from .openai_bodies import Usage, endpoint_from_path, is_request


def _kong_ai(record: dict[str, Any]) -> dict[str, Any] | None:
    """The AI plugin's section: `ai.proxy` (or `ai.ai-proxy[-advanced]`), nested or as a dotted key."""
    ai = record.get("ai")
    if isinstance(ai, dict):
        for key in ("proxy", "ai-proxy", "ai-proxy-advanced"):
            section = ai.get(key)
            if isinstance(section, dict):
                return section
    flat = get_path(record, "ai.proxy")
    return flat if isinstance(flat, dict) else None


class KongAIFormat(Format):
    name = "kong"
    priority = 30
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
        request = maybe_json(payload.get("request"))
        response = maybe_json(payload.get("response"))
        req: dict[str, Any] = record["request"] if isinstance(record.get("request"), dict) else {}
        resp: dict[str, Any] = record["response"] if isinstance(record.get("response"), dict) else {}
        uri = as_str(req.get("uri")) or as_str(record.get("upstream_uri"))
        usage = Usage(
            input=as_token_count(first_non_empty(usage_d, ("prompt_tokens", "prompt_token", "input_tokens")), "prompt_tokens"),
            output=as_token_count(first_non_empty(usage_d, ("completion_tokens", "completion_token", "output_tokens")),
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
        merge_metadata(call, (
            ("provider", meta.get("provider_name")), ("kong.plugin_id", meta.get("plugin_id")),
            ("kong.request_mode", meta.get("request_mode")), ("kong.cost_usd", usage_d.get("cost")),
            ("kong.service", get_path(record, "service.name")),
            ("kong.consumer_id", consumer.get("id")), ("kong.workspace", record.get("workspace_name"))))
        return [call]
