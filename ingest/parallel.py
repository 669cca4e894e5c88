"""Parsing in worker processes, committing in this one, in file order.

Many files: a worker reads a few chunks of one file from the offset this process resolved and
returns them; this process commits them and sends the file back for more.

One big file: it is cut at line starts into ranges that several workers read at once; this process
commits the ranges in order. A range counts only if the one before it ended on a record boundary
exactly where it starts (a record split across lines, e.g. a container's partial lines or a stream,
may straddle the cut): otherwise its rows are dropped and the file is read on from the last boundary,
so the rows are the ones a single reader would commit. Workers die with this process
(parent-death signal), so a SIGKILLed run leaves no orphan writing anything.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .copies import copy_note
from .errors import FormatError
from .formats import Format, RunInputs
from .keys import KeyHasher
from .pipeline import FileChanged, FileIngester, FileResult, IngestOptions, IngestSummary
from .run import IngestRun
from .sources import FileIdentity, identify_with_head, tail_hash
from .store import ChunkRows, CommitResult, Store

WORKER_MAX_CHUNKS = 4  # chunks a worker reads of one file before handing it back (many files)
RANGE_BYTES = 16 << 20  # a big file is cut into ranges of about this size (a chunk), read at once by several workers
SPLIT_SCAN_BYTES = 8 << 20  # how far past a cut point a line start is looked for (else the file is not cut there)

WorkerResult = tuple[list[ChunkRows], FileResult]


@dataclass
class _Range:
    start: int
    end: int | None  # None: to the end of the file
    future: Future[WorkerResult]


@dataclass
class _File:
    path: Path
    result: FileResult
    source_id: str = ""
    ident: FileIdentity | None = None
    remembered_format: str | None = None
    to_submit: deque[tuple[int, int | None]] = field(default_factory=deque)  # ranges not yet given to a worker
    in_flight: deque[_Range] = field(default_factory=deque)  # in file order


def ingest_parallel(store: Store, files: list[Path], options: IngestOptions, run_inputs: RunInputs,
                    summary: IngestSummary, progress: Callable[[int], None] | None) -> Iterator[CommitResult]:
    """What `ingest.files.ingest_batches` runs with `jobs` > 1: workers parse, this process commits in file order."""
    import multiprocessing

    worker_options = IngestOptions(**{**options.__dict__, "jobs": 1})
    run = IngestRun(store, options, run_inputs)
    run.live_files = lambda: files
    ordered = sorted(files, key=lambda p: -p.stat().st_size)  # biggest first: the pool finishes together
    jobs = {str(p): _File(p, FileResult(str(p), None)) for p in files}
    ahead = options.jobs + 1  # ranges read ahead of the ones to commit next, over all files (bounds memory)
    ctx = multiprocessing.get_context("spawn")  # a fork would copy DuckDB's threads mid-flight
    with ProcessPoolExecutor(max_workers=options.jobs, mp_context=ctx, initializer=worker_init,
                             initargs=(store.hasher, worker_options, run_inputs)) as pool:
        sequential: dict[Future[WorkerResult], _File] = {}

        def resolve(job: _File) -> int | None:
            """The file's source and the offset to read from; None when there is nothing to read."""
            try:
                ident, head = identify_with_head(job.path)
            except OSError as exc:
                job.result.note = f"could not read: {exc.strerror or exc}"
                return None
            if ident.fp_len == 0:
                return None
            path = job.path
            resolved = store.resolve(ident, head, run.live, lambda off: tail_hash(path, off), str(path))
            if resolved.copy_of:
                job.result.note, job.result.deferred = copy_note(resolved.copy_of), True
                return None
            job.source_id, job.ident, job.remembered_format = resolved.source_id, ident, resolved.format
            job.result.source_id = resolved.source_id
            job.result.note = job.result.note or resolved.note
            return max(resolved.offset, run.pending_end(resolved.source_id))

        def submit_chunks(job: _File, offset: int | None = None) -> None:
            offset = resolve(job) if offset is None else offset
            if offset is None or job.ident is None:
                return
            fut = pool.submit(_worker_chunks, str(job.path), job.source_id, job.ident, offset, job.remembered_format)
            sequential[fut] = job

        def top_up() -> None:
            """Give workers more ranges, the earliest files first, while few enough are in flight."""
            for job in jobs.values():
                while job.to_submit and sum(len(j.in_flight) for j in jobs.values()) < ahead:
                    assert job.ident is not None
                    start, end = job.to_submit.popleft()
                    fut = pool.submit(_worker_range, str(job.path), job.source_id, job.ident, start, end,
                                      job.remembered_format)
                    job.in_flight.append(_Range(start, end, fut))

        for p in ordered:
            job = jobs[str(p)]
            offset = resolve(job)
            if offset is None or job.ident is None:
                continue
            ranges = split_ranges(p, offset, job.ident) if options.jobs > 1 else []
            if len(ranges) > 1 and _starts_anywhere(run, job):
                job.to_submit.extend(ranges)
            else:
                submit_chunks(job, offset)
        top_up()

        def finished(job: _File) -> None:
            if progress:
                progress(job.path.stat().st_size if job.path.exists() else 0)

        while sequential or any(j.in_flight or j.to_submit for j in jobs.values()):
            # only what can be committed next: a later range that is done waits for the one before it
            waiting = list(sequential) + [j.in_flight[0].future for j in jobs.values() if j.in_flight]
            done, _ = wait(waiting, return_when=FIRST_COMPLETED)
            for fut in done:
                job_of = sequential.pop(fut, None)
                if job_of is None:
                    continue
                chunks, part = fut.result()
                _merge_result(job_of.result, part)
                for chunk in chunks:
                    committed = run.add(chunk)
                    if committed is not None:
                        yield committed
                if part.more:
                    submit_chunks(job_of)
                else:
                    finished(job_of)
            for job in jobs.values():  # ranges: commit in order, as far as they are done
                while job.in_flight and job.in_flight[0].future.done():
                    rng = job.in_flight.popleft()
                    chunks, part = rng.future.result()
                    _merge_result(job.result, part)
                    for chunk in chunks:
                        committed = run.add(chunk)
                        if committed is not None:
                            yield committed
                    if rng.end is None:
                        finished(job)
                    elif part.offset != rng.end:
                        # a record straddles the cut (what the next ranges read started mid-record), or
                        # the range could not be read (file replaced, I/O error): drop what follows and
                        # read on from the last boundary instead, as a single reader would
                        _drop_ranges(job)
                        submit_chunks(job, part.offset)
            top_up()
        committed = run.flush()
        if committed is not None:
            yield committed
    for p in files:
        summary.files.append(jobs[str(p)].result)
        with contextlib.suppress(OSError):
            summary.bytes_read += p.stat().st_size


