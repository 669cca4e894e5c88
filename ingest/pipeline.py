"""Batch ingest: files in, chunks committed exactly once, a summary out.

Used by `tokentrail ingest` and by the watcher (which calls `ingest_file` per changed file).
Bad lines never stop a run: each becomes a quarantine row naming file, offset and reason.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import pyarrow as pa

from .coverage import add_coverage
from .errors import RecordError
from .formats import Detection, Format, ParseContext, decode_record, detect_record, detect_sample, get_format
from .formats.openai_batch import BATCH_INPUTS, is_batch_input
from .keys import scrub_bytes, scrub_text
from .schema import QUARANTINE_SCHEMA, Call, calls_to_table
from .sources import (
    DEFAULT_MAX_LINE,
    FileIdentity,
    LineReader,
    discover,
    fingerprint,
    identify,
    identify_open,
    open_binary,
    read_head,
    tail_hash,
    tail_hash_open,
)
from .tokens import TokenCounter, fill_estimates
from .warehouse import Warehouse
from .wrappers import Inner, Unwrapper, apply_envelope, unwrap_sample

QUARANTINE_RAW_BYTES = 4096
# A chunk is committed at 8,000 lines or 16 MB of input, whichever comes first: memory is bounded by
# the chunk (decoded records and request bodies kept for estimation), not by the file (bench figure 4).
DEFAULT_CHUNK_LINES = 8_000
DEFAULT_CHUNK_BYTES = 16 << 20

Attributor = Callable[[pa.Table], pa.Table]


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
    input_tokens: int = 0
    output_tokens: int = 0
    held_bytes: int = 0  # a partial last line waiting for its newline
    offset: int = 0  # where reading stopped (the committed checkpoint)
    more: bool = False  # stopped at max_chunks with data left
    note: str | None = None
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
            "estimated": self.total("estimated"),
            "input_tokens": self.total("input_tokens"),
            "output_tokens": self.total("output_tokens"),
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "per_file": [f.__dict__ for f in self.files],
        }


@dataclass
class IngestOptions:
    """How to ingest. `attribute` runs in this process; `attribute_factory` (a picklable callable
    returning an attributor) is what worker processes use when `jobs` > 1."""

    format: str | None = None
    chunk_lines: int = DEFAULT_CHUNK_LINES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_line: int = DEFAULT_MAX_LINE
    store_system_prompt: bool = True
    attribute: Attributor | None = None
    glob: str | None = None
    quarantine_raw_bytes: int = 4096  # 0: keep no raw bytes of bad lines (they may hold prompt text)
    jobs: int = 1
    attribute_factory: Callable[[], Attributor] | None = None


class _FileChanged(Exception):
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
        "source_file": path,
        "source_offset": offset,
        "length": length,
        "reason": scrub_text(reason)[:500],
        "raw": scrub_bytes(raw[:keep]) if raw is not None and keep > 0 else None,
        "source_format": fmt,
    }


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class FileIngester:
    """Reads one file from its checkpoint and commits chunks. Holds no state between calls."""

    def __init__(self, wh: Warehouse, options: IngestOptions, counter: TokenCounter | None = None,
                 extras: dict[str, Any] | None = None) -> None:
        self.wh = wh
        self.options = options
        self.counter = counter or TokenCounter()
        self.extras = extras if extras is not None else {}
        self._forced: Format | None = get_format(options.format) if options.format else None

    def resume_offset(self, path: Path, ident: FileIdentity, head: bytes,
                      handle: BinaryIO | None = None) -> tuple[int, str | None]:
        """The checkpointed offset, or 0 when the file was truncated or replaced since."""
        state = self.wh.checkpoints.lookup(ident, head)
        if state is None:
            return 0, None
        offset = state.offset
        if not ident.compressed and offset > ident.size:
            return 0, "file is shorter than its checkpoint: truncated, reading from 0"
        current = tail_hash_open(handle, offset) if handle is not None else tail_hash(path, offset)
        if state.tail_hash and not ident.compressed and current != state.tail_hash:
            return 0, "bytes before the checkpoint changed: file replaced, reading from 0"
        return offset, None

    def ingest(self, path: Path, final: bool | None = None, progress: Callable[[int], None] | None = None,
               handle: BinaryIO | None = None, max_chunks: int | None = None) -> FileResult:
        """Read `path` (or the open plain-file `handle` for it) from its checkpoint, committing chunks.

        `final`: the file will not grow again (compressed, or rotated away): a last line without
        a newline is taken as complete. `max_chunks` bounds the work done in one call.
        """
        if handle is not None:
            ident, head = identify_open(handle)
        else:
            ident, head = identify(path), read_head(path)
        offset, note = self.resume_offset(path, ident, head, handle)
        result = FileResult(str(path), None, note=note)
        if not ident.compressed and offset >= ident.size:
            return result
        fmt = self._forced
        if fmt is None:
            detection = self._detect(path, handle)
            fmt = detection.format
            if fmt is None and detection.not_a_log:
                result.not_a_log = True
                result.note = (f"not read: none of its first {detection.sampled} lines is JSON or a known log format "
                               "(use --format to force one)")
                return result
        result.format = fmt.name if fmt else None
        is_final = ident.compressed if final is None else final
        # `ingest` (final not given): a file no longer growing has its last line complete even without a
        # newline; a stream still open in it is held all the same (only a file known final cuts it off).
        last_line_whole = is_final or (final is None and _quiet(path, handle))
        ctx = ParseContext(
            source_file=str(path),
            source_fp=ident.fp,
            hasher=self.wh.hasher,
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
            chunks = 0
            try:
                for line in reader:
                    self._handle_line(line, fmt, ctx, chunk)
                    chunk.end = line.offset + line.length
                    if _at_boundary(fmt, ctx):
                        chunk.mark_safe()
                    else:
                        continue
                    if chunk.lines >= self.options.chunk_lines or chunk.end - chunk.start >= self.options.chunk_bytes:
                        self._commit(path, ident, chunk, result, fh)
                        if progress:
                            progress(chunk.end - chunk.start)
                        chunk = _Chunk(chunk.end)
                        chunks += 1
                        if max_chunks is not None and chunks >= max_chunks:
                            result.more = True
                            return result
                if not _at_boundary(fmt, ctx):
                    if is_final:
                        self._finish_file(fmt, ctx, chunk)  # a split line or stream cut off for good
                    else:
                        chunk.cut_to_safe()  # wait for the rest of the record
                        reader.pending += reader.end - chunk.end
                        reader.end = chunk.end
                if chunk.lines:
                    self._commit(path, ident, chunk, result, fh)
                    if progress:
                        progress(chunk.end - chunk.start)
            except _FileChanged:
                result.note = "file was truncated or replaced while being read; it is re-read from its new identity"
                result.more = True
                return result
            result.held_bytes = reader.pending
            result.offset = reader.end
        return result

    def _detect(self, path: Path, handle: BinaryIO | None = None) -> Detection:
        """Sniff the first 50 lines (through the held descriptor if there is one), wrappers taken off."""
        if handle is not None:
            lines = os.pread(handle.fileno(), 1 << 20, 0).split(b"\n")[:50]
        else:
            with open_binary(path) as fh:
                lines = [raw for _, raw in zip(range(50), fh, strict=False)]
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

    def _commit(self, path: Path, ident: FileIdentity, chunk: _Chunk, result: FileResult, fh: BinaryIO) -> None:
        if not ident.compressed and fingerprint(os.pread(fh.fileno(), ident.fp_len, 0)) != ident.fp:
            # copytruncate (or a rewrite) raced with this read: what was read may belong to the new
            # content, not to the identity it would be committed under. Commit nothing; re-identify.
            raise _FileChanged
        now = _now_us()
        estimated = fill_estimates(chunk.calls, self.counter)
        for c in chunk.calls:
            c.ingested_at = now
        calls_table = calls_to_table(chunk.calls) if chunk.calls else None
        usage_table = self.options.attribute(calls_table) if (calls_table is not None and self.options.attribute) else None
        bad_table = None
        if chunk.bad:
            keep = self.options.quarantine_raw_bytes
            for b in chunk.bad:
                b["ingested_at"] = now
                if b["raw"] is not None and keep < QUARANTINE_RAW_BYTES:
                    b["raw"] = b["raw"][:keep] or None
            bad_table = pa.Table.from_pylist(chunk.bad, schema=QUARANTINE_SCHEMA)
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        tail = None if ident.compressed else tail_hash_open(fh, chunk.end)
        self.wh.commit_chunk(
            ident, str(path), chunk.start, chunk.end, tail,
            {"calls": calls_table, "usage": usage_table, "quarantine": bad_table}, today,
        )
        result.lines += chunk.lines
        result.calls += len(chunk.calls)
        add_coverage(result, chunk.calls)
        result.quarantined += len(chunk.bad)
        result.skipped += chunk.skipped
        result.call_lines += chunk.call_lines
        result.estimated += estimated
        result.input_tokens += sum(c.input_tokens or 0 for c in chunk.calls)
        result.output_tokens += sum(c.output_tokens or 0 for c in chunk.calls)


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
        with open_binary(path) as fh:
            for raw in fh:
                try:
                    rec = decode_record(raw)
                except msgspec.DecodeError:
                    continue
                if is_batch_input(rec):
                    index[str(rec["custom_id"])] = {"url": rec.get("url"), "body": rec.get("body")}
    return index


def ingest_paths(
    wh: Warehouse,
    paths: list[str | Path],
    options: IngestOptions | None = None,
    progress: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestSummary:
    """Ingest files and directories (recursively, `.gz` included) into the warehouse.

    The caller holds the writer lock. Re-running over the same files adds nothing;
    appended lines are picked up from each file's checkpoint.
    """
    options = options or IngestOptions()
    files = discover(paths, options.glob)
    t0 = time.perf_counter()
    summary = IngestSummary()
    extras = {BATCH_INPUTS: index_batch_inputs(files)}
    results: Iterable[FileResult]
    if options.jobs > 1 and len(files) > 1:
        results = _ingest_parallel(wh, files, options, extras, progress)
    else:
        ingester = FileIngester(wh, options, extras=extras)
        results = (_ingest_one(ingester, path, progress) for path in files)
    for res in results:
        summary.files.append(res)
        path = Path(res.path)
        summary.bytes_read += path.stat().st_size if path.exists() else 0
        if on_file:
            on_file(res)
    summary.seconds = time.perf_counter() - t0
    return summary


def _ingest_one(ingester: FileIngester, path: Path, progress: Callable[[int], None] | None = None) -> FileResult:
    try:
        return ingester.ingest(path, progress=progress)
    except OSError as exc:
        return FileResult(str(path), None, note=f"could not read: {exc.strerror or exc}")


def _ingest_parallel(wh: Warehouse, files: list[Path], options: IngestOptions, extras: dict[str, Any],
                     progress: Callable[[int], None] | None) -> list[FileResult]:
    """Whole files per worker process. Files are independent (own identity, own checkpoint, own chunk
    names), so exactly-once holds as in one process; this process keeps the writer lock meanwhile."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    worker_options = IngestOptions(**{**options.__dict__, "attribute": None, "jobs": 1})
    ordered = sorted(files, key=lambda p: -p.stat().st_size)  # biggest first: the pool finishes together
    results: list[FileResult] = []
    ctx = multiprocessing.get_context("spawn")  # a fork would copy DuckDB's threads mid-flight
    with ProcessPoolExecutor(max_workers=options.jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(str(wh.root), worker_options, extras)) as pool:
        futures = {pool.submit(_worker_ingest, str(p)): p for p in ordered}
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if progress:
                progress(futures[fut].stat().st_size if futures[fut].exists() else 0)
    order = {str(p): i for i, p in enumerate(files)}
    return sorted(results, key=lambda r: order.get(r.path, 0))


_WORKER: FileIngester | None = None


def _worker_init(root: str, options: IngestOptions, extras: dict[str, Any]) -> None:
    global _WORKER
    if options.attribute_factory is not None:
        options.attribute = options.attribute_factory()
    _WORKER = FileIngester(Warehouse(root), options, extras=extras)


def _worker_ingest(path: str) -> FileResult:
    assert _WORKER is not None
    return _ingest_one(_WORKER, Path(path))
