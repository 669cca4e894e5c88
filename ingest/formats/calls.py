"""Build one Call from an OpenAI request and/or response as any format found them.

The billing rules live here, once: a rejected call (4xx/5xx, an error body, or an error the
format read from the log and passed in as `error_type`) keeps its row with `error_type` and
zero tokens, never estimated; a call with usage is `reported`; a call without usage (or with
part of it) is handed to `ingest.tokens` for estimation.
"""

from __future__ import annotations

from typing import Any

from ..errors import RecordError
from ..schema import Call
from ..tokens.render import response_output_texts, response_tool_calls
from ..tokens.request import EstimateRequest
from ..tool_fees import record_builtin_tool_calls
from .base import ParseContext
from .coerce import clean_model, parse_ts
from .openai_bodies import (
    Usage,
    apply_usage,
    assemble_stream,
    fill_from_request,
    fill_from_response,
    is_pending_response,
    is_stream,
)
from .sse_decode import parse_sse


def _set_ts(call: Call, ts: int | None, created: Any, ctx: ParseContext, flags: list[str]) -> None:
    """The record's time, else the response's `created`, else the file's mtime (flagged)."""
    call.ts = ts or (parse_ts(created, "response created", unit="s") if created is not None else 0) or 0
    if not call.ts:
        if ctx.fallback_ts is None:
            raise RecordError("no timestamp in the record or its response body")
        call.ts = ctx.fallback_ts
        flags.append("ts_from_file_mtime")


def call_from_bodies(
    ctx: ParseContext,
    fmt: str,
    *,
    request: dict[str, Any] | None = None,
    response: Any = None,
    ts: int | None = None,
    status_code: int | None = None,
    endpoint: str | None = None,
    usage: Usage | None = None,
    index: int = 0,
    error_type: str | None = None,
) -> Call:
    """`usage` given by the caller (a proxy's own counts) wins over the response body's.

    `error_type`: the log itself says the call failed (a proxy's failure status, a span's error
    status). It wins over what the bodies say, and the call is billed as rejected; such a call
    carries no estimate flags (nothing about it was estimated or guessed from its bodies)."""
    call = ctx.new_call(None, 0, fmt, index)
    call.endpoint = endpoint
    call.status_code = status_code
    flags: list[str] = []
    if request is not None:
        fill_from_request(call, request, ctx.store_system_prompt)
    body_usage: Usage | None = None
    output_texts: list[str] | None = None
    output_tool_calls = 0
    created: Any = None  # raw; parsed only if the log line has no timestamp of its own
    if response is not None and is_stream(response):
        events = parse_sse(response) if isinstance(response, str) else [e for e in response if isinstance(e, dict)]
        summary = assemble_stream(events)
        call.stream = True
        call.endpoint = call.endpoint or summary.endpoint
        if summary.id:
            call.call_id = summary.id
        call.model = clean_model(summary.model, "stream model") or call.model
        call.service_tier = summary.service_tier or call.service_tier
        call.error_type = summary.error_type
        body_usage = summary.usage
        output_texts = summary.texts
        created = summary.created
        if not summary.finished and body_usage is None:
            flags.append("stream_interrupted")
    elif is_pending_response(response):
        # Background mode, logged while queued/in_progress: the call exists (its id is the one a later
        # poll reports) but has used and billed nothing yet. Zero tokens, never estimated, flagged; the
        # finished response under the same id (reported usage) supersedes it in `calls`.
        fill_from_response(call, response)
        created = response.get("created_at")
        _set_ts(call, ts, created, ctx, flags)
        call.model = call.model or call.model_requested
        apply_usage(call, Usage(input=0, output=0, total=0))
        call.token_source = "estimated"
        flags.append(f"response_{response['status']}")
        return _finish(call, flags)
    elif isinstance(response, dict):
        body_usage = fill_from_response(call, response)
        created = response.get("created", response.get("created_at"))
        if body_usage is None and call.error_type is None:
            output_texts = response_output_texts(response)
            output_tool_calls = response_tool_calls(response)
    elif response is None and request is not None:
        flags.append("no_response")

    _set_ts(call, ts, created, ctx, flags)
    if call.model is None:
        call.model = call.model_requested
    if error_type is not None:
        call.error_type = error_type
        flags.clear()

    if (status_code is not None and status_code >= 400) or call.error_type:
        # The API rejected it: billed nothing, never estimated.
        if call.error_type is None:
            call.error_type = f"http_{status_code}"
        apply_usage(call, Usage(input=0, output=0, total=0))
        return _finish(call, flags)

    usage = usage or body_usage
    record_builtin_tool_calls(call, request, response)  # per-call tool fees
    if usage is not None and usage.input is not None and usage.output is not None:
        apply_usage(call, usage)
        return _finish(call, flags)
    if usage is not None:
        apply_usage(call, usage)  # keep the reported part; estimation fills the rest -> "mixed"
    endpoint_name = call.endpoint or "chat.completions"
    if endpoint_name == "embeddings" and output_texts is None:
        output_texts = []
    call.estimate_request = EstimateRequest(endpoint_name, call.model, request, output_texts, flags, output_tool_calls)
    call.token_source = "mixed" if usage is not None else "estimated"
    return _finish(call, flags)


def _finish(call: Call, flags: list[str]) -> Call:
    if flags:
        call.estimate_flags = ",".join(flags)
    return call