def _starts_anywhere(run: IngestRun, job: _File) -> bool:
    """The file's format reads each record alone, so a reader may start at any line boundary.

    Formats with a per-file parser carry state from line to line (a CSV header, the previous line's
    date in a batch output file): cutting such a file would start a range without it, so it is
    read whole. The format is the one a single reader would use (forced, remembered or detected)."""
    try:
        state = run.ingester.open_file(job.path, FileResult(str(job.path), None),
                                       remembered_format=job.remembered_format, source_id=job.source_id)
    except (OSError, FormatError):
        return False
    return state is not None and state.format is not None and type(state.format).open_file is Format.open_file


def _drop_ranges(job: _File) -> None:
    """Forget the ranges after a failed or unsafe one: their rows are never committed."""
    for rng in job.in_flight:
        rng.future.cancel()
    job.in_flight.clear()
    job.to_submit.clear()


def split_ranges(path: Path, offset: int, ident: FileIdentity,
                 range_bytes: int | None = None) -> list[tuple[int, int | None]]:
    """Cut a plain file at line starts into ranges of about `range_bytes`, from `offset` on; the last
    range runs to the end of the file. One range (no cut) for compressed or small files."""
    size = range_bytes or RANGE_BYTES
    if ident.compressed or ident.size - offset < 2 * size:
        return [(offset, None)]
    cuts = [offset]
    with open(path, "rb") as fh:
        pos = offset + size
        while pos < ident.size - size // 2:
            fh.seek(pos - 1)  # a cut at `pos` is a line start if the byte before it is a newline
            window = fh.read(SPLIT_SCAN_BYTES + 1)
            nl = window.find(b"\n")
            if nl < 0:
                break  # one huge line: do not cut here (or later)
            cut = pos + nl
            if cut >= ident.size:
                break
            cuts.append(cut)
            pos = cut + size
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False)] + [(cuts[-1], None)]


def _merge_result(into: FileResult, part: FileResult) -> None:
    for name in ("lines", "calls", "quarantined", "skipped", "estimated", "call_lines", "input_tokens", "output_tokens",
                 "repaired", "with_key", "with_user", "with_route", "with_ts"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.format = part.format or into.format
    into.not_a_log = into.not_a_log or part.not_a_log
    into.note = part.note or into.note
    into.held_bytes, into.held_record, into.offset = part.held_bytes, part.held_record, part.offset


_WORKER: FileIngester | None = None


def worker_init(hasher: KeyHasher, options: IngestOptions, run_inputs: RunInputs) -> None:
    global _WORKER
    die_with_parent()
    _WORKER = FileIngester(hasher, options, run_inputs=run_inputs)


def _worker_chunks(path: str, source_id: str, ident: FileIdentity, offset: int,
                   remembered_format: str | None) -> WorkerResult:
    return _read(path, source_id, ident, offset, None, remembered_format, WORKER_MAX_CHUNKS)


def _worker_range(path: str, source_id: str, ident: FileIdentity, start: int, end: int | None,
                  remembered_format: str | None) -> WorkerResult:
    return _read(path, source_id, ident, start, end, remembered_format, None)


def _read(path: str, source_id: str, ident: FileIdentity, offset: int, end: int | None,
          remembered_format: str | None, max_chunks: int | None) -> WorkerResult:
    assert _WORKER is not None
    res = FileResult(path, None)
    res.offset = offset
    try:
        chunks = list(_WORKER.chunks(Path(path), source_id, ident, offset, res, max_chunks=max_chunks,
                                     remembered_format=remembered_format, end=end))
    except FileChanged:
        res.note = "file was truncated or replaced while being read; run ingest again to read its new content"
        return [], res
    except OSError as exc:
        res.note = f"could not read: {exc.strerror or exc}"
        return [], res
    return chunks, res


def die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies (no orphaned workers)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before the call: nothing will deliver the signal
            os._exit(1)
