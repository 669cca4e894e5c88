"""Warehouse layout, the single-writer lock, and the exactly-once chunk commit.

Layout (Hive-partitioned, readable as it is by DuckDB, Spark, Trino, pandas):
    calls/date=YYYY-MM-DD/*.parquet       raw calls, append-only
    usage/date=YYYY-MM-DD/*.parquet       calls + attribution + cost (rebuilt by reattribute)
    quarantine/date=YYYY-MM-DD/*.parquet  lines that could not be parsed
    _state/                               checkpoints.sqlite, hmac.key, writer.lock
    _tmp/                                 files being written; no view's glob looks here

Commit protocol for a chunk (lines [start, end) of one file): write every Parquet file to
`_tmp/` and fsync it; journal the planned renames in SQLite; rename each into place and
fsync its directory; then record the new offset and drop the journal entry in one
transaction. After a crash, journaled commits are rolled forward, so a chunk is neither
lost nor written twice. (This module lives in `ingest/` rather than `attribution/store.py`
because the writer needs it and `ingest` must not import `attribution`.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .checkpoint import Checkpoints
from .errors import WarehouseError, WarehouseLocked, WarehouseWriteError
from .keys import KeyHasher, load_or_create_secret
from .sources import FileIdentity

TABLES = ("calls", "usage", "quarantine")
PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True, "row_group_size": 256 * 1024}
SECRET_ID_META = "secret_id"


def default_warehouse() -> Path:
    return Path(os.environ.get("TOKENTRAIL_WAREHOUSE") or "warehouse")


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


def fsync_dir(path: Path) -> None:
    """Without this a rename can surface as a missing or empty file after power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_durably(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pq.write_table(table, fh, **PARQUET_OPTIONS)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())


