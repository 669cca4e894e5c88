"""Which source a file is, and where reading it resumes: identity resolved against the `_sources` table.

A source id is assigned the first time a file is committed and then kept. Each chunk commit
appends a `_sources` row (source id, head fingerprint, host/device/inode, end offset, hash of
the TAIL_BYTES before it) *before* the chunk's rows commit; the authoritative offset is the
`calls` table's application-transaction version for the source id. A file is matched to a
source, in order:
  1. same host, device and inode, and the recorded head still matches (it is the same file,
     perhaps grown past a head that was shorter than the fingerprint window);
  2. same head fingerprint, recorded file no longer live with that head on this host, and the
     bytes before the recorded offset still match: a rotation copy, a moved file, a replaced host;
  3. otherwise a new source. Two live files with the same first bytes are two sources, unless
     one only repeats the other's bytes (a rotation's copy being made): that one is not read
     until the other is truncated or removed (`ingest.copies`). Meanwhile a copy link is recorded
     (`copy` = true: the copy's identity, its length and tail hash, under the source it repeats);
     an unchanged copy then resumes that source without the check of 2, which cannot hold where
     the source was read past the copy's end. Links are never candidates for 1 or 2.
On resume the offset is verified: a file shorter than it, or whose bytes before it changed,
was truncated or replaced, and is read from 0 under a new (deterministic) source id.
"""

from __future__ import annotations

import hashlib
import socket
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa

from ..sources import FINGERPRINT_BYTES, PREFIX_BYTES, FileIdentity, begins_with, fingerprint

