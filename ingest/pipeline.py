"""Reading one log file into chunks: lines -> calls and quarantine rows, ready to commit.

`FileIngester` turns one file's lines (from a verified offset) into `ChunkRows`; the multi-file
run that resolves sources and commits batches is `ingest.run`. Bad lines never stop a run: each
becomes a quarantine row naming file, offset and reason. Nothing here knows about rules or prices.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import pyarrow as pa

from .coverage import add_coverage
from .errors import FormatError, RecordError
from .formats import Detection, Format, ParseContext, decode_record, detect_record, detect_sample, get_format
from .formats.openai_batch import is_batch_input
from .keys import KeyHasher, scrub_prefix, scrub_text
from .schema import QUARANTINE_SCHEMA, Call, calls_to_table
from .sources import (
    DEFAULT_MAX_LINE,
    FileIdentity,
    LineReader,
    fingerprint,
    open_binary,
    read_head,
    sample_lines,
    tail_hash_open,
)
from .sources_file import SourcesFile, apply_tags
from .store import ChunkRows
from .tokens import TokenCounter, fill_estimates
from .wrappers import Inner, Unwrapper, apply_envelope, unwrap_sample

QUARANTINE_RAW_BYTES = 4096
# A chunk is committed at 8,000 lines or 16 MB of input, whichever comes first: memory is bounded by
# the chunk (decoded records and request bodies kept for estimation), not by the file (bench figure 4).
DEFAULT_CHUNK_LINES = 8_000
DEFAULT_CHUNK_BYTES = 16 << 20


@dataclass
class FileResult:
    path: str
    format: str | None
    lines: int = 0
    calls: int = 0
    quarantined: int = 0
    skipped: int = 0
    estimated: int = 0
    call_lines: int = 0
    repaired: int = 0  # lines kept with invalid UTF-8 replaced (U+FFFD); counted among `lines` as usual
    input_tokens: int = 0
    output_tokens: int = 0
    held_bytes: int = 0  # a partial last line waiting for its newline
    offset: int = 0  # where reading stopped (the committed checkpoint)
    more: bool = False  # stopped at max_chunks with data left
    note: str | None = None
    source_id: str | None = None
    not_a_log: bool = False  # none of the sampled first lines is JSON or a known text format: not read
    # coverage: calls whose key, user, route and timestamp (from the log, not the file's mtime) were found
    with_key: int = 0
    with_user: int = 0
    with_route: int = 0
    with_ts: int = 0


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    bytes_read: int = 0

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "lines": self.total("lines"),
            "calls": self.total("calls"),
            "quarantined": self.total("quarantined"),
            "skipped": self.total("skipped"),
            "repaired": self.total("repaired"),
            "estimated": self.total("estimated"),
            "input_tokens": self.total("input_tokens"),
            "output_tokens": self.total("output_tokens"),
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "per_file": [f.__dict__ for f in self.files],
        }


@dataclass
class IngestOptions:
    """How to read and parse; `jobs` > 1 parses in worker processes (this process still commits)."""

    format: str | None = None
    sources: SourcesFile | None = None  # per-path format/profile and static tags (`--sources`)
    chunk_lines: int = DEFAULT_CHUNK_LINES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_line: int = DEFAULT_MAX_LINE
    store_system_prompt: bool = True
    glob: str | None = None
    quarantine_raw_bytes: int = 4096  # 0: keep no raw bytes of bad lines (they may hold prompt text)
    jobs: int = 1


class FileChanged(Exception):
    """The file was truncated or replaced between identifying it and committing what was read."""


class _Chunk:
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


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class FileIngester:
    """Reads one file from a verified offset and yields chunks ready to commit. Commits nothing:
    the caller (`IngestRun`) batches chunks and hands them to the store."""

    def __init__(self, hasher: KeyHasher, options: IngestOptions, counter: TokenCounter | None = None,
                 extras: dict[str, Any] | None = None) -> None:
        self.hasher = hasher
        self.options = options
        self.counter = counter or TokenCounter()
        self.extras = extras if extras is not None else {}
        self._formats: dict[str, Format] = {}
        self._tags: dict[str, str] = {}
        self._spec: str | None = None
        self._forced: Format | None = self._format(options.format) if options.format else None  # this file's

    def _format(self, spec: str) -> Format:
        """A format by name or `profile:PATH`, loaded once per run."""
        if spec not in self._formats:
            self._formats[spec] = get_format(spec)
        return self._formats[spec]

    def _choose_format(self, path: Path, remembered: str | None, result: FileResult) -> tuple[str | None, dict[str, str]]:
        """The format spec for this file, and its static tags: --format, else its sources entry, else
        the format it was first read with (remembered with its offsets), else None (detect)."""
        entry = self.options.sources.settings_for(path) if self.options.sources is not None else None
        tags = entry.tags if entry is not None else {}
        chosen = self.options.format or (entry.format_name() if entry is not None else None)
        if chosen is not None and remembered is not None and chosen != remembered:
            result.note = f"was read as {remembered!r} before, now as {chosen!r} (as --format or the sources file says)"
        return chosen or remembered, tags

    def chunks(self, path: Path, source_id: str, ident: FileIdentity, offset: int, result: FileResult,
               final: bool | None = None, handle: BinaryIO | None = None,
               max_chunks: int | None = None, remembered_format: str | None = None) -> Iterator[ChunkRows]:
        """Read `path` (or the open plain-file `handle` for it) from `offset`, yielding chunks.

        `final`: the file will not grow again (compressed, or rotated away): a last line without
        a newline is taken as complete. `max_chunks` bounds the work done in one call. Counts go
        into `result` as each chunk is yielded (the caller commits it before asking for more).
        """
        if not ident.compressed and offset >= ident.size:
            return
        spec, self._tags = self._choose_format(path, remembered_format, result)
        try:
            self._forced = self._format(spec) if spec else None
        except FormatError as exc:  # a remembered profile that is gone: detect again, and say so
            if spec == remembered_format and spec != self.options.format:
                result.note = f"{exc}; detecting the format again"
                self._forced, spec = None, None
            else:
                raise
        fmt = self._forced
        if fmt is None:
            detection = self._detect(path, handle)
            fmt = detection.format
            if fmt is None and detection.not_a_log:
                result.not_a_log = True
                result.note = (f"not read: none of its first {detection.sampled} lines is JSON or a known log format "
                               "(use --format to force one)")
                return
        result.format = fmt.name if fmt else None
        self._spec = spec or (fmt.name if fmt else None)  # remembered with the source's offsets
        is_final = ident.compressed if final is None else final
        # `ingest` (final not given): a file no longer growing has its last line complete even without a
        # newline; a stream still open in it is held all the same (only a file known final cuts it off).
        last_line_whole = is_final or (final is None and _quiet(path, handle))
        ctx = ParseContext(
            source_file=str(path),
            source_fp=source_id,
            hasher=self.hasher,
            store_system_prompt=self.options.store_system_prompt,
            fallback_ts=int((os.fstat(handle.fileno()) if handle is not None else path.stat()).st_mtime * 1_000_000),
            extras=dict(self.extras),  # per-file state on top of the shared batch-input index
        )
        if fmt is not None:
            with contextlib.suppress(OSError):  # a rotated-away file may be gone by name
                fmt.prepare_file(path, ctx)
        with contextlib.ExitStack() as stack:
            fh = handle if handle is not None else stack.enter_context(open_binary(path))
            reader = LineReader(fh, offset, self.options.max_line, final=last_line_whole)
            chunk = _Chunk(offset)
            n_chunks = 0
            for line in reader:
                self._handle_line(line, fmt, ctx, chunk)
                chunk.end = line.offset + line.length
                if _at_boundary(fmt, ctx):
                    chunk.mark_safe()
                else:
                    continue
                if chunk.lines >= self.options.chunk_lines or chunk.end - chunk.start >= self.options.chunk_bytes:
                    yield self._finish(path, source_id, ident, chunk, result, fh)
                    chunk = _Chunk(chunk.end)
                    n_chunks += 1
                    if max_chunks is not None and n_chunks >= max_chunks:
                        result.more = True
                        result.offset = chunk.start
                        return
            if not _at_boundary(fmt, ctx):
                if is_final:
                    self._finish_file(fmt, ctx, chunk)  # a split line or stream cut off for good
                else:
                    chunk.cut_to_safe()  # wait for the rest of the record
                    reader.pending += reader.end - chunk.end
                    reader.end = chunk.end
            if chunk.lines:
                yield self._finish(path, source_id, ident, chunk, result, fh)
            result.held_bytes = reader.pending
            result.offset = reader.end
            if reader.error:
                result.note = f"{reader.error}: the lines before the damage were read, the rest is lost"

    def _detect(self, path: Path, handle: BinaryIO | None = None) -> Detection:
        """Sniff the first 50 lines (through the held descriptor if there is one), wrappers taken off.
        Bounded either way: an overlong first line is never held whole."""
        lines = os.pread(handle.fileno(), 1 << 20, 0).split(b"\n")[:50] if handle is not None else sample_lines(path)
        return detect_sample(unwrap_sample(lines))

    def _handle_line(self, line: Any, fmt: Format | None, ctx: ParseContext, chunk: _Chunk) -> None:
        chunk.lines += 1
        fmt_name = fmt.name if fmt else None
        if line.data is None:
            chunk.bad.append(quarantine_row(
                ctx.source_file, line.offset, line.length,
                f"line of {line.length} bytes exceeds the cap of {self.options.max_line} bytes", None, fmt_name))
            return
        data = line.data.strip()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if not data:
            chunk.skipped += 1
            return
        if ctx.unwrap is None:
            ctx.unwrap = Unwrapper()
        inners = ctx.unwrap.feed(data, line.offset, decode=fmt is None or fmt.kind != "text")
        if inners is None:
            chunk.call_lines += 1  # a piece of a split line, joined with the next
            return
        self._handle_inners(inners, line, data, fmt, ctx, chunk)

    def _handle_inners(self, inners: list[Inner], line: Any, data: bytes, fmt: Format | None, ctx: ParseContext,
                       chunk: _Chunk) -> None:
        """The application records one physical line carried: the line counts once (call, bad or skipped)."""
        fmt_name = fmt.name if fmt else None
        n_bad = len(chunk.bad)
        got_calls = False
        for i, inner in enumerate(inners):
            ctx.offset, ctx.record_index = inner.offset, i
            chunk.repaired += inner.repaired
            if inner.error is not None:
                chunk.bad.append(quarantine_row(ctx.source_file, line.offset, line.length, inner.error, data, fmt_name))
                continue
            if fmt is not None and fmt.kind == "text":
                if inner.data:  # a wrapper may carry an empty message
                    got_calls |= self._handle_text(inner.data, line, fmt, ctx, chunk)
                continue
            if inner.record is None:
                continue  # text carried by a wrapper, not JSON: not an API call
            calls = self._record_calls(inner.record, fmt, ctx, chunk, line, data)
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

    def _record_calls(self, record: Any, fmt: Format | None, ctx: ParseContext, chunk: _Chunk, line: Any,
                      data: bytes) -> list[Call] | None:
        """Calls of one decoded record; None when it was quarantined; [] when it is not a call."""
        fmt_name = fmt.name if fmt else None
        # Parse with the file's format first (one pass); only a record it does not recognise pays for
        # detection against the others (a mixed file), or is refused when the format was forced.
        chosen = fmt or detect_record(record)
        calls = self._parse(chosen, record, ctx, chunk, line, data) if chosen is not None else []
        if calls is None:
            return None
        if not calls and chosen is not None and not _safe_detect(chosen, record):
            if chosen.excludes(record):
                return []  # the profile's `when:` filter: not an API call, skipped
            if self._forced is not None:
                chunk.bad.append(quarantine_row(ctx.source_file, line.offset, line.length,
                                                f"record does not have the shape of format {chosen.name}", data, fmt_name))
                return None
            other = detect_record(record)
            if other is not None and other is not chosen:
                return self._parse(other, record, ctx, chunk, line, data)
        return calls

    def _finish_file(self, fmt: Format | None, ctx: ParseContext, chunk: _Chunk) -> None:
        """End of a file that will not grow: a held split line is complete as it is; an open stream is cut off."""
        if ctx.unwrap is not None and not ctx.unwrap.idle:
            from .sources import Line

            inners = ctx.unwrap.flush(decode=fmt is None or fmt.kind != "text")
            if inners:
                first = inners[0].offset
                chunk.lines += 1  # the joined line is one more outcome (its pieces were counted as call lines)
                self._handle_inners(inners, Line(first, chunk.end - first, b""), b"", fmt, ctx, chunk)
        if fmt is not None and not fmt.at_record_boundary(ctx):
            chunk.calls.extend(fmt.finish_file(ctx))

    def _parse(self, fmt: Format, record: Any, ctx: ParseContext, chunk: _Chunk, line: Any, data: bytes) -> list[Call] | None:
        """The format's calls for a record, or None after quarantining it."""
        try:
            return fmt.parse(record, ctx)
        except RecordError as exc:
            reason = str(exc)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            reason = f"unexpected structure ({type(exc).__name__}: {exc})"
        chunk.bad.append(quarantine_row(ctx.source_file, line.offset, line.length, reason, data, fmt.name))
        return None

    def _handle_text(self, data: bytes, line: Any, fmt: Format, ctx: ParseContext, chunk: _Chunk) -> bool:
        """Formats that read raw lines (SSE transcripts, CSV) rather than one JSON object per line.
        True when the line is (part of) a call; a bad line is quarantined, anything else is skipped."""
        try:
            calls = fmt.parse(data, ctx)
        except RecordError as exc:
            chunk.bad.append(quarantine_row(ctx.source_file, line.offset, line.length, str(exc), data, fmt.name))
            return False
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            chunk.bad.append(quarantine_row(ctx.source_file, line.offset, line.length,
                                            f"unexpected structure ({type(exc).__name__}: {exc})", data, fmt.name))
            return False
        chunk.calls.extend(calls)
        return bool(calls) or not fmt.at_record_boundary(ctx)  # a call, or a line of a stream still being read

    def _finish(self, path: Path, source_id: str, ident: FileIdentity, chunk: _Chunk, result: FileResult,
                fh: BinaryIO) -> ChunkRows:
        """Estimate missing tokens and turn a chunk into Arrow tables (one `now` per chunk)."""
        if not ident.compressed and fingerprint(os.pread(fh.fileno(), ident.fp_len, 0)) != ident.fp:
            # copytruncate (or a rewrite) raced with this read: what was read may belong to the new
            # content, not to the identity it would be committed under. Commit nothing; re-identify.
            raise FileChanged(str(path))
        now = _now_us()
        apply_tags(chunk.calls, self._tags)
        estimated = fill_estimates(chunk.calls, self.counter)
        for c in chunk.calls:
            c.ingested_at = now
        calls_table = calls_to_table(chunk.calls) if chunk.calls else None
        bad_table = None
        if chunk.bad:
            keep = self.options.quarantine_raw_bytes
            for b in chunk.bad:
                b["ingested_at"] = now
                if b["raw"] is not None and keep < QUARANTINE_RAW_BYTES:
                    b["raw"] = b["raw"][:keep] or None
            bad_table = pa.Table.from_pylist(chunk.bad, schema=QUARANTINE_SCHEMA)
        tail = None if ident.compressed else tail_hash_open(fh, chunk.end)
        result.lines += chunk.lines
        result.calls += len(chunk.calls)
        add_coverage(result, chunk.calls)
        result.quarantined += len(chunk.bad)
        result.skipped += chunk.skipped
        result.call_lines += chunk.call_lines
        result.repaired += chunk.repaired
        result.estimated += estimated
        result.input_tokens += sum(c.input_tokens or 0 for c in chunk.calls)
        result.output_tokens += sum(c.output_tokens or 0 for c in chunk.calls)
        return ChunkRows(source_id, ident, str(path), chunk.start, chunk.end, tail, calls_table, bad_table, self._spec)


