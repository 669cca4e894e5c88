"""OpenTelemetry GenAI spans as written by the Collector's file exporter (OTLP JSON lines).

One line is a TracesData: `resourceSpans[].resource.attributes`, `scopeSpans[].spans[]`.
Attribute values are typed (`{stringValue|intValue|doubleValue|boolValue|arrayValue|kvlistValue}`),
int64 values and nanosecond times arrive as decimal strings (some emitters write numbers).
Sources: open-telemetry semantic-conventions `docs/gen-ai/` (gen_ai.* attributes, current and
deprecated names), opentelemetry-proto `trace/v1/trace.proto` JSON mapping, OpenLLMetry and
OpenLIT attribute names (gen_ai.prompt.N.*, gen_ai.completion.N.*, llm.user, gen_ai.usage.cost).
Spans that are not GenAI calls share the file and are skipped.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..schema import Call
from .base import Format, ParseContext
from .calls import call_from_bodies
from .coerce import as_bool, as_int, as_str, as_token_count, clean_model, first_non_empty, merge_metadata, parse_ts
from .openai_bodies import Usage

OPERATIONS = {
    "chat": "chat.completions", "text_completion": "completions", "completion": "completions",
    "embeddings": "embeddings", "embedding": "embeddings", "generate_content": "chat.completions",
    "responses": "responses",
}
USAGE_ATTRIBUTES = {  # current name first, then deprecated and vendor names
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens"),
    "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens"),
    "cached": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
    "total": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens"),
}
RESOURCE_KEYS = ("service.name", "service.namespace", "service.version", "deployment.environment",
                 "deployment.environment.name", "host.name", "k8s.namespace.name")


def attr_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return as_int(v["intValue"], "intValue")
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [attr_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return {kv.get("key"): attr_value(kv.get("value")) for kv in (v["kvlistValue"] or {}).get("values", [])}
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {kv["key"]: attr_value(kv.get("value")) for kv in items if isinstance(kv, dict) and "key" in kv}


def _indexed(a: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenLLMetry's flattened messages: gen_ai.prompt.0.role, gen_ai.prompt.0.content, …"""
    items: dict[int, dict[str, Any]] = {}
    for k, v in a.items():
        if k.startswith(prefix):
            idx, _, field = k[len(prefix):].partition(".")
            if idx.isdigit() and field:
                items.setdefault(int(idx), {})[field] = v
    return [items[i] for i in sorted(items)]


