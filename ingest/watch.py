"""`tokentrail watch`: tail log directories forever, exactly once into the warehouse.

Lessons taken from the log shippers (Vector, Fluent Bit, Filebeat):
  * watchfiles events are hints. Overflowed inotify queues lose events, renames arrive as an
    unpaired delete + add, polling sees whole-second mtimes. So every tracked file is also
    re-stat'ed on each short interval (Vector re-globs every second).
  * Files are tracked by (device, inode) with an open descriptor, so a file renamed or deleted
    by rotation is read to its end through that descriptor before it is let go; its partial
    last line is flushed then (the writer is done with it).
  * Offsets live in the `calls` table itself: a chunk's rows and its source's new offset commit
    together (see `ingest.store`), so SIGKILL at any instant loses and duplicates nothing.
  * Copytruncate shows as a file shorter than its checkpoint (restart at 0 under the new
    content's identity); the copy carries the old fingerprint and resumes at the old offset.
    A `.gz` rotation is fingerprinted on decompressed bytes and so is recognised as read.
  * A rotation seen half done (the copy made, the original not yet truncated or deleted) holds
    the same calls twice: the copy waits until the original no longer holds them (`ingest.copies`).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import threading
import time
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import TokentrailError
from .formats import scan_run
from .pipeline import FileResult, IngestOptions, unchanged_for
from .run import IngestRun
from .sources import discover, identify_open, is_gzip, open_binary, tail_hash_open
from .store import ChunkRows, CommitResult, Store
from .watch_options import Tick, WatchOptions, WatchStats, default_max_open

log = logging.getLogger("tokentrail.watch")
DEFERRED_WARN_SECONDS = 60.0


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
    source_id: str | None = None
    plain: bool = True  # not compressed; a plain file without a held `handle` is read by path (over the fd cap)
    deferred_since: float | None = None  # not read: a copy of another file being read (`ingest.copies`)
    deferral_said: bool = False
    held_record: bool = False  # the last read left a record open (a stream without its end)
    cut_tried: tuple[int, float] | None = None  # (size, mtime) last re-read to cut an open record off


class Watcher:
    """Tails paths; `events()` yields each committed batch (`CommitResult`) and a `Tick` per pass.

    The consumer (attribution) derives usage from the committed calls; stop with `stop.set()`.
    """

    def __init__(self, store: Store, paths: list[Path], ingest_options: IngestOptions, options: WatchOptions) -> None:
        self.store = store
        self.paths = [Path(p) for p in paths]
        self.options = options
        ingest_options.chunk_lines = options.flush_rows
        self.run = IngestRun(store, ingest_options, batch_rows=1 << 62, batch_bytes=1 << 62)
        # the files in the watched set this pass (not those rotated away): the ones another file must not
        # impersonate, and the ones a rotation's copy may repeat. All of them, tracked yet or not, so the
        # first file met in a pass is checked against those met after it too.
        self._watched: list[Path] = []
        self.run.live_files = lambda: self._watched
        self.max_open = options.max_open or default_max_open()
        self._fd_warned = False
        self.tracked: dict[tuple[int, int], Tracked] = {}
        self.stop = threading.Event()
        self.stats = WatchStats()
        self._started = False
        self._last_status = (time.monotonic(), 0)
        self._last_compact = time.monotonic()
        self._reported_skips: set[Path] = set()
        self._results: list[FileResult] = []

    # -- the loop ---------------------------------------------------------------------------
    def events(self) -> Iterator[CommitResult | Tick]:
        self.run.ingester.run_inputs = scan_run(self._discover())
        yield from self._pass(force_flush=self.options.once)
        if self.options.once:
            yield from self.drain_all()
            yield Tick(self.stats, final=True, results=self._take_results())
            return
        watch_dirs = sorted({str(p if p.is_dir() else p.parent) for p in self.paths})
        poll = self.options.poll
        while not self.stop.is_set():
            try:
                yield from self._event_loop(watch_dirs, poll)
            except (OSError, RuntimeError) as exc:
                if poll:
                    raise
                log.warning("file events unavailable (%s); falling back to polling", exc)
                poll = True
        yield from self.drain_all()
        yield Tick(self.stats, final=True, results=self._take_results())

    def _event_loop(self, dirs: list[str], poll: bool) -> Iterator[CommitResult | Tick]:
        from watchfiles import watch

        timeout_ms = int(self.options.rescan_seconds * 1000)
        for _changes in watch(*dirs, stop_event=self.stop, rust_timeout=timeout_ms, yield_on_timeout=True,
                              force_polling=poll, poll_delay_ms=timeout_ms, debounce=200, step=50,
                              raise_interrupt=False, ignore_permission_denied=True):
            # Whatever the events said, re-check every file: events are hints only.
            yield from self._pass()
            if self.stop.is_set():
                break

    def _pass(self, force_flush: bool = False) -> Iterator[CommitResult | Tick]:
        self.run.new_pass()
        yield from self.scan(force_flush)
        committed = self.run.flush()
        if committed is not None:
            yield committed
        yield Tick(self.stats, self._status_line(), results=self._take_results())
        self._maybe_compact()

    # -- scanning ---------------------------------------------------------------------------
    def _discover(self) -> list[Path]:
        existing = [p for p in self.paths if p.exists()]
        if not existing:
            return []
        skipped: list[tuple[Path, str]] = []
        found = discover(existing, self.options.glob, skipped)
        for path, why in skipped:
            if path not in self._reported_skips:
                self._reported_skips.add(path)
                log.warning("%s: %s", path, why)
        return found

    def scan(self, force_flush: bool = False) -> Iterator[CommitResult]:
        seen: set[tuple[int, int]] = set()
        first_scan = not self._started
        self._started = True
        self._watched = self._discover()
        for path in self._watched:
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
            yield from self._service(t, force_flush)
        for key in [k for k in self.tracked if k not in seen]:
            t = self.tracked[key]
            if t.handle is None:
                del self.tracked[key]
                continue
            t.gone = True  # renamed away or deleted: keep draining through the descriptor
            yield from self._service(t, force_flush)
            # a copy gone while the file it repeats still holds its bytes has nothing of its own: let it go
            if t.finalized or t.deferred_since is not None:
                t.handle.close()
                del self.tracked[key]
        self.stats.files = len(self.tracked)

    def _track(self, path: Path, key: tuple[int, int], first_scan: bool) -> Tracked | None:
        plain = not is_gzip(path)
        handle = None
        if plain:
            try:
                handle = self._open_held(path)
            except OSError as exc:
                log.warning("cannot open %s: %s", path, exc)
                return None
        t = Tracked(path, handle, key, path, plain=plain)
        self.tracked[key] = t
        if first_scan and self.options.read_from == "end" and handle is not None:
            self._skip_existing(t)
        return t

    def _open_held(self, path: Path) -> BinaryIO | None:
        """A descriptor held for the file's life (so a rotated-away file can be drained), or None once
        `max_open` are held or the process is out of descriptors: such files are read by path."""
        held = sum(1 for t in self.tracked.values() if t.handle is not None)
        if held < self.max_open:
            try:
                return open_binary(path)  # refuses a FIFO; closed when the file is finalized
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
        if not self._fd_warned:
            self._fd_warned = True
            log.warning("watching more files than descriptors allow (%d held): the others are read by path, so one "
                        "of them rotated away is not drained to its end; raise the limit (`ulimit -n`, systemd "
                        "LimitNOFILE=) or narrow the paths/--glob", held)
        return None

    def _skip_existing(self, t: Tracked) -> None:
        """--read-from end: a file never seen before starts at its last complete line (an empty commit)."""
        handle = t.handle
        assert handle is not None
        ident, head = identify_open(handle)
        if ident.fp_len == 0:
            return
        resolved = self.store.resolve(ident, head, self.run.live, lambda off: tail_hash_open(handle, off), str(t.path),
                                      handle)
        if resolved.copy_of:
            return  # a rotation's copy: resolved again when it is read, after the original let go of its lines
        # a source committed before (any record with an end offset) resumes; `resolve` also leaves a
        # provisional record (end 0) for a new source, which must not count as "seen before"
        if resolved.offset or any(r.end_offset for r in self.store.source_index().by_id.get(resolved.source_id, ())):
            return
        size = ident.size
        tail = os.pread(handle.fileno(), min(size, 1 << 20), max(0, size - (1 << 20)))
        nl = tail.rfind(b"\n")
        end = max(0, size - len(tail) + nl + 1) if nl >= 0 else 0
        if end:
            self.run.add(ChunkRows(resolved.source_id, ident, str(t.path), 0, end, tail_hash_open(handle, end)))

    def _service(self, t: Tracked, force_flush: bool) -> Generator[CommitResult, None, None]:
        if t.handle is None and t.plain:
            yield from self._service_by_path(t, force_flush)
            return
        if t.handle is None:  # .gz: read once it is complete and unchanged
            st = t.path.stat()
            if t.gz_done_stat == (st.st_size, st.st_mtime):
                return
            if (yield from self._ingest(t, final=True)):
                t.gz_done_stat = (st.st_size, st.st_mtime)
            return
        now = time.monotonic()
        st = os.fstat(t.handle.fileno())
        size = st.st_size
        if size != t.last_size:
            t.last_change = now
        rotated = t.gone or t.path != t.first_seen_path
        # The writer may still hold a rotated file open; only a quiet one is finished.
        final = rotated and not t.finalized and now - t.last_change >= self.options.final_after_seconds
        cut = self._cut_due(t, st)
        if size == t.last_size and not final and not force_flush and not cut:
            return
        due = force_flush or final or cut or now - t.last_flush >= self.options.flush_seconds
        grew_a_lot = size - max(t.last_size, 0) >= self.options.flush_rows * 200
        if not (due or grew_a_lot):
            return
        if (yield from self._ingest(t, final=final)):
            t.last_size = size
            t.last_flush = now
            t.finalized = final

    def _service_by_path(self, t: Tracked, force_flush: bool) -> Generator[CommitResult, None, None]:
        """A plain file beyond the descriptor cap: opened only while it is read (and held again once a slot frees)."""
        if not t.gone:
            with contextlib.suppress(OSError):
                t.handle = self._open_held(t.path)
            if t.handle is not None:
                yield from self._service(t, force_flush)
                return
        try:
            st = t.path.stat()
        except OSError:
            return
        size = st.st_size
        now = time.monotonic()
        cut = self._cut_due(t, st)
        if size == t.last_size and not force_flush and not cut:
            return
        if not (force_flush or cut or now - t.last_flush >= self.options.flush_seconds):
            return
        if (yield from self._ingest(t, final=False)):
            t.last_size, t.last_flush = size, now

    def _cut_due(self, t: Tracked, st: os.stat_result) -> bool:
        """An unchanged file is not read again, so a record left open in it (a stream without its end) is
        read once more when the file's mtime is `open_record_timeout` old: the pipeline cuts it off then.
        Once per (size, mtime): a file touched again too recently is not re-read on every pass."""
        if not t.held_record or t.cut_tried == (st.st_size, st.st_mtime):
            return False
        if not unchanged_for(st, self.run.options.open_record_timeout):
            return False
        t.cut_tried = (st.st_size, st.st_mtime)
        return True

    def _ingest(self, t: Tracked, final: bool) -> Generator[CommitResult, None, bool]:
        """Read what is new in one file; commits happen as batches fill. Returns True when read to the end."""
        try:
            while True:
                res = FileResult(str(t.path), None)
                yield from self.run.read_file(t.path, res, final=final, handle=t.handle, max_chunks=4)
                if res.more:
                    committed = self.run.flush()  # bound memory: a big backlog is committed as it is read
                    if committed is not None:
                        yield committed
                self._count(res)
                t.source_id = res.source_id or t.source_id
                t.held_record = res.held_record
                if res.deferred:  # a copy of a file still being read: looked at again on the next pass
                    self._note_deferred(t, res.note)
                    return False
                t.deferred_since = None
                if not res.more or self.stop.is_set():
                    return not res.more
        except (EOFError, zlib.error, gzip.BadGzipFile):
            return False  # a .gz still being written: try again on the next scan
        except FileNotFoundError:
            return False

    def _note_deferred(self, t: Tracked, note: str | None) -> None:
        """A rotation's copy waits a moment; one still waiting after DEFERRED_WARN_SECONDS is said once
        (a copy made by hand of a log being read is never read while the two are the same)."""
        now = time.monotonic()
        if t.deferred_since is None:
            t.deferred_since = now
        elif now - t.deferred_since >= DEFERRED_WARN_SECONDS and not t.deferral_said:
            t.deferral_said = True
            log.warning("%s: %s", t.path, note)

    def _take_results(self) -> list[FileResult]:
        out, self._results = self._results, []
        return out

    def _count(self, res: FileResult) -> None:
        if res.lines:
            self._results.append(res)
        self.stats.lines += res.lines
        self.stats.with_key += res.with_key
        self.stats.with_user += res.with_user
        self.stats.with_route += res.with_route
        self.stats.with_ts += res.with_ts
        self.stats.calls += res.calls
        self.stats.quarantined += res.quarantined

    def drain_all(self) -> Iterator[CommitResult]:
        """Shutdown: commit everything complete that is waiting (partial lines stay held)."""
        for t in list(self.tracked.values()):
            if t.handle is not None or t.plain:
                yield from self._ingest(t, final=False)
            elif t.gz_done_stat is None:
                yield from self._ingest(t, final=True)
        committed = self.run.flush()
        if committed is not None:
            yield committed
        self.stats.lag_bytes = self._lag()

    def close(self) -> None:
        for t in self.tracked.values():
            if t.handle is not None:
                t.handle.close()
        self.tracked.clear()

    def _lag(self) -> int:
        """Bytes written to tracked files but not yet committed."""
        lag = 0
        dt = self.store.calls.snapshot()
        for t in self.tracked.values():
            if t.handle is None or t.source_id is None:
                continue
            with contextlib.suppress(OSError):
                done = (dt.transaction_version(t.source_id) if dt is not None else None) or 0
                lag += max(os.fstat(t.handle.fileno()).st_size - done, 0)
        return lag

    # -- periodic work ----------------------------------------------------------------------
    def _status_line(self) -> str | None:
        now = time.monotonic()
        last_t, last_lines = self._last_status
        if now - last_t < self.options.status_seconds:
            return None
        self.stats.lag_bytes = self._lag()  # a read and a lookup per file: only when shown
        rate = (self.stats.lines - last_lines) / (now - last_t)
        self._last_status = (now, self.stats.lines)
        return self.stats.line(rate)

    def _maybe_compact(self) -> None:
        if time.monotonic() - self._last_compact < self.options.compact_every_seconds:
            return
        self._last_compact = time.monotonic()
        try:
            self.store.optimize()
        except (TokentrailError, OSError) as exc:  # maintenance only: the next hour tries again
            log.warning("compaction skipped: %s", exc)


__all__ = ["Tick", "Tracked", "WatchOptions", "WatchStats", "Watcher", "default_max_open"]
