"""Line dispatch: which format parses each line of one file, and what becomes of the line.

Every physical line ends as exactly one outcome (a call line, a quarantine row, or skipped), so
`lines == call_lines + quarantined + skipped` holds for every chunk. Container/cloud wrappers are
taken off first (`ingest.wrappers`); the file's format parses the application record, and only a
record it does not recognise pays for detection against the others (a mixed file). Reading the
file, offsets and chunk boundaries are `ingest.pipeline`'s job; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import RecordError
from .formats import FileParser, Format, ParseContext, RunInputs, detect_record
from .keys import scrub_prefix, scrub_text
from .schema import Call
from .sources import Line
from .wrappers import Inner, Unwrapper, apply_envelope

QUARANTINE_RAW_BYTES = 4096
# what a format's parser may raise on a record of a shape it did not expect: quarantined, never fatal
PARSE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)


def quarantine_row(path: str, offset: int, length: int, reason: str, raw: bytes | None, fmt: str | None,
                   keep: int = QUARANTINE_RAW_BYTES) -> dict[str, Any]:
    return {
        "source_file": scrub_text(path),
        "source_offset": offset,
        "length": length,
        "reason": scrub_text(reason)[:500],
        "raw": scrub_prefix(raw, keep) if raw is not None and keep > 0 else None,
        "source_format": fmt,
    }


class Chunk:
    """Calls and quarantine rows of one run of lines, waiting to be committed together."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = start
        self.calls: list[Call] = []
        self.bad: list[dict[str, Any]] = []
        self.lines = 0
        self.skipped = 0
        self.call_lines = 0  # lines that became (part of) calls: lines == call_lines + len(bad) + skipped
        self.repaired = 0  # lines whose invalid UTF-8 was replaced
        # the last point where no multi-line record was open: (offset, calls, bad, lines, skipped, call_lines)
        self.safe = (start, 0, 0, 0, 0, 0)

    def mark_safe(self) -> None:
        self.safe = (self.end, len(self.calls), len(self.bad), self.lines, self.skipped, self.call_lines)

    def cut_to_safe(self) -> None:
        """Drop what follows the last record boundary; it is read again next time."""
        self.end, n_calls, n_bad, self.lines, self.skipped, self.call_lines = self.safe
        del self.calls[n_calls:]
        del self.bad[n_bad:]


@dataclass
class FileState:
    """Everything that belongs to one file being read: its format (forced or detected), its static
    tags, the spec remembered with its offsets, and one parser per format met in it."""

    ctx: ParseContext
    format: Format | None  # None: nothing detected; each record is detected on its own
    forced: bool = False  # --format, the sources file or the remembered format said so: no fallback
    spec: str | None = None  # remembered with the source's offsets
    tags: dict[str, str] = field(default_factory=dict)
    run_inputs: RunInputs = field(default_factory=dict)
    max_line: int = 0  # the line cap, for the quarantine reason of an overlong line
    parsers: dict[str, FileParser] = field(default_factory=dict)

    def parser(self, fmt: Format) -> FileParser:
        """The file's parser for `fmt`, opened on first use (a mixed file may need several)."""
        p = self.parsers.get(fmt.name)
        if p is None:
            p = self.parsers[fmt.name] = fmt.open_file(self.ctx, self.run_inputs.get(fmt.name))
        return p

    @property
    def decodes_json(self) -> bool:
        return self.format is None or self.format.kind != "text"

    def at_boundary(self) -> bool:
        """No multi-line record is half read: neither a split container line nor a stream."""
        if self.ctx.unwrap is not None and not self.ctx.unwrap.idle:
            return False
        return self.format is None or self.parser(self.format).at_record_boundary()


