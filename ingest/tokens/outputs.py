"""Output plans: the texts a response generated (content, refusals, tool calls, Responses items)."""

from __future__ import annotations

from typing import Any

from .models import is_reasoning_model
from .plan import Plan, _as_dict

RESPONSES_OUTPUT_END = 1  # a Responses output counts the token that ends the message
TOOL_CALL_OUTPUT = 7  # a generated tool call's wrapper beyond its name and arguments (most common, 31/87 cases)


def plan_output_texts(texts: list[str], endpoint: str, model: str | None, tool_calls: int = 0) -> Plan:
    """Generated text (content, refusals, tool-call names and arguments) -> output plan.

    `tool_calls` is how many of the texts are tool calls (`response_tool_calls`); each adds its
    wrapper. Measured on pydantic-ai's cassettes the wrapper varies (7 to 16 tokens), so tool-call
    outputs are flagged."""
    plan = Plan()
    for t in texts:
        plan.add(t)
    if endpoint in ("responses", "batch.responses") and texts:
        plan.fixed += RESPONSES_OUTPUT_END
    if tool_calls:
        plan.fixed += TOOL_CALL_OUTPUT * tool_calls
        plan.flags.append("tool_call_output_approx")
    if is_reasoning_model(model):
        plan.flags.append("reasoning_tokens_not_counted")
    return plan


def response_output_texts(resp: dict[str, Any]) -> list[str]:
    """Everything a non-streamed response generated: content, refusals, tool calls (parallel ones
    too), legacy `function_call`, and Responses output items (messages, function calls, refusals)."""
    out: list[str] = []
    for ch in resp.get("choices") or ():
        if not isinstance(ch, dict):
            continue
        msg = _as_dict(ch.get("message"), {})
        for key in ("content", "refusal"):
            if isinstance(msg.get(key), str):
                out.append(msg[key])
        for tc in msg.get("tool_calls") or ():
            fn = _as_dict(tc.get("function") if isinstance(tc, dict) else None, {})
            out.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
        fc = msg.get("function_call")
        if isinstance(fc, dict):
            out.append(str(fc.get("name", "")) + str(fc.get("arguments", "")))
        if isinstance(ch.get("text"), str):
            out.append(ch["text"])
    for item in resp.get("output") or ():
        if not isinstance(item, dict):
            continue
        for part in item.get("content") or ():
            if isinstance(part, dict):
                text = part.get("text") if isinstance(part.get("text"), str) else part.get("refusal")
                if isinstance(text, str):
                    out.append(text)
        if item.get("type") == "function_call":
            out.append(str(item.get("name", "")) + str(item.get("arguments", "")))
    return out


def response_tool_calls(resp: dict[str, Any]) -> int:
    """How many tool calls (incl. legacy `function_call`) a response generated."""
    n = 0
    for ch in resp.get("choices") or ():
        msg = _as_dict(ch.get("message") if isinstance(ch, dict) else None, {})
        n += len(msg.get("tool_calls") or ()) + isinstance(msg.get("function_call"), dict)
    n += sum(1 for item in resp.get("output") or () if isinstance(item, dict) and item.get("type") == "function_call")
    return n
