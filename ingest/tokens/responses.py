"""Responses API requests: `instructions` and `input` items read as Chat messages, tools, `text.format`."""

from __future__ import annotations

from typing import Any

from .chat import _opens_with_system, plan_messages, plan_tool_choice, plan_tools
from .functions import function_defs
from .models import framing_for
from .plan import Plan, _json_text
from .response_format import plan_response_format


def _names_an_output_item(item: dict[str, Any]) -> bool:
    """A `function_call` item that names a Responses output item (`fc_…`): in its `id`, as SDKs replay a
    stored response, or as its `call_id`, as posit-dev/chatlas sends the output item's id back. Either costs
    `Framing.responses_stored_call` more than the same call named by a `call_…` id alone."""
    return (isinstance(item.get("id"), str) and bool(item["id"])) or str(item.get("call_id") or "").startswith("fc_")


def responses_items_as_messages(plan: Plan, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Responses `instructions` and `input` items as chat messages (tool calls, outputs, reasoning)."""
    items: list[dict[str, Any]] = []
    for key in ("previous_response_id", "conversation"):
        if request.get(key):
            plan.flags.append(f"{key}_not_counted")  # earlier turns are stored server-side, not in the request
    reasoning = request.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("mode") not in (None, "auto"):
        # A reasoning mode (`"pro"`) adds server-side input the request does not hold: pydantic-ai's
        # test_openai_responses_reasoning_mode_pro (gpt-5.6-sol) reports 1,549 input tokens for an 18-token request.
        plan.flags.append("reasoning_mode_not_counted")
    if request.get("prompt"):
        # A stored prompt (`{"id": "pmpt_...", "version", "variables"}`) is expanded server-side; its text is not
        # in the request (DataDog/dd-trace-py's response_with_prompt cassette: 28 tokens the request does not hold).
        plan.flags.append("prompt_not_counted")
    if isinstance(request.get("instructions"), str) and request["instructions"]:
        items.append({"role": "developer", "content": request["instructions"]})
    inp = request.get("input")
    if isinstance(inp, str):
        items.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        for item in inp:
            if not isinstance(item, dict):
                continue
            itype = item.get("type")
            if itype == "function_call":
                call = {"id": item.get("call_id"), "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                        "_stored": _names_an_output_item(item)}
                if items and items[-1].get("role") == "assistant" and items[-1].get("tool_calls") is not None \
                        and not items[-1].get("content"):
                    items[-1]["tool_calls"].append(call)
                else:
                    items.append({"role": "assistant", "tool_calls": [call], "_responses": True})
            elif itype == "function_call_output":
                items.append({"role": "tool", "content": _json_text(item.get("output")), "tool_call_id": item.get("call_id"),
                              "_responses": True})
            elif itype == "reasoning":
                plan.flags.append("reasoning_items_not_counted")
            elif itype in ("message", None):
                items.append({"role": item.get("role", "user"), "content": item.get("content")})
            else:
                plan.flags.append(f"input_{itype}_not_counted")
    return items


def plan_responses(plan: Plan, request: dict[str, Any], model: str | None) -> None:
    fr = framing_for(model)
    messages = responses_items_as_messages(plan, request)
    fns, _ = function_defs(request.get("tools"))
    plan_messages(plan, messages, model, fr, pad_system=bool(fns) and _opens_with_system(messages))
    plan.fixed += fr.reply
    plan_tools(plan, request.get("tools"), fr, bool(request.get("instructions")), responses=True,
               after_system=_opens_with_system(messages))
    if fns:
        plan_tool_choice(plan, request.get("tool_choice"), False, fr)
    text = request.get("text")
    if isinstance(text, dict):
        fmt = text.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            plan_response_format(plan, {"type": "json_schema", "json_schema": fmt}, fr)