SOURCES_SCHEMA = pa.schema([
    pa.field("source_id", pa.string(), nullable=False),
    pa.field("fp", pa.string(), nullable=False),
    pa.field("fp_len", pa.int64(), nullable=False),
    pa.field("host", pa.string(), nullable=False),
    pa.field("dev", pa.int64()),
    pa.field("inode", pa.int64()),
    pa.field("path", pa.string()),
    pa.field("end_offset", pa.int64(), nullable=False),
    pa.field("tail_hash", pa.string()),
    pa.field("compressed", pa.bool_()),
    pa.field("committed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("prefix", pa.string()),  # hash of the first PREFIX_BYTES, for heads shorter than the window
    pa.field("format", pa.string()),  # the format spec the source was read with (kept for later runs)
    # a copy link: this file was seen holding the source's first `end_offset` bytes while another file
    # was read under it (`ingest.copies`); never a place the source is read from, only a way back to it
    pa.field("copy", pa.bool_()),
])



def host_name() -> str:
    return socket.gethostname() or "host"


@dataclass(slots=True)
class SourceRecord:
    source_id: str
    fp: str
    fp_len: int
    host: str
    dev: int | None
    inode: int | None
    path: str
    end_offset: int
    tail_hash: str | None
    compressed: bool
    committed_at: int
    prefix: str | None = None
    format: str | None = None
    copy: bool | None = False  # a copy link (None in rows written before the column existed)


@dataclass(slots=True)
class Resolved:
    source_id: str
    offset: int
    note: str | None = None
    duplicate_of: str | None = None  # another live file with the same head fingerprint
    format: str | None = None  # the format spec it was read with before
    copy_of: str | None = None  # not to be read now: it repeats the bytes of this live file (a rotation in progress)


class SourceIndex:
    """The `_sources` rows in memory, indexed by head fingerprint; updated as we commit."""

    def __init__(self, rows: list[SourceRecord], host: str | None = None) -> None:
        self.host = host or host_name()
        self.by_fp: dict[str, list[SourceRecord]] = defaultdict(list)
        self.by_id: dict[str, list[SourceRecord]] = defaultdict(list)
        self.by_inode: dict[tuple[str, int | None, int | None], list[SourceRecord]] = defaultdict(list)
        # records of files that were shorter than the window: found again by a prefix once they grew
        self.short_by_prefix: dict[str, list[SourceRecord]] = defaultdict(list)
        self.tiny_lens: set[int] = set()
        for r in rows:
            self.add(r)

    @classmethod
    def from_table(cls, table: pa.Table, host: str | None = None) -> SourceIndex:
        rows = [SourceRecord(**{k: v for k, v in d.items() if k in SourceRecord.__slots__})
                for d in table.to_pylist()] if table.num_rows else []
        for r in rows:
            if not isinstance(r.committed_at, int):
                r.committed_at = int(r.committed_at.timestamp() * 1_000_000)
        return cls(rows, host)

    def add(self, r: SourceRecord) -> None:
        self.by_fp[r.fp].append(r)
        self.by_id[r.source_id].append(r)
        self.by_inode[(r.host, r.dev, r.inode)].append(r)
        if r.fp_len < PREFIX_BYTES:
            self.tiny_lens.add(r.fp_len)
        elif r.fp_len < FINGERPRINT_BYTES:
            self.short_by_prefix[r.prefix or ""].append(r)

    def source_of(self, host: str, dev: int, inode: int, head: bytes) -> str | None:
        """The newest source read from this file (found by inode) whose recorded head it still begins with."""
        best: SourceRecord | None = None
        for r in self.by_inode.get((host, dev, inode), ()):
            if not r.copy and begins_with(head, r.fp, r.fp_len) and \
                    (best is None or r.committed_at > best.committed_at):
                best = r
        return best.source_id if best is not None else None

    def tail_at(self, source_id: str, offset: int) -> str | None:
        for r in self.by_id.get(source_id, ()):
            if r.end_offset == offset:
                return r.tail_hash
        return None

    def candidates(self, ident: FileIdentity, head: bytes) -> list[SourceRecord]:
        """Records whose head matches this file's: the same head, or (for this very file, found by
        inode) a shorter head it has grown from. Newest record per source id, newest first; copy links
        are not among them (`Store._copied_from` reads those)."""
        out = list(self.by_fp.get(ident.fp, ()))
        if ident.fp_len > PREFIX_BYTES:
            for r in self.short_by_prefix.get(fingerprint(head[:PREFIX_BYTES]), ()):
                if r.fp_len < ident.fp_len and fingerprint(head[:r.fp_len]) == r.fp:
                    out.append(r)
        for n in self.tiny_lens:  # at most PREFIX_BYTES lengths, each a hash of under PREFIX_BYTES bytes
            if 0 < n < ident.fp_len:
                out += [r for r in self.by_fp.get(fingerprint(head[:n]), ()) if r.fp_len == n]
        best: dict[str, SourceRecord] = {}
        for r in out:
            if r.copy:
                continue  # a copy link names a file the source is not read from
            cur = best.get(r.source_id)
            if cur is None or (r.committed_at, r.end_offset) > (cur.committed_at, cur.end_offset):
                best[r.source_id] = r
        return sorted(best.values(), key=lambda r: -r.committed_at)


def new_source_id(ident: FileIdentity, host: str) -> str:
    """Deterministic for one file on one host (two writers racing on it pick the same id, and Delta
    rejects the second commit); distinct for two files that merely share their first bytes."""
    basis = f"{ident.fp}|{ident.fp_len}|{host}|{ident.dev}|{ident.inode}"
    return "src-" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def restart_id(old: str, offset: int) -> str:
    """The id a truncated or replaced file continues under (reading from 0)."""
    return "src-" + hashlib.sha256(f"{old}|restart@{offset}".encode()).hexdigest()[:24]


def record_for(source_id: str, ident: FileIdentity, host: str, path: str, end: int, tail: str | None,
               now_us: int, fmt: str | None = None, copy: bool = False) -> SourceRecord:
    return SourceRecord(source_id, ident.fp, ident.fp_len, host, ident.dev, ident.inode, path, end, tail,
                        ident.compressed, now_us, ident.prefix, fmt, copy)


def records_table(records: list[SourceRecord]) -> pa.Table:
    cols = {name: [getattr(r, name) for r in records] for name in SOURCES_SCHEMA.names}
    return pa.Table.from_pydict(cols, schema=SOURCES_SCHEMA)
