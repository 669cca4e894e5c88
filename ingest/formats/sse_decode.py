"""The one SSE decoder: `data:` lines -> JSON events, for transcripts read line by line (the `sse`
format) and for streams logged whole as one string (inside app-log and proxy bodies)."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ..errors import RecordError

DONE: Final = object()  # returned by `sse_data` for the terminator line `data: [DONE]`


def sse_data(line: str) -> Any:
    """The payload of one SSE line: None for a line that is not `data:` (event:, id:, retry:,
    comments, blank), `DONE` for `data: [DONE]`, else the decoded JSON; RecordError if not JSON."""
    line = line.strip()
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return DONE
    try:
        return msgspec.json.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raise RecordError(f"SSE data line is not JSON: {payload[:60]!r}") from None


def parse_sse(text: str) -> list[dict[str, Any]]:
    """`data: {...}` lines of an SSE transcript -> event objects (`[DONE]` ends it)."""
    events: list[dict[str, Any]] = []
    for line in text.splitlines():
        obj = sse_data(line)
        if obj is None:
            continue
        if obj is DONE:
            break
        if isinstance(obj, dict):
            events.append(obj)
    return events