def _at_boundary(fmt: Format | None, ctx: ParseContext) -> bool:
    """No multi-line record is half read: neither a split container line nor a stream."""
    if ctx.unwrap is not None and not ctx.unwrap.idle:
        return False
    return fmt is None or fmt.at_record_boundary(ctx)


QUIET_SECONDS = 2.0  # `ingest` treats a file unchanged this long as complete (its last line needs no newline)


def _quiet(path: Path, handle: BinaryIO | None) -> bool:
    try:
        st = os.fstat(handle.fileno()) if handle is not None else path.stat()
    except OSError:
        return False
    return time.time() - st.st_mtime >= QUIET_SECONDS


def _safe_detect(fmt: Format, record: Any) -> bool:
    try:
        return fmt.detect(record)
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def index_batch_inputs(paths: list[Path]) -> dict[str, Any]:
    """custom_id -> input line, for every Batch API input file among `paths` (read whole)."""
    index: dict[str, Any] = {}
    for path in paths:
        head = read_head(path, 4096)
        first = head.split(b"\n", 1)[0]
        try:
            if not is_batch_input(decode_record(first)):
                continue
        except msgspec.DecodeError:
            continue
        try:
            with open_binary(path) as fh:
                for line in LineReader(fh, 0, final=True):  # bounded lines; damage ends the file
                    if line.data is None:
                        continue
                    try:
                        rec = decode_record(line.data)
                    except msgspec.DecodeError:
                        continue
                    if is_batch_input(rec):
                        index[str(rec["custom_id"])] = {"url": rec.get("url"), "body": rec.get("body")}
        except OSError:
            continue  # reported when the file itself is ingested
    return index