def _json_messages(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return None
    if not isinstance(value, list):
        return None
    out = []
    for m in value:
        if isinstance(m, dict):
            parts = m.get("parts")
            if isinstance(parts, list):  # semconv GenAI message schema: {role, parts: [{type: text, content}]}
                text = "".join(str(p.get("content", "")) for p in parts if isinstance(p, dict) and p.get("type") == "text")
                out.append({"role": m.get("role", "user"), "content": text})
            else:
                out.append({"role": m.get("role", "user"), "content": m.get("content")})
    return out


class OtelGenAIFormat(Format):
    name = "otel"
    priority = 10
    description = "OpenTelemetry GenAI spans from the Collector file exporter (OTLP JSON)"
    detection = "a JSON object with resourceSpans"

    def detect(self, record: Any) -> bool:
        return isinstance(record, dict) and isinstance(record.get("resourceSpans"), list)

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        if not self.detect(record):
            return []
        calls: list[Call] = []
        index = 0
        for rs in record["resourceSpans"]:
            if not isinstance(rs, dict):
                continue
            res = attributes((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                for span in (ss or {}).get("spans") or []:
                    if not isinstance(span, dict):
                        continue
                    call = self._span(span, res, ctx, index)
                    index += 1
                    if call is not None:
                        calls.append(call)
        return calls

    def _span(self, span: dict[str, Any], res: dict[str, Any], ctx: ParseContext, index: int) -> Call | None:
        a = attributes(span.get("attributes"))
        op = first_non_empty(a, ("gen_ai.operation.name", "llm.request.type"))
        provider = first_non_empty(a, ("gen_ai.provider.name", "gen_ai.system"))
        if op is None and provider is None and not any(k.startswith("gen_ai.usage") for k in a):
            return None  # not a GenAI call
        request_model = clean_model(first_non_empty(a, ("gen_ai.request.model",)))
        messages = _json_messages(a.get("gen_ai.input.messages")) or _indexed(a, "gen_ai.prompt.")
        for ev in span.get("events") or []:  # OpenLIT: events carrying the prompt / completion
            ea = attributes((ev or {}).get("attributes"))
            if ev.get("name") == "gen_ai.content.prompt" and not messages and isinstance(ea.get("gen_ai.prompt"), str):
                messages = [{"role": "user", "content": ea["gen_ai.prompt"]}]
        outputs = _json_messages(a.get("gen_ai.output.messages")) or _indexed(a, "gen_ai.completion.")
        endpoint = OPERATIONS.get(str(op), "chat.completions")
        if a.get("openai.api.type") == "responses":
            endpoint = "responses"
        request = None
        if messages:
            request = {"model": request_model, "messages": messages} if endpoint != "embeddings" else \
                {"model": request_model, "input": [m.get("content") for m in messages]}
        usage = Usage(**{field: as_token_count(first_non_empty(a, names), names[0]) for field, names in USAGE_ATTRIBUTES.items()})
        if endpoint == "embeddings" and usage.input is not None and usage.output is None:
            usage.output = 0
        has_usage = usage.input is not None or usage.output is not None
        status = span.get("status") or {}
        code = status.get("code")
        failed = code in (2, "2", "STATUS_CODE_ERROR")
        start = parse_ts(span.get("startTimeUnixNano"), "startTimeUnixNano", unit="ns")
        end = parse_ts(span.get("endTimeUnixNano"), "endTimeUnixNano", unit="ns") if span.get("endTimeUnixNano") else None
        response = None
        if outputs and not has_usage:
            response = {"object": "chat.completion", "choices": [{"message": {"content": o.get("content")}} for o in outputs]}
        error = (as_str(a.get("error.type")) or as_str(status.get("message")) or "error") if failed else None
        call = call_from_bodies(ctx, self.name, request=request, response=response, ts=start, endpoint=endpoint,
                                usage=usage if has_usage else None, index=index, error_type=error)
        rid = as_str(a.get("gen_ai.response.id"))
        if rid:
            call.call_id = rid
        elif span.get("spanId"):
            call.call_id = f"otel-{span.get('traceId', '')}-{span['spanId']}"
        call.model = clean_model(a.get("gen_ai.response.model")) or request_model
        call.model_requested = request_model
        call.service_tier = as_str(first_non_empty(a, (
            "openai.response.service_tier", "gen_ai.openai.response.service_tier",
            "openai.request.service_tier", "gen_ai.openai.request.service_tier")))
        user = first_non_empty(a, ("gen_ai.user", "llm.user", "gen_ai.request.user", "user.id", "enduser.id"))
        call.user = as_str(user) or call.user
        stream = as_bool(first_non_empty(a, ("gen_ai.is_streaming", "llm.is_streaming", "gen_ai.request.stream")))
        if stream is not None:
            call.stream = stream
        call.latency_ms = (end - start) / 1000 if end and start and end >= start else None
        call.route = as_str(first_non_empty(a, ("http.route", "url.path")))
        call.client_ip = as_str(first_non_empty(a, ("client.address", "net.peer.ip")))
        cost = a.get("gen_ai.usage.cost")
        merge_metadata(call, [(k, res.get(k)) for k in RESOURCE_KEYS] + [
            ("gen_ai.provider", provider), ("span.name", str(span.get("name", ""))), ("trace_id", span.get("traceId")),
            ("otel_cost_usd", repr(float(cost)) if isinstance(cost, int | float) else None)])
        return call
