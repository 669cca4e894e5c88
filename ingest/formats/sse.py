"""Raw SSE transcripts saved by apps or proxies: `event:`/`data:` lines, streams back to back.

A Chat Completions stream ends with `data: [DONE]`; a Responses stream ends with its
`response.completed` (or `.incomplete`/`.failed`) event. A stream that stops without either
is cut off: it is held while the file may still grow, and counted as interrupted once the
file is final or unchanged for `IngestOptions.open_record_timeout`. Source: OpenAI API reference
"Streaming" (chat.completion.chunk objects, Responses streaming events); openai-python
`chat_completion_chunk.py`, `response_stream_event.py`.

Should the writer append the rest of a stream already cut off, that remainder begins without the
stream's opening (a Chat chunk with `delta.role`, a `response.created` event). A Chat remainder
carries the response id and is kept, flagged `stream_remainder`: `calls`/`usage` fold it with the
cut-off row by `call_id`, keeping the cut-off row's estimate (the tail's output is not added to it)
unless the remainder reports usage, which wins. A Responses remainder has no id to fold by and gives
no row unless it reports usage (its `response.completed` names the response). Such a tail comes
only from a stream silent for over `open_record_timeout` (600 s), past the SDKs' own timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordError
from ..schema import Call
from .base import FileParser, Format, ParseContext
from .calls import call_from_bodies
from .sse_decode import DONE, sse_data

_END_TYPES = ("response.completed", "response.incomplete", "response.failed")


@dataclass(slots=True)
class OpenStream:
    """The events of the stream being read (empty between streams)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    midway: bool = False  # its first event is not a stream's first: the rest of a stream cut off before


class SseTranscriptFormat(Format):
    name = "sse"
    kind = "text"
    priority = 60
    description = "Raw SSE transcripts of streamed Chat Completions or Responses calls"
    detection = "lines starting with `data: {` / `event: response.` / `data: [DONE]`"

    def detect(self, record: Any) -> bool:
        line = record.encode() if isinstance(record, str) else record
        return isinstance(line, bytes) and line.lstrip().startswith((b"data: {", b"data:{", b"event: response.",
                                                                     b"data: [DONE]"))

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        return self.open_file(ctx).parse(record)

    def open_file(self, ctx: ParseContext, run_inputs: object | None = None) -> SseParser:
        return SseParser(self, ctx)


class SseParser(FileParser):
    """Collects one stream's events until its end marker (or the next stream's first chunk)."""

    def __init__(self, fmt: Format, ctx: ParseContext) -> None:
        super().__init__(fmt, ctx)
        self.state = OpenStream()

    def at_record_boundary(self) -> bool:
        return not self.state.events

    def parse(self, record: Any) -> list[Call]:
        line = record.decode("utf-8", "replace") if isinstance(record, bytes) else str(record)
        ev = sse_data(line)
        if ev is None:
            return []  # event:, id:, retry:, comments and blank lines belong to the stream around them
        if ev is DONE:
            return self._emit(interrupted=False)
        if not isinstance(ev, dict):
            raise RecordError("SSE data line is not a JSON object")
        events = self.state.events
        out: list[Call] = []
        if ev.get("object") in ("chat.completion.chunk", "text_completion") and events and events[-1].get("id") \
                and events[-1].get("id") != ev.get("id"):
            out = self._emit(interrupted=True)  # a new stream began before the last one finished
        if not self.state.events:
            self.state.midway = _continues_a_stream(ev)
        self.state.events.append(ev)
        if ev.get("type") in _END_TYPES:
            out += self._emit(interrupted=False)
        return out

    def finish_file(self) -> list[Call]:
        return self._emit(interrupted=True)

    def _emit(self, interrupted: bool) -> list[Call]:
        events, midway = self.state.events, self.state.midway
        self.state = OpenStream()
        if not events:
            return []
        call = call_from_bodies(self.ctx, self.format.name, response=events)
        tail_only = midway and call.token_source != "reported"  # an estimate of a stream's tail alone
        if tail_only and not _names_its_response(events):
            # The tail of a stream cut off before, without the response id that would fold it with the row
            # already stored (a Responses remainder): a second row would count the call twice. A Chat remainder
            # carries the id and is kept: the views fold it by `call_id`, and a stream whose start was never
            # logged (watch --read-from end started mid-stream) is not lost.
            return []
        if interrupted and call.estimate_flags is None and call.token_source != "reported":
            call.estimate_flags = "stream_interrupted"
        if tail_only:
            # Where the cut-off row exists the views keep that row (the first stored of two estimates), so the
            # tail's output is not added to it; the row says what it is.
            flags = set(call.estimate_flags.split(",")) if call.estimate_flags else set()
            call.estimate_flags = ",".join(sorted(flags | {"stream_remainder"}))
        return [call]


def _names_its_response(events: list[dict[str, Any]]) -> bool:
    """Whether the events carry the provider's response id (Chat chunks do; Responses deltas do not)."""
    return any(ev.get("id") or (isinstance(ev.get("response"), dict) and ev["response"].get("id")) for ev in events)


def _continues_a_stream(ev: dict[str, Any]) -> bool:
    """No stream begins with this event: a Chat chunk with choices but no `delta.role` (the first chunk
    carries the role; Azure's content-filter chunk has no choices), or a Responses event other than
    `response.created`. Legacy Completions chunks carry no role: never taken for a remainder."""
    if ev.get("object") == "chat.completion.chunk":
        choices = ev.get("choices")
        return bool(choices) and isinstance(choices, list) and not any(
            isinstance(ch, dict) and isinstance(ch.get("delta"), dict) and "role" in ch["delta"] for ch in choices)
    etype = ev.get("type")
    return isinstance(etype, str) and etype.startswith("response.") and etype != "response.created"
