"""One-file ingest: reading one log file from a verified offset into chunks ready to commit.

`FileIngester` owns the reading: the format choice, offsets, chunk boundaries (never inside a
multi-line record), the check that the file was not replaced meanwhile, estimation and Arrow
tables. What each line becomes is `ingest.dispatch`'s job; the multi-file run that resolves
sources and commits batches is `ingest.run`. Nothing here knows about rules or prices.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from .coverage import add_coverage
from .dispatch import QUARANTINE_RAW_BYTES, Chunk, FileState, LineDispatcher
from .errors import FormatError
from .formats import Detection, Format, ParseContext, RunInputs, detect_sample, get_format
from .keys import KeyHasher
from .schema import QUARANTINE_SCHEMA, Call, calls_to_table
from .sources import DEFAULT_MAX_LINE, FileIdentity, LineReader, fingerprint, open_binary, sample_lines, tail_hash_open
from .sources_file import SourcesFile, apply_tags
from .store import ChunkRows
from .tokens import TokenCounter, fill_estimates
from .wrappers import unwrap_sample

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
    held_bytes: int = 0  # a partial last line waiting for its newline, or an unfinished record (`held_record`)
    held_record: bool = False  # the held bytes are a multi-line record still open (a stream without its end)
    offset: int = 0  # where reading stopped (the committed checkpoint)
    more: bool = False  # stopped at max_chunks with data left
    deferred: bool = False  # not read now: a copy of another file being read (`ingest.copies`)
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
    estimate: bool = True  # False: calls without usage keep NULL tokens (token_source "missing"), not re-counted
    # A record still open (an SSE stream without its end) in a file unchanged this long is cut off, counted as
    # interrupted: no client waits longer for the rest. OpenAI's SDKs give up after 600 s without data
    # (openai-python `_constants.py`: DEFAULT_TIMEOUT = httpx.Timeout(timeout=600.0, connect=5.0)).
    open_record_timeout: float = 600.0


class FileChanged(Exception):
    """The file was truncated or replaced between identifying it and committing what was read."""


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class FileIngester:
    """Reads one file from a verified offset and yields chunks ready to commit. Commits nothing:
    the caller (`IngestRun`) batches chunks and hands them to the store. Per-file state (the chosen
    format, tags, parsers) lives in a `FileState` made for each call of `chunks`, not on the ingester.

    `run_inputs`: what the formats found across all the run's files before any was read
    (`ingest.formats.scan_run`: Batch API input files, for joining output lines to their requests).
    """

    def __init__(self, hasher: KeyHasher, options: IngestOptions, counter: TokenCounter | None = None,
                 run_inputs: RunInputs | None = None) -> None:
        self.hasher = hasher
        self.options = options
        self.counter = counter or TokenCounter()
        self.run_inputs: RunInputs = run_inputs if run_inputs is not None else {}
        self._formats: dict[str, Format] = {}
        if options.format:
            self.format_for(options.format)  # an unknown --format fails before any file is read

    def format_for(self, spec: str) -> Format:
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

    def open_file(self, path: Path, result: FileResult, handle: BinaryIO | None = None,
                  remembered_format: str | None = None, source_id: str = "") -> FileState | None:
        """The file's state before its first line: its format (forced, remembered or detected), tags
        and parse context. None when the file is not a log at all (`result` says why)."""
        spec, tags = self._choose_format(path, remembered_format, result)
        forced: Format | None = None
        try:
            forced = self.format_for(spec) if spec else None
        except FormatError as exc:  # a remembered profile that is gone: detect again, and say so
            if spec == remembered_format and spec != self.options.format:
                result.note = f"{exc}; detecting the format again"
                spec = None
            else:
                raise
        fmt = forced
        if fmt is None:
            detection = self._detect(path, handle)
            fmt = detection.format
            if fmt is None and detection.not_a_log:
                result.not_a_log = True
                result.note = (f"not read: none of its first {detection.sampled} lines is JSON or a known log format "
                               "(use --format to force one)")
                return None
        result.format = fmt.name if fmt else None
        ctx = ParseContext(
            source_file=str(path),
            source_fp=source_id,
            hasher=self.hasher,
            store_system_prompt=self.options.store_system_prompt,
            fallback_ts=int((os.fstat(handle.fileno()) if handle is not None else path.stat()).st_mtime * 1_000_000),
        )
        state = FileState(ctx, fmt, forced=forced is not None, spec=spec or (fmt.name if fmt else None), tags=tags,
                          run_inputs=self.run_inputs, max_line=self.options.max_line)
        if fmt is not None:
            with contextlib.suppress(OSError):  # a rotated-away file may be gone by name
                state.parser(fmt).prepare(path)
        return state

    def chunks(self, path: Path, source_id: str, ident: FileIdentity, offset: int, result: FileResult,
               final: bool | None = None, handle: BinaryIO | None = None,
               max_chunks: int | None = None, remembered_format: str | None = None,
               end: int | None = None) -> Iterator[ChunkRows]:
        """Read `path` (or the open plain-file `handle` for it) from `offset`, yielding chunks.

        `final`: the file will not grow again (compressed, or rotated away): a last line without
        a newline is taken as complete. A record still open at the end is cut off when the file is
        final or its mtime is `open_record_timeout` old (else held: `result.held_record`).
        `max_chunks` bounds the work done in one call. `end` (a line start): stop before the line
        there; `result.offset == end` afterwards says no multi-line record was open at `end` (else it
        is the last record boundary before it). Counts go into `result` as each chunk is yielded (the
        caller commits it before asking for more).
        """
        if not ident.compressed and offset >= ident.size:
            return
        state = self.open_file(path, result, handle, remembered_format, source_id)
        if state is None:
            return
        dispatch = LineDispatcher(state)
        is_final = ident.compressed if final is None else final
        # `ingest` (final not given): a file no longer growing has its last line complete even without a
        # newline; a stream still open in it is held until the file is final or open_record_timeout old.
        last_line_whole = is_final or (final is None and _quiet(path, handle))
        with contextlib.ExitStack() as stack:
            fh = handle if handle is not None else stack.enter_context(open_binary(path))
            reader = LineReader(fh, offset, self.options.max_line, final=last_line_whole)
            chunk = Chunk(offset)
            n_chunks = 0
            ranged = False
            for line in reader:
                if end is not None and line.offset >= end:
                    reader.end, reader.pending, is_final = end, 0, False  # the rest is another worker's range
                    ranged = True
                    break
                dispatch.handle_line(line, chunk)
                chunk.end = line.offset + line.length
                if state.at_boundary():
                    chunk.mark_safe()
                else:
                    continue
                if chunk.lines >= self.options.chunk_lines or chunk.end - chunk.start >= self.options.chunk_bytes:
                    yield self._finish(path, source_id, ident, chunk, result, fh, state)
                    chunk = Chunk(chunk.end)
                    n_chunks += 1
                    if max_chunks is not None and n_chunks >= max_chunks:
                        result.more = True
                        result.offset = chunk.start
                        return
            if not state.at_boundary():
                # mtime read after the lines: a write during the read keeps the record open
                if is_final or (not ranged and _quiet(path, fh, self.options.open_record_timeout)):
                    dispatch.finish_file(chunk)  # a split line or stream cut off for good
                else:
                    chunk.cut_to_safe()  # wait for the rest of the record
                    reader.pending += reader.end - chunk.end
                    reader.end = chunk.end
                    result.held_record = True
            if chunk.lines:
                yield self._finish(path, source_id, ident, chunk, result, fh, state)
            result.held_bytes = reader.pending
            result.offset = reader.end
            if reader.error:
                result.note = f"{reader.error}: the lines before the damage were read, the rest is lost"

    def _detect(self, path: Path, handle: BinaryIO | None = None) -> Detection:
        """Sniff the first 50 lines (through the held descriptor if there is one), wrappers taken off.
        Bounded either way: an overlong first line is never held whole."""
        lines = os.pread(handle.fileno(), 1 << 20, 0).split(b"\n")[:50] if handle is not None else sample_lines(path)
        return detect_sample(unwrap_sample(lines))

    def _finish(self, path: Path, source_id: str, ident: FileIdentity, chunk: Chunk, result: FileResult,
                fh: BinaryIO, state: FileState) -> ChunkRows:
        """Estimate missing tokens and turn a chunk into Arrow tables (one `now` per chunk)."""
        # The bytes before the chunk's end are hashed first and the head checked after: a copytruncate
        # landing later (while the chunk is estimated and tabled) cannot put a hash of bytes the file no
        # longer holds into the source's record, which its copy must match to resume there.
        tail = None if ident.compressed else tail_hash_open(fh, chunk.end)
        if not ident.compressed and (fingerprint(os.pread(fh.fileno(), ident.fp_len, 0)) != ident.fp
                                     or (tail is None and chunk.end > 0)):
            # copytruncate (or a rewrite) raced with this read: what was read may belong to the new
            # content, not to the identity it would be committed under. Commit nothing; re-identify.
            raise FileChanged(str(path))
        now = _now_us()
        apply_tags(chunk.calls, state.tags)
        estimated = fill_estimates(chunk.calls, self.counter) if self.options.estimate else _leave_unestimated(chunk.calls)
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
        return ChunkRows(source_id, ident, str(path), chunk.start, chunk.end, tail, calls_table, bad_table, state.spec)


def _leave_unestimated(calls: list[Call]) -> int:
    """`estimate=False`: what the log lacks stays NULL, and the row says so (never a silent zero)."""
    for call in calls:
        if call.estimate_request is None:
            continue
        call.estimate_request = None
        if call.input_tokens is None or call.output_tokens is None:
            call.token_source = "missing"
            flags = set(call.estimate_flags.split(",")) if call.estimate_flags else set()
            flags.add("not_estimated")
            call.estimate_flags = ",".join(sorted(flags))
    return 0


QUIET_SECONDS = 2.0  # `ingest` treats a file unchanged this long as complete (its last line needs no newline)


def _quiet(path: Path, handle: BinaryIO | None, seconds: float = QUIET_SECONDS) -> bool:
    try:
        st = os.fstat(handle.fileno()) if handle is not None else path.stat()
    except OSError:
        return False
    return unchanged_for(st, seconds)


def unchanged_for(st: os.stat_result, seconds: float) -> bool:
    """The file's mtime is `seconds` old: its writer has stopped (wall clock against mtime, so a file
    written long ago counts as quiet on the first read)."""
    return time.time() - st.st_mtime >= seconds
