"""What OpenAI request and response bodies look like, in one place.

Every format that embeds OpenAI bodies (app logs, batch files, LiteLLM, Kong payloads,
nginx request bodies, SSE transcripts) goes through these functions, so usage shapes,
stream assembly and the estimation hand-off are defined once.
Source of the shapes: openai-python `src/openai/types/` (chat_completion.py,
chat_completion_chunk.py, completion_usage.py, responses/response_usage.py,
create_embedding_response.py, batch_create_params.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordError
from ..schema import Call
from ..tokens.request import request_endpoint
from .coerce import as_bool, as_int, as_str, as_token_count, clean_model, merge_metadata

RESPONSE_OBJECTS = {
    "chat.completion": "chat.completions",
    "response": "responses",
    "text_completion": "completions",
    "list": "embeddings",
}
PATH_ENDPOINTS = {
    "/chat/completions": "chat.completions",
    "/responses": "responses",
    "/embeddings": "embeddings",
    "/completions": "completions",
}
SYSTEM_HEAD_CHARS = 256
PENDING_STATUSES = ("queued", "in_progress")  # a Responses call in background mode that has not finished


def is_pending_response(obj: Any) -> bool:
    """A background-mode Responses object logged before it finished: no usage yet, nothing billed yet."""
    return isinstance(obj, dict) and obj.get("object") == "response" and obj.get("status") in PENDING_STATUSES


def endpoint_from_path(path: Any) -> str | None:
    """`/v1/chat/completions?x=1` -> `chat.completions`; deployment-style paths too."""
    s = as_str(path)
    if not s:
        return None
    s = s.split("?", 1)[0].rstrip("/")
    for suffix, endpoint in PATH_ENDPOINTS.items():
        if s.endswith(suffix):
            return endpoint
    return None


def is_request(obj: Any) -> bool:
    return isinstance(obj, dict) and "model" in obj and ("messages" in obj or "input" in obj or "prompt" in obj)


def is_response(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    kind = obj.get("object")
    if kind == "list":
        data = obj.get("data")
        return isinstance(data, list) and (not data or (isinstance(data[0], dict) and data[0].get("object") == "embedding"))
    return kind in RESPONSE_OBJECTS or is_error_body(obj)


def is_error_body(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("error"), dict) and "message" in obj["error"]


_CHUNK_OBJECTS = ("chat.completion.chunk", "text_completion")


def _is_chunk(ev: Any) -> bool:
    if not isinstance(ev, dict):
        return False
    if ev.get("object") in _CHUNK_OBJECTS and "choices" in ev:
        return True
    # Azure OpenAI's first chunk: content-filter results for the prompt, `object` and `model` empty
    return ev.get("object") == "" and "prompt_filter_results" in ev


def is_stream(obj: Any) -> bool:
    """A logged stream: a list of chunk/event objects, or an SSE transcript string.

    Chat chunks, legacy Completions chunks (`text_completion` objects in a list), Responses events;
    Azure streams open with a content-filter chunk whose `object` is empty.
    """
    if isinstance(obj, str):
        return obj.lstrip().startswith(("data:", "event:"))
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        first = obj[0]
        if _is_chunk(first) and (first.get("object") or (len(obj) > 1 and _is_chunk(obj[1])) or len(obj) == 1):
            return True
        return str(first.get("type", "")).startswith("response.")
    return False


@dataclass(slots=True)
class Usage:
    input: int | None = None
    cached: int | None = None
    output: int | None = None
    reasoning: int | None = None
    audio_in: int | None = None
    audio_out: int | None = None
    total: int | None = None


def usage_from_dict(u: Any) -> Usage | None:
    """Both usage shapes: Chat/Completions/Embeddings (`prompt_tokens`) and Responses (`input_tokens`)."""
    if not isinstance(u, dict):
        return None
    if "input_tokens" in u or "output_tokens" in u:
        d_in = u.get("input_tokens_details") or {}
        d_out = u.get("output_tokens_details") or {}
        usage = Usage(
            input=as_token_count(u.get("input_tokens"), "usage.input_tokens"),
            output=as_token_count(u.get("output_tokens"), "usage.output_tokens"),
            total=as_token_count(u.get("total_tokens"), "usage.total_tokens"),
        )
    elif "prompt_tokens" in u or "completion_tokens" in u:
        d_in = u.get("prompt_tokens_details") or {}
        d_out = u.get("completion_tokens_details") or {}
        usage = Usage(
            input=as_token_count(u.get("prompt_tokens"), "usage.prompt_tokens"),
            output=as_token_count(u.get("completion_tokens"), "usage.completion_tokens"),
            total=as_token_count(u.get("total_tokens"), "usage.total_tokens"),
        )
        if "completion_tokens" not in u:
            usage.output = 0  # embeddings: usage is {prompt_tokens, total_tokens}; nothing is generated
    else:
        return None
    if isinstance(d_in, dict):
        usage.cached = as_token_count(d_in.get("cached_tokens"), "cached_tokens")
        usage.audio_in = as_token_count(d_in.get("audio_tokens"), "prompt audio_tokens")
    if isinstance(d_out, dict):
        usage.reasoning = as_token_count(d_out.get("reasoning_tokens"), "reasoning_tokens")
        usage.audio_out = as_token_count(d_out.get("audio_tokens"), "completion audio_tokens")
    if usage.input is not None and usage.cached is not None and usage.cached > usage.input:
        raise RecordError(f"cached_tokens {usage.cached} exceed input tokens {usage.input}")
    return usage


def apply_usage(call: Call, usage: Usage) -> None:
    call.input_tokens = usage.input
    call.cached_input_tokens = usage.cached
    call.output_tokens = usage.output
    call.reasoning_tokens = usage.reasoning
    call.audio_input_tokens = usage.audio_in
    call.audio_output_tokens = usage.audio_out
    call.total_tokens = usage.total if usage.total is not None else (usage.input or 0) + (usage.output or 0)
    call.token_source = "reported"


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(parts) if parts else None
    return None


def system_prompt(req: dict[str, Any]) -> str | None:
    """The system/developer instructions: what distinguishes one feature's calls from another's."""
    instructions = req.get("instructions")
    if isinstance(instructions, str) and instructions:
        return instructions
    items = req.get("messages")
    if items is None and isinstance(req.get("input"), list):
        items = req["input"]
    if isinstance(items, list):
        for m in items:
            if isinstance(m, dict) and m.get("role") in ("system", "developer"):
                return _text_of(m.get("content"))
    return None


def fill_from_request(call: Call, req: dict[str, Any], store_system_prompt: bool = True) -> None:
    call.model_requested = clean_model(req.get("model"), "request model")
    if call.endpoint is None:
        call.endpoint = request_endpoint(req)
    user = as_str(req.get("user")) or as_str(req.get("safety_identifier"))
    if user and call.user is None:
        call.user = user
    stream = as_bool(req.get("stream"))
    if stream is not None:
        call.stream = stream
    tier = as_str(req.get("service_tier"))
    if tier and call.service_tier is None:
        call.service_tier = tier
    meta = req.get("metadata")
    if isinstance(meta, dict) and meta:
        merge_metadata(call, meta.items(), overwrite=False)
    sp = system_prompt(req)
    if sp:
        call.system_prompt_fp = hashlib.sha256(sp.encode()).hexdigest()[:16]
        if store_system_prompt:
            call.system_prompt_head = sp[:SYSTEM_HEAD_CHARS]


def fill_from_response(call: Call, resp: dict[str, Any]) -> Usage | None:
    """Id, model, tier, date and usage from a response body; error bodies set error_type."""
    if is_error_body(resp):
        err = resp["error"]
        call.error_type = as_str(err.get("type")) or as_str(err.get("code")) or "error"
        return None
    rid = as_str(resp.get("id"))
    if rid:
        call.call_id = rid
    obj = resp.get("object")
    call.endpoint = RESPONSE_OBJECTS.get(str(obj), call.endpoint) if obj != "chat.completion.chunk" else call.endpoint
    model = clean_model(resp.get("model"), "response model")
    if model:
        call.model = model
    tier = as_str(resp.get("service_tier"))
    if tier:
        call.service_tier = tier
    if obj == "response" and resp.get("status") in PENDING_STATUSES:
        return None  # background mode: not finished, no usage yet
    if obj == "response" and isinstance(resp.get("error"), dict) and resp.get("status") == "failed":
        call.error_type = as_str(resp["error"].get("code")) or "failed"
    if isinstance(resp.get("user"), str) and call.user is None:
        call.user = resp["user"]
    return usage_from_dict(resp.get("usage"))


# -- streams ---------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamSummary:
    """What a logged stream tells us once its chunks or events are put back together."""

    id: str | None = None
    endpoint: str | None = None
    model: str | None = None
    created: Any = None
    service_tier: str | None = None
    usage: Usage | None = None
    finished: bool = False
    error_type: str | None = None
    texts: list[str] = field(default_factory=list)


def assemble_stream(events: list[dict[str, Any]]) -> StreamSummary:
    """Chat chunks (content and tool-call argument deltas) or Responses events -> summary."""
    s = StreamSummary()
    tool_args: dict[tuple[int, int], list[str]] = {}
    content: dict[int, list[str]] = {}
    for ev in events:
        if ev.get("object") == "text_completion":  # legacy Completions stream
            s.endpoint = "completions"
            s.id = s.id or as_str(ev.get("id"))
            s.model = s.model or as_str(ev.get("model"))
            s.created = s.created or ev.get("created")
            if ev.get("usage"):
                s.usage = usage_from_dict(ev["usage"])
            for ch in ev.get("choices") or ():
                if isinstance(ch, dict):
                    idx = as_int(ch.get("index"), "choice index") or 0
                    if isinstance(ch.get("text"), str):
                        content.setdefault(idx, []).append(ch["text"])
                    if ch.get("finish_reason"):
                        s.finished = True
        elif ev.get("object") == "chat.completion.chunk":
            s.endpoint = "chat.completions"
            s.id = s.id or as_str(ev.get("id"))
            s.model = s.model or as_str(ev.get("model"))
            s.created = s.created or ev.get("created")
            s.service_tier = as_str(ev.get("service_tier")) or s.service_tier
            if ev.get("usage"):
                s.usage = usage_from_dict(ev["usage"])
            for ch in ev.get("choices") or ():
                if not isinstance(ch, dict):
                    continue
                idx = as_int(ch.get("index"), "choice index") or 0
                delta = ch.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    content.setdefault(idx, []).append(delta["content"])
                for tc in delta.get("tool_calls") or ():
                    fn = tc.get("function") or {}
                    slot = tool_args.setdefault((idx, as_int(tc.get("index"), "tool index") or 0), [])
                    if fn.get("name"):
                        slot.append(str(fn["name"]))
                    if isinstance(fn.get("arguments"), str):
                        slot.append(fn["arguments"])
                if ch.get("finish_reason"):
                    s.finished = True
        elif isinstance(ev.get("type"), str):
            etype = ev["type"]
            s.endpoint = "responses"
            resp = ev.get("response") if isinstance(ev.get("response"), dict) else None
            if resp:
                s.id = as_str(resp.get("id")) or s.id
                s.model = as_str(resp.get("model")) or s.model
                s.created = s.created or resp.get("created_at")
                s.service_tier = as_str(resp.get("service_tier")) or s.service_tier
            if etype in ("response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta"):
                if isinstance(ev.get("delta"), str):
                    content.setdefault(0, []).append(ev["delta"])
            elif etype in ("response.completed", "response.incomplete", "response.failed") and resp:
                s.finished = True
                s.usage = usage_from_dict(resp.get("usage")) or s.usage
                if etype == "response.failed" and isinstance(resp.get("error"), dict):
                    s.error_type = as_str(resp["error"].get("code")) or "failed"
            elif etype == "error":
                s.error_type = as_str(ev.get("code")) or "error"
    s.texts = ["".join(parts) for _, parts in sorted(content.items())]
    s.texts += ["".join(parts) for _, parts in sorted(tool_args.items())]
    return s
