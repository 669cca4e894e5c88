"""The `ingest` command's library entry: a set of paths read into the warehouse, batch by batch.

Finds the files (recursively, `.gz` included), then reads them one after another through one
`IngestRun`, or with `jobs` > 1 through the workers of `ingest.parallel` (many files, or one file
big enough to cut into ranges). Yields each committed batch; attribution consumes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import parallel
from .formats import scan_run
from .pipeline import FileResult, IngestOptions, IngestSummary
from .run import IngestRun
from .sources import discover
from .store import CommitResult, Store


def ingest_batches(
    store: Store,
    paths: list[str | Path],
    options: IngestOptions | None = None,
    summary: IngestSummary | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[CommitResult]:
    """Ingest files and directories (recursively, `.gz` included); yield each committed batch.

    Re-running over the same files adds nothing; appended lines are picked up from each file's
    offset in the `calls` table. `summary` (if given) is filled in as files finish.
    """
    options = options or IngestOptions()
    summary = summary if summary is not None else IngestSummary()
    skipped: list[tuple[Path, str]] = []
    files = discover(paths, options.glob, skipped)
    t0 = time.perf_counter()
    for path, why in skipped:  # FIFOs, sockets, devices, symlinks out of the roots: named, never opened
        summary.files.append(FileResult(str(path), None, note=why))
    run_inputs = scan_run(files)  # what formats need from all files first (Batch API inputs to join)
    if options.jobs > 1 and (len(files) > 1 or (files and _splittable(files[0]))):
        yield from parallel.ingest_parallel(store, files, options, run_inputs, summary, progress)
    else:
        run = IngestRun(store, options, run_inputs)
        run.live_files = lambda: files
        for path in files:
            res = FileResult(str(path), None)
            try:
                yield from run.read_file(path, res)
            except OSError as exc:
                res.note = f"could not read: {exc.strerror or exc}"
            summary.files.append(res)
            with contextlib.suppress(OSError):
                summary.bytes_read += path.stat().st_size
            if progress:
                progress(path.stat().st_size if path.exists() else 0)
        committed = run.flush()
        if committed is not None:
            yield committed
    summary.seconds = time.perf_counter() - t0


def _splittable(path: Path) -> bool:
    """One plain file big enough to be cut into ranges read by several workers at once."""
    try:
        return path.stat().st_size >= 2 * parallel.RANGE_BYTES and not path.name.endswith(".gz")
    except OSError:
        return False
