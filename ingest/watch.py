"""`tokentrail watch`: tail log directories forever, exactly once into the warehouse.

Lessons taken from the log shippers (Vector, Fluent Bit, Filebeat):
  * watchfiles events are hints. Overflowed inotify queues lose events, renames arrive as an
    unpaired delete + add, polling sees whole-second mtimes. So every tracked file is also
    re-stat'ed on each short interval (Vector re-globs every second).
  * Files are tracked by (device, inode) with an open descriptor, so a file renamed or deleted
    by rotation is read to its end through that descriptor before it is let go; its partial
    last line is flushed then (the writer is done with it).
  * Offsets live in the checkpoint store and are advanced only after a chunk's Parquet files
    are durable (see `ingest.warehouse`), so SIGKILL at any instant loses and duplicates nothing.
  * Copytruncate shows as a file shorter than its checkpoint (restart at 0 under the new
    content's identity); the copy carries the old fingerprint and resumes at the old offset.
    A `.gz` rotation is fingerprinted on decompressed bytes and so is recognised as read.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .formats.openai_batch import BATCH_INPUTS
from .pipeline import FileIngester, FileResult, IngestOptions, index_batch_inputs
from .sources import discover, identify, identify_open, is_gzip, read_head
from .warehouse import Warehouse

log = logging.getLogger("tokentrail.watch")


@dataclass
class WatchOptions:
    glob: str | None = None
    flush_seconds: float = 2.0
    flush_rows: int = 10_000
    read_from: str = "beginning"  # or "end": skip what existing files already hold at start-up
    poll: bool = False
    rescan_seconds: float = 1.0
    status_seconds: float = 10.0
    once: bool = False
    compact_every_seconds: float = 3600.0
    final_after_seconds: float = 5.0  # a rotated file unchanged this long is finished: flush its partial line


@dataclass
class Tracked:
    path: Path
    handle: BinaryIO | None  # plain files: held open so a rotated-away file can be drained
    key: tuple[int, int]
    first_seen_path: Path
    last_size: int = -1
    last_flush: float = field(default_factory=time.monotonic)
    last_change: float = field(default_factory=time.monotonic)
    gone: bool = False  # renamed out of the watched set, or deleted; still readable through `handle`
    finalized: bool = False
    gz_done_stat: tuple[int, float] | None = None  # a .gz read to its end at this (size, mtime)


@dataclass
class WatchStats:
    files: int = 0
    lines: int = 0
    calls: int = 0
    quarantined: int = 0
    lag_bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, lines_per_s: float) -> str:
        return (f"files {self.files} | {lines_per_s:,.0f} lines/s | calls {self.calls:,} | "
                f"lag {self.lag_bytes:,} B | quarantined {self.quarantined:,}")


class Watcher:
    def __init__(self, wh: Warehouse, paths: list[Path], ingest_options: IngestOptions, options: WatchOptions,
                 on_commit: Callable[[FileResult], None] | None = None,
                 status: Callable[[str], None] | None = None) -> None:
        self.wh = wh
        self.paths = [Path(p) for p in paths]
        self.options = options
        ingest_options.chunk_lines = options.flush_rows
        self.ingester = FileIngester(wh, ingest_options)
        self.tracked: dict[tuple[int, int], Tracked] = {}
        self.stop = threading.Event()
        self.stats = WatchStats()
        self.on_commit = on_commit
        self.status = status
        self._started = False
        self._last_status = (time.monotonic(), 0)
        self._last_compact = time.monotonic()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> WatchStats:
        self._install_signals()
        self.ingester.extras[BATCH_INPUTS] = index_batch_inputs(self._discover())
        self.scan(force_flush=self.options.once)
        if self.options.once:
            self.drain_all()
            return self.stats
        watch_dirs = sorted({str(p if p.is_dir() else p.parent) for p in self.paths})
        poll = self.options.poll
        while not self.stop.is_set():
            try:
                self._event_loop(watch_dirs, poll)
            except (OSError, RuntimeError) as exc:
                if poll:
                    raise
                print(f"warning: file events unavailable ({exc}); falling back to polling", file=sys.stderr)
                poll = True
        self.drain_all()
        return self.stats

    def _event_loop(self, dirs: list[str], poll: bool) -> None:
        from watchfiles import watch

        timeout_ms = int(self.options.rescan_seconds * 1000)
        for _changes in watch(*dirs, stop_event=self.stop, rust_timeout=timeout_ms, yield_on_timeout=True,
                              force_polling=poll, poll_delay_ms=timeout_ms, debounce=200, step=50,
                              raise_interrupt=False, ignore_permission_denied=True):
            # Whatever the events said, re-check every file: events are hints only.
            self.scan()
            self._maybe_status()
            self._maybe_compact()
            if self.stop.is_set():
                break

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: Any) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- scanning ---------------------------------------------------------------------------
    def _discover(self) -> list[Path]:
        existing = [p for p in self.paths if p.exists()]
        return discover(existing, self.options.glob) if existing else []

    def scan(self, force_flush: bool = False) -> None:
        seen: set[tuple[int, int]] = set()
        first_scan = not self._started
        self._started = True
        for path in self._discover():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            seen.add(key)
            t = self.tracked.get(key)
            if t is None:
                t = self._track(path, key, first_scan)
                if t is None:
                    continue
            elif t.path != path:
                t.path = path  # renamed within the watched set
            self._service(t, force_flush)
        for key in [k for k in self.tracked if k not in seen]:
            t = self.tracked[key]
            if t.handle is None:
                del self.tracked[key]
                continue
            t.gone = True  # renamed away or deleted: keep draining through the descriptor
            self._service(t, force_flush)
            if t.finalized:
                t.handle.close()
                del self.tracked[key]
        self.stats.files = len(self.tracked)

    def _track(self, path: Path, key: tuple[int, int], first_scan: bool) -> Tracked | None:
        handle = None
        if not is_gzip(path):
            try:
                handle = open(path, "rb")  # noqa: SIM115 - held for the file's life, closed when finalized
            except OSError as exc:
                log.warning("cannot open %s: %s", path, exc)
                return None
        t = Tracked(path, handle, key, path)
        self.tracked[key] = t
        if first_scan and self.options.read_from == "end" and handle is not None:
            self._skip_existing(t)
        return t

    def _skip_existing(self, t: Tracked) -> None:
        """--read-from end: checkpoint an untracked file at its last complete line."""
        assert t.handle is not None
        ident = identify(t.path)
        head = read_head(t.path)
        if self.wh.checkpoints.lookup(ident, head) is not None:
            return
        size = ident.size
        tail = os.pread(t.handle.fileno(), min(size, 1 << 20), max(0, size - (1 << 20)))
        nl = tail.rfind(b"\n")
        end = max(0, size - len(tail) + nl + 1) if nl >= 0 else 0
        from .sources import tail_hash_open

        self.wh.checkpoints.record_offset(ident, str(t.path), end, tail_hash_open(t.handle, end))

    def _service(self, t: Tracked, force_flush: bool) -> None:
        if t.handle is None:  # .gz: read once it is complete and unchanged
            st = t.path.stat()
            if t.gz_done_stat == (st.st_size, st.st_mtime):
                return
            if self._ingest(t, final=True):
                t.gz_done_stat = (st.st_size, st.st_mtime)
            return
        now = time.monotonic()
        size = os.fstat(t.handle.fileno()).st_size
        if size != t.last_size:
            t.last_change = now
        rotated = t.gone or t.path != t.first_seen_path
        # The writer may still hold a rotated file open; only a quiet one is finished.
        final = rotated and not t.finalized and now - t.last_change >= self.options.final_after_seconds
        if size == t.last_size and not final and not force_flush:
            return
        due = force_flush or final or now - t.last_flush >= self.options.flush_seconds
        grew_a_lot = size - max(t.last_size, 0) >= self.options.flush_rows * 200
        if not (due or grew_a_lot):
            return
        if self._ingest(t, final=final):
            t.last_size = size
            t.last_flush = now
            t.finalized = final

    def _ingest(self, t: Tracked, final: bool) -> bool:
        try:
            while True:
                res = self.ingester.ingest(t.path, final=final, handle=t.handle, max_chunks=4)
                self._count(res)
                if not res.more or self.stop.is_set():
                    return not res.more
        except (EOFError, zlib.error, gzip.BadGzipFile):
            return False  # a .gz still being written: try again on the next scan
        except FileNotFoundError:
            return False

    def _count(self, res: FileResult) -> None:
        self.stats.lines += res.lines
        self.stats.calls += res.calls
        self.stats.quarantined += res.quarantined
        if self.on_commit and res.lines:
            self.on_commit(res)

    def drain_all(self) -> None:
        """Shutdown: commit everything complete that is waiting (partial lines stay held)."""
        for t in list(self.tracked.values()):
            if t.handle is not None:
                self._ingest(t, final=False)
            elif t.gz_done_stat is None:
                self._ingest(t, final=True)
        self.stats.lag_bytes = self._lag()

    def close(self) -> None:
        for t in self.tracked.values():
            if t.handle is not None:
                t.handle.close()
        self.tracked.clear()

    def _lag(self) -> int:
        lag = 0
        for t in self.tracked.values():
            if t.handle is None:
                continue
            with contextlib.suppress(OSError):
                ident, head = identify_open(t.handle)
                state = self.wh.checkpoints.lookup(ident, head)
                lag += ident.size - (state.offset if state else 0)
        return max(lag, 0)

    # -- periodic work ----------------------------------------------------------------------
    def _maybe_status(self) -> None:
        if self.status is None:
            return
        now = time.monotonic()
        last_t, last_lines = self._last_status
        if now - last_t >= self.options.status_seconds:
            self.stats.lag_bytes = self._lag()  # a read and a lookup per file: only when shown
            rate = (self.stats.lines - last_lines) / (now - last_t)
            self.status(self.stats.line(rate))
            self._last_status = (now, self.stats.lines)

    def _maybe_compact(self) -> None:
        if time.monotonic() - self._last_compact < self.options.compact_every_seconds:
            return
        self._last_compact = time.monotonic()
        from .compact import compact_closed_partitions

        with contextlib.suppress(OSError):
            compact_closed_partitions(self.wh)