class Warehouse:
    """A warehouse directory. Readers need nothing; writers take `lock()` first."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.state_dir = self.root / "_state"
        self.tmp_dir = self.root / "_tmp"
        self._checkpoints: Checkpoints | None = None
        self._hasher: KeyHasher | None = None
        self._lock_fd: int | None = None
        self.host = _host_tag()

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, date: str) -> Path:
        """The directory for one date partition, created if missing.

        `usage` partitions are symlinks to a generation directory (`usage/_gen/date=D/<gen>`),
        so `reattribute` can replace a whole partition with one atomic rename of a symlink.
        """
        part = self.table_dir(table) / f"date={date}"
        if table != "usage" or part.exists():
            part.mkdir(parents=True, exist_ok=True)
            return part
        gen = self.new_generation_dir(date, "ingest")
        self.point_partition(date, gen)
        return part

    def new_generation_dir(self, date: str, label: str) -> Path:
        gen = self.table_dir("usage") / "_gen" / f"date={date}" / f"{label}-{time.time_ns()}"
        gen.mkdir(parents=True)
        return gen

    def point_partition(self, date: str, gen: Path) -> None:
        """Atomically make `usage/date=D` point at `gen` (rename of a fresh symlink over the old one)."""
        usage = self.table_dir("usage")
        link = usage / f"date={date}"
        tmp = usage / f".date={date}.{os.getpid()}.lnk"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.path.relpath(gen, usage), tmp)
        os.replace(tmp, link)
        fsync_dir(usage)

    # -- state ------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Checkpoints:
        if self._checkpoints is None:
            self._checkpoints = Checkpoints(self.state_dir / "checkpoints.sqlite")
        return self._checkpoints

    @property
    def hasher(self) -> KeyHasher:
        """The HMAC key fingerprinter; detects a missing or swapped secret file."""
        if self._hasher is None:
            expected = self.checkpoints.get_meta(SECRET_ID_META)
            self._hasher = load_or_create_secret(self.state_dir, expected)
            if expected is None:
                self.checkpoints.set_meta(SECRET_ID_META, self._hasher.secret_id)
        return self._hasher

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None
        self.unlock()

    # -- single writer ----------------------------------------------------------------------
    def lock(self, purpose: str = "ingest", wait_seconds: float = 0.0) -> None:
        """Take the writer lock (flock: released by the kernel if the process dies)."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create {self.state_dir}: {exc.strerror}") from exc
        path = self.state_dir / "writer.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                    os.close(fd)
                    raise WarehouseLocked(
                        f"{self.root} is locked by {holder}. Only one writer (ingest, watch, reattribute, "
                        f"compact) may run per warehouse; stop it or wait for it to finish."
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({purpose}) on {socket.gethostname()}\n".encode(), 0)
        self._lock_fd = fd
        self.recover()

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def writing(self, purpose: str = "ingest", wait_seconds: float = 0.0) -> Iterator[Warehouse]:
        self.lock(purpose, wait_seconds)
        try:
            yield self
        finally:
            self.unlock()

    # -- recovery ---------------------------------------------------------------------------
    def recover(self) -> int:
        """Roll journaled commits forward and delete temporary files no journal entry owns."""
        done = 0
        owned: set[str] = set()
        for p in self.checkpoints.pending():
            for tmp, final in p.moves:
                tmp_p, final_p = Path(tmp), Path(final)
                if tmp_p.exists():
                    self._ensure_parent(final_p)
                    os.replace(tmp_p, final_p)
                    fsync_dir(final_p.parent)
                owned.add(tmp)
            self.checkpoints.finish_recovered(p)
            done += 1
        for partition, target in self.checkpoints.db.execute(
            "SELECT partition, new_target FROM reattribute_journal"
        ).fetchall():
            # a re-attribution wrote this partition completely before journaling it: finish the swap
            if Path(target).is_dir():
                self.point_partition(partition, Path(target))
            self.checkpoints.db.execute("DELETE FROM reattribute_journal WHERE partition=?", (partition,))
            done += 1
        from .compact import recover_compactions

        done += recover_compactions(self)
        if self.tmp_dir.exists():
            for f in self.tmp_dir.iterdir():
                if str(f) not in owned and f.is_file():
                    f.unlink()
        return done

    def replace_usage_partition(self, date: str, table: pa.Table, label: str) -> None:
        """Swap a whole `usage` partition for `table`: readers see the old one or the new one.

        The new generation is written durably and journaled before the symlink moves, so a crash
        is finished by the next writer's `recover()`. The previous generation is kept (a reader
        may still be scanning it); older ones are removed.
        """
        usage_dir = self.table_dir("usage")
        link = usage_dir / f"date={date}"
        old_target = link.resolve() if link.is_symlink() else None
        gen = self.new_generation_dir(date, label)
        write_parquet_durably(table, gen / "usage.parquet")
        fsync_dir(gen)
        db = self.checkpoints.db
        db.execute("INSERT OR REPLACE INTO reattribute_journal(partition, new_target, created_at) VALUES (?,?,?)",
                   (date, str(gen), time.time()))
        if link.exists() and not link.is_symlink():
            # A partition from a layout without generations: moved aside first (once per partition).
            legacy = usage_dir / "_gen" / f"date={date}" / f"legacy-{time.time_ns()}"
            os.replace(link, legacy)
            old_target = legacy
        self.point_partition(date, gen)
        db.execute("DELETE FROM reattribute_journal WHERE partition=?", (date,))
        keep = {gen.resolve()} | ({old_target.resolve()} if old_target else set())
        for g in (usage_dir / "_gen" / f"date={date}").iterdir():
            if g.resolve() not in keep:
                shutil.rmtree(g, ignore_errors=True)

    def _ensure_parent(self, final: Path) -> None:
        table = final.parent.parent.name
        date = final.parent.name.removeprefix("date=")
        self.partition_dir(table, date)

    # -- committing a chunk -----------------------------------------------------------------
    def commit_chunk(
        self,
        ident: FileIdentity,
        source_path: str,
        start: int,
        end: int,
        tail: str | None,
        tables: dict[str, pa.Table | None],
        date_of_quarantine: str,
    ) -> list[Path]:
        """Write a chunk's tables (split into date partitions) and advance the offset, exactly once."""
        name = f"{self.host}-{ident.short}-{start:012d}-{end:012d}.parquet"
        moves: list[tuple[str, str]] = []
        try:
            for kind, table in tables.items():
                if table is None or table.num_rows == 0:
                    continue
                for date, part in split_by_date(table, date_of_quarantine if kind == "quarantine" else None):
                    final = self.table_dir(kind) / f"date={date}" / name
                    tmp = self.tmp_dir / f"{kind}-{date}-{name}"
                    moves.append((str(tmp), str(final)))
                    write_parquet_durably(part, tmp)
            if moves:
                fsync_dir(self.tmp_dir)
        except OSError as exc:
            # Nothing is journaled yet: drop the temporary files; the offset stays where it was.
            for tmp_name, _ in moves:
                Path(tmp_name).unlink(missing_ok=True)
            raise WarehouseWriteError(
                f"{exc.strerror or exc} while writing {exc.filename or self.tmp_dir}; nothing partial was committed. "
                f"Free space (or fix permissions) and run the command again: it resumes from its checkpoints."
            ) from exc
        pending_id = self.checkpoints.begin_commit(ident, source_path, start, end, tail, moves)
        for tmp_name, final_name in moves:
            final_p = Path(final_name)
            self._ensure_parent(final_p)
            os.replace(tmp_name, final_p)
            fsync_dir(final_p.parent)
        self.checkpoints.finish_commit(pending_id, ident, source_path, end, tail)
        return [Path(f) for _, f in moves]


def split_by_date(table: pa.Table, fixed_date: str | None = None) -> Iterator[tuple[str, pa.Table]]:
    if fixed_date is not None:
        yield fixed_date, table
        return
    dates = pc.strftime(table["ts"], format="%Y-%m-%d")
    uniques = pc.unique(dates).to_pylist()
    if len(uniques) == 1:
        yield uniques[0], table
        return
    for d in sorted(uniques):
        yield d, table.filter(pc.equal(dates, d))