class LineDispatcher:
    """Turns one file's lines into calls, quarantine rows and skips, into the chunk given."""

    def __init__(self, state: FileState) -> None:
        self.state = state

    def handle_line(self, line: Line, chunk: Chunk) -> None:
        st = self.state
        ctx = st.ctx
        chunk.lines += 1
        fmt_name = st.format.name if st.format else None
        if line.data is None:
            self._refuse(f"line of {line.length} bytes exceeds the cap of {st.max_line} bytes", chunk, line, None,
                         fmt_name)
            return
        data = line.data.strip()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if not data:
            chunk.skipped += 1
            return
        if ctx.unwrap is None:
            ctx.unwrap = Unwrapper()
        if st.format is not None and ctx.unwrap.idle:
            parser = st.parser(st.format)
            if parser.reads_lines:  # the format's fast path (`formats.fast_app`): a whole line read directly
                ctx.offset, ctx.record_index = line.offset, 0
                calls = parser.parse_line(data)
                if calls:
                    chunk.calls.extend(calls)
                    chunk.call_lines += 1
                    return
        inners = ctx.unwrap.feed(data, line.offset, decode=st.decodes_json)
        if inners is None:
            chunk.call_lines += 1  # a piece of a split line, joined with the next
            return
        self._handle_inners(inners, line, data, chunk)

    def finish_file(self, chunk: Chunk) -> None:
        """End of a file that will not grow: a held split line is complete as it is; an open stream is cut off."""
        st = self.state
        unwrap = st.ctx.unwrap
        if unwrap is not None and not unwrap.idle:
            inners = unwrap.flush(decode=st.decodes_json)
            if inners:
                first = inners[0].offset
                chunk.lines += 1  # the joined line is one more outcome (its pieces were counted as call lines)
                self._handle_inners(inners, Line(first, chunk.end - first, b""), b"", chunk)
        if st.format is not None:
            parser = st.parser(st.format)
            if not parser.at_record_boundary():
                chunk.calls.extend(parser.finish_file())

    def _handle_inners(self, inners: list[Inner], line: Line, data: bytes, chunk: Chunk) -> None:
        """The application records one physical line carried: the line counts once (call, bad or skipped)."""
        fmt = self.state.format
        ctx = self.state.ctx
        fmt_name = fmt.name if fmt else None
        n_bad = len(chunk.bad)
        got_calls = False
        for i, inner in enumerate(inners):
            ctx.offset, ctx.record_index = inner.offset, i
            chunk.repaired += inner.repaired
            if inner.error is not None:
                self._refuse(inner.error, chunk, line, data, fmt_name)
                continue
            if fmt is not None and fmt.kind == "text":
                if inner.data:  # a wrapper may carry an empty message
                    got_calls |= self._handle_text(inner.data, line, fmt, chunk)
                continue
            if inner.record is None:
                continue  # text carried by a wrapper, not JSON: not an API call
            calls = self._record_calls(inner.record, chunk, line, data)
            if calls:
                apply_envelope(calls, inner.envelope)
                chunk.calls.extend(calls)
                got_calls = True
        ctx.record_index = 0
        if len(chunk.bad) > n_bad + 1:
            # several bad records in one line (an OTLP or CloudWatch batch): one quarantine row for the line
            rows = chunk.bad[n_bad:]
            del chunk.bad[n_bad + 1:]
            chunk.bad[n_bad]["reason"] = "; ".join(f"record {i}: {r['reason']}" for i, r in enumerate(rows))[:500]
        if len(chunk.bad) > n_bad:
            return  # the line counts once, as quarantined (calls of its good records are kept all the same)
        if got_calls:
            chunk.call_lines += 1
        else:
            chunk.skipped += 1

    def _record_calls(self, record: Any, chunk: Chunk, line: Line, data: bytes) -> list[Call] | None:
        """Calls of one decoded record; None when it was quarantined; [] when it is not a call."""
        st = self.state
        # Parse with the file's format first (one pass); only a record it does not recognise pays for
        # detection against the others (a mixed file), or is refused when the format was forced.
        chosen = st.format or detect_record(record)
        calls = self._parse(chosen, record, chunk, line, data) if chosen is not None else []
        if calls is None:
            return None
        if not calls and chosen is not None and not _safe_detect(chosen, record):
            if chosen.excludes(record):
                return []  # the profile's `when:` filter: not an API call, skipped
            other = detect_record(record)
            if st.forced and other is not None:
                # Another format's API call the forced one cannot read: kept in quarantine, never dropped unseen.
                self._refuse(f"record does not have the shape of format {chosen.name} (it reads as {other.name})",
                             chunk, line, data, chosen.name)
                return None
            if other is not None and other is not chosen:
                return self._parse(other, record, chunk, line, data)
        if not calls and _reports_usage(record):
            # No format reads it, yet it reports tokens: a billed call of a shape or endpoint tokentrail does not
            # parse. Quarantined (visible, counted), never skipped as "not an API call".
            self._refuse("record reports token usage but no format reads it", chunk, line, data,
                         chosen.name if chosen else None)
            return None
        return calls  # [] when no format's API call (a health check, a startup line): skipped, forced or not

    def _refuse(self, reason: str, chunk: Chunk, line: Line, data: bytes | None, fmt_name: str | None) -> None:
        """Quarantine the whole physical line, by file and offset, with the reason."""
        chunk.bad.append(quarantine_row(self.state.ctx.source_file, line.offset, line.length, reason, data, fmt_name))

    def _parse(self, fmt: Format, record: Any, chunk: Chunk, line: Line, data: bytes) -> list[Call] | None:
        """The format's calls for a record, or None after quarantining it."""
        try:
            return self.state.parser(fmt).parse(record)
        except RecordError as exc:
            reason = str(exc)
        except PARSE_ERRORS as exc:
            reason = f"unexpected structure ({type(exc).__name__}: {exc})"
        self._refuse(reason, chunk, line, data, fmt.name)
        return None

    def _handle_text(self, data: bytes, line: Line, fmt: Format, chunk: Chunk) -> bool:
        """Formats that read raw lines (SSE transcripts, CSV) rather than one JSON object per line.
        True when the line is (part of) a call; a bad line is quarantined, anything else is skipped."""
        parser = self.state.parser(fmt)
        try:
            calls = parser.parse(data)
        except RecordError as exc:
            self._refuse(str(exc), chunk, line, data, fmt.name)
            return False
        except PARSE_ERRORS as exc:
            self._refuse(f"unexpected structure ({type(exc).__name__}: {exc})", chunk, line, data, fmt.name)
            return False
        chunk.calls.extend(calls)
        return bool(calls) or not parser.at_record_boundary()  # a call, or a line of a stream still being read


def _reports_usage(record: Any) -> bool:
    """`usage` with token counts at the top of the record or one level down (`response.usage`)."""
    if not isinstance(record, dict):
        return False
    for node in (record, *(v for v in record.values() if isinstance(v, dict))):
        usage = node.get("usage")
        if isinstance(usage, dict) and any(isinstance(k, str) and k.endswith("tokens") for k in usage):
            return True
    return False


def _safe_detect(fmt: Format, record: Any) -> bool:
    try:
        return fmt.detect(record)
    except (TypeError, ValueError, AttributeError, KeyError):
        return False
