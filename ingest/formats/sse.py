"""Raw SSE transcripts saved by apps or proxies: `event:`/`data:` lines, streams back to back.

A Chat Completions stream ends with `data: [DONE]`; a Responses stream ends with its
`response.completed` (or `.incomplete`/`.failed`) event. A stream that stops without either
is cut off: it is held while the file may still grow, and counted as interrupted once the
file is final. Source: OpenAI API reference "Streaming" (chat.completion.chunk objects,
Responses streaming events); openai-python `chat_completion_chunk.py`, `response_stream_event.py`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import RecordError
from ..schema import Call
from .base import Format, ParseContext
from .calls import call_from_bodies

_STATE = "sse_events"
_END_TYPES = ("response.completed", "response.incomplete", "response.failed")


class SseTranscriptFormat(Format):
    name = "sse"
    kind = "text"
    description = "Raw SSE transcripts of streamed Chat Completions or Responses calls"
    detection = "lines starting with `data: {` / `event: response.` / `data: [DONE]`"

    def detect(self, line: Any) -> bool:
        if isinstance(line, str):
            line = line.encode()
        return isinstance(line, bytes) and line.lstrip().startswith((b"data: {", b"data:{", b"event: response.", b"data: [DONE]"))

    def at_record_boundary(self, ctx: ParseContext) -> bool:
        return not ctx.extras.get(_STATE)

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        line = record.decode("utf-8", "replace").strip() if isinstance(record, bytes) else str(record).strip()
        events: list[dict[str, Any]] = ctx.extras.setdefault(_STATE, [])
        if not line.startswith("data:"):
            return []  # event:, id:, retry:, comments and blank lines belong to the stream around them
        payload = line[5:].strip()
        if payload == "[DONE]":
            return self._emit(ctx, interrupted=False)
        try:
            ev = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            raise RecordError(f"SSE data line is not JSON: {payload[:60]!r}") from None
        if not isinstance(ev, dict):
            raise RecordError("SSE data line is not a JSON object")
        out: list[Call] = []
        if ev.get("object") in ("chat.completion.chunk", "text_completion") and events and events[-1].get("id") \
                and events[-1].get("id") != ev.get("id"):
            out = self._emit(ctx, interrupted=True)  # a new stream began before the last one finished
            events = ctx.extras.setdefault(_STATE, [])
        events.append(ev)
        if ev.get("type") in _END_TYPES:
            out += self._emit(ctx, interrupted=False)
        return out

    def finish_file(self, ctx: ParseContext) -> list[Call]:
        return self._emit(ctx, interrupted=True)

    def _emit(self, ctx: ParseContext, interrupted: bool) -> list[Call]:
        events = ctx.extras.pop(_STATE, [])
        if not events:
            return []
        call = call_from_bodies(ctx, self.name, response=events)
        if interrupted and call.estimate_flags is None and call.token_source != "reported":
            call.estimate_flags = "stream_interrupted"
        return [call]
