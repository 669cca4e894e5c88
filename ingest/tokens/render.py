"""Request and response bodies -> counting plans: the texts the model sees plus fixed overheads.

A plan is what the API renders, not the JSON that was sent: each message wrapped in its
framing, tool definitions as a TypeScript namespace, assistant tool calls and tool results
in history, a json_schema response format, images by their tiles. Parts that cannot be
counted exactly (audio, files, built-in tools, remote images of unknown size) add a flag.
"""

from __future__ import annotations

from typing import Any

from .chat import plan_chat
from .outputs import plan_output_texts, response_output_texts, response_tool_calls
from .plan import Plan
from .responses import plan_responses

# Modules: `plan` (the Plan), `chat` (Chat messages, tools, tool history), `responses` (Responses
# items), `response_format` (json_schema formats), `outputs` (generated texts). `ingest.formats`
# reads the output helpers from here.
__all__ = ["Plan", "plan_input", "plan_output_texts", "response_output_texts", "response_tool_calls"]


def _token_arrays_or_texts(value: Any, plan: Plan) -> None:
    """A string, a list of strings, one token array, or a list of token arrays (counted as given)."""
    if isinstance(value, str):
        plan.add(value)
    elif isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            plan.fixed += len(value)
            return
        for v in value:
            if isinstance(v, str):
                plan.add(v)
            elif isinstance(v, list):
                plan.fixed += len(v)


def plan_input(endpoint: str, request: dict[str, Any] | None, model: str | None, encoding: str = "") -> Plan:
    """The input plan of one request body (`encoding` is accepted for callers of the old API)."""
    plan = Plan()
    if request is None:
        plan.flags.append("no_request")
        return plan
    if endpoint in ("chat.completions", "batch.chat.completions"):
        plan_chat(plan, request, model)
    elif endpoint in ("responses", "batch.responses"):
        plan_responses(plan, request, model)
    elif endpoint in ("embeddings", "batch.embeddings"):
        _token_arrays_or_texts(request.get("input"), plan)
    elif endpoint in ("completions", "batch.completions"):
        _token_arrays_or_texts(request.get("prompt"), plan)
    else:
        plan.flags.append(f"endpoint_{endpoint}_not_counted")
    return plan
