"""Durable per-file offsets and pending commits, in SQLite under the warehouse's `_state/`.

A file is keyed by the fingerprint of its first bytes. Short files (under the fingerprint
window) are keyed by what exists and re-keyed as they grow. A commit is journaled
(`pending`) before its Parquet files are renamed into place, so recovery after a crash can
roll it forward instead of reading the same lines again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .sources import FINGERPRINT_BYTES, FileIdentity, fingerprint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    fp TEXT NOT NULL,
    fp_len INTEGER NOT NULL,
    path TEXT NOT NULL,
    dev INTEGER,
    inode INTEGER,
    offset INTEGER NOT NULL,
    tail_hash TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (fp, fp_len)
);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fp TEXT NOT NULL,
    fp_len INTEGER NOT NULL,
    path TEXT NOT NULL,
    start INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    tail_hash TEXT,
    moves TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rulesets (
    hash TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    source TEXT,
    canonical TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reattribute_journal (
    partition TEXT PRIMARY KEY,
    new_target TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(slots=True)
class FileState:
    fp: str
    fp_len: int
    path: str
    offset: int
    tail_hash: str | None
    inode: int | None


@dataclass(slots=True)
class PendingCommit:
    id: int
    fp: str
    fp_len: int
    path: str
    start: int
    end: int
    tail_hash: str | None
    moves: list[tuple[str, str]]  # (temporary path, final path)


class Checkpoints:
    """Thin wrapper over the SQLite file; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # one user at a time, but not always the thread that opened it (the watcher runs in its own)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- file offsets -----------------------------------------------------------------------
    def lookup(self, ident: FileIdentity, head: bytes) -> FileState | None:
        """Find the record for a file by its fingerprint, re-keying a record made when it was shorter."""
        row = self.db.execute(
            "SELECT fp, fp_len, path, offset, tail_hash, inode FROM files WHERE fp=? AND fp_len=?",
            (ident.fp, ident.fp_len),
        ).fetchone()
        if row:
            return FileState(*row)
        # A record taken when the file was shorter than it is now: match on that prefix.
        for (fp_len,) in self.db.execute(
            "SELECT DISTINCT fp_len FROM files WHERE fp_len < ? AND fp_len > 0", (min(len(head), FINGERPRINT_BYTES),)
        ).fetchall():
            prefix_fp = fingerprint(head[:fp_len])
            row = self.db.execute(
                "SELECT fp, fp_len, path, offset, tail_hash, inode FROM files WHERE fp=? AND fp_len=?",
                (prefix_fp, fp_len),
            ).fetchone()
            if row:
                with self.db:
                    self.db.execute(
                        "UPDATE files SET fp=?, fp_len=? WHERE fp=? AND fp_len=?",
                        (ident.fp, ident.fp_len, prefix_fp, fp_len),
                    )
                    self.db.execute(
                        "UPDATE pending SET fp=?, fp_len=? WHERE fp=? AND fp_len=?",
                        (ident.fp, ident.fp_len, prefix_fp, fp_len),
                    )
                state = FileState(*row)
                state.fp, state.fp_len = ident.fp, ident.fp_len
                return state
        return None

    def record_offset(self, ident: FileIdentity, path: str, offset: int, tail: str | None) -> None:
        self.db.execute(
            "INSERT INTO files(fp, fp_len, path, dev, inode, offset, tail_hash, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(fp, fp_len) DO UPDATE SET path=excluded.path, "
            "dev=excluded.dev, inode=excluded.inode, offset=excluded.offset, tail_hash=excluded.tail_hash, "
            "updated_at=excluded.updated_at",
            (ident.fp, ident.fp_len, path, ident.dev, ident.inode, offset, tail, time.time()),
        )

    def all_files(self) -> list[FileState]:
        return [
            FileState(*r)
            for r in self.db.execute("SELECT fp, fp_len, path, offset, tail_hash, inode FROM files").fetchall()
        ]

    # -- pending commits --------------------------------------------------------------------
    def begin_commit(
        self, ident: FileIdentity, path: str, start: int, end: int, tail: str | None, moves: list[tuple[str, str]]
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO pending(fp, fp_len, path, start, end_offset, tail_hash, moves, created_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (ident.fp, ident.fp_len, path, start, end, tail, json.dumps(moves), time.time()),
        )
        return int(cur.lastrowid or 0)

    def finish_commit(self, pending_id: int, ident: FileIdentity, path: str, end: int, tail: str | None) -> None:
        """Record the new offset and drop the journal entry in one transaction."""
        with self.db:
            self.record_offset(ident, path, end, tail)
            self.db.execute("DELETE FROM pending WHERE id=?", (pending_id,))

    def pending(self) -> list[PendingCommit]:
        rows = self.db.execute(
            "SELECT id, fp, fp_len, path, start, end_offset, tail_hash, moves FROM pending ORDER BY id"
        ).fetchall()
        return [PendingCommit(id=r[0], fp=r[1], fp_len=r[2], path=r[3], start=r[4], end=r[5], tail_hash=r[6],
                              moves=[(m[0], m[1]) for m in json.loads(r[7])]) for r in rows]

    def finish_recovered(self, p: PendingCommit) -> None:
        """Roll a journaled commit forward: its files are in place, so its end offset stands."""
        with self.db:
            self.db.execute(
                "INSERT INTO files(fp, fp_len, path, offset, tail_hash, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(fp, fp_len) DO UPDATE SET offset=MAX(files.offset, excluded.offset), "
                "tail_hash=excluded.tail_hash, updated_at=excluded.updated_at",
                (p.fp, p.fp_len, p.path, p.end, p.tail_hash, time.time()),
            )
            self.db.execute("DELETE FROM pending WHERE id=?", (p.id,))

    # -- rulesets ---------------------------------------------------------------------------
    def record_ruleset(self, digest: str, canonical: str, source: str | None) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO rulesets(hash, created_at, source, canonical) VALUES (?,?,?,?)",
            (digest, time.time(), source, canonical),
        )
