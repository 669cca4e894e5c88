"""Files on this host that hold the same bytes: a rotation's copy still being made, and the file it copies.

Rotation has a window in which two files hold the same calls. copytruncate copies the live log
and only then truncates it; a gzip rotation compresses the renamed log and only then deletes it
(logrotate's `compress`, which can take seconds on a big file). A reader that sees both in that
window must read those calls once: the copy is left alone while the file it copies still holds
them, and once that file is truncated or deleted the copy is recognised as the old source (by
its head and the bytes before its offset) and resumed there. Two files that merely start alike
(a shared banner) diverge after it and stay two sources.

"Holds the same bytes" is decided on samples: the first LEAD_BYTES (compared in memory, so files
sharing only a banner are told apart without opening them) and the COMPARE_BYTES before the
copy's end (decompressed for `.gz`). Sampling can err only where two files are equal at both
places and differ between them.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from .sources import (
    FINGERPRINT_BYTES,
    READ_BLOCK,
    CorruptCompressedFile,
    FileIdentity,
    begins_with,
    identity_of,
    is_gzip,
    open_binary,
    read_head,
    tail_hash,
)

LEAD_BYTES = 8 << 10
COMPARE_BYTES = 64 << 10
# (dev, inode) -> ((size, mtime_ns, ctime_ns), first LEAD_BYTES): heads of unchanged files are not read again each pass
LeadCache = dict[tuple[int, int], tuple[tuple[int, int, int], bytes]]


def copy_note(original: str) -> str:
    return (f"holds the same bytes as {original} (a copy: a rotation not finished, or made by hand): not read "
            f"while that file holds them; once it is truncated or removed, read from where its source stopped")


@dataclass(frozen=True, slots=True)
class LiveFile:
    path: Path
    ident: FileIdentity
    lead: bytes  # the first LEAD_BYTES (fewer if the file is shorter), decompressed for `.gz`
    mtime_ns: int

    @property
    def head(self) -> bytes:
        return self.lead[:FINGERPRINT_BYTES]


@dataclass(frozen=True, slots=True)
class Candidate:
    """The file being resolved, as `LiveFiles.copied` needs it (`handle`: a plain file held open, which
    may have been deleted since: it is sampled through the descriptor)."""

    path: Path
    ident: FileIdentity
    head: bytes
    handle: BinaryIO | None = None


class LiveFiles:
    """The files being read now, identified once (per watcher pass; per `ingest` run), by (device,
    inode), by head fingerprint, and by head bytes in order (for heads shorter than the window).
    With `leads`, a file unchanged since the last pass (size, mtime) is not read again."""

    def __init__(self, paths: Iterable[Path], leads: LeadCache | None = None) -> None:
        self.by_key: dict[tuple[int, int], LiveFile] = {}
        self.by_fp: dict[str, list[LiveFile]] = defaultdict(list)
        seen: LeadCache = {}
        for p in paths:
            with contextlib.suppress(OSError):
                st = p.stat()
                key = (st.st_dev, st.st_ino)
                if key in self.by_key:
                    continue
                state = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                cached = (leads or {}).get(key)
                lead = cached[1] if cached is not None and cached[0] == state else read_head(p, LEAD_BYTES)
                seen[key] = (state, lead)
                if not lead:
                    continue
                ident = identity_of(st, lead[:FINGERPRINT_BYTES], is_gzip(p))
                f = LiveFile(p, ident, lead, st.st_mtime_ns)
                self.by_key[key] = f
                self.by_fp[ident.fp].append(f)
        if leads is not None:  # the next pass re-reads only files that changed; files gone are forgotten
            leads.clear()
            leads.update(seen)
        self._heads = sorted((f.head, key) for key, f in self.by_key.items())
        self._tails: dict[tuple[tuple[int, int], int], str | None] = {}

    def holding(self, dev: int | None, inode: int | None, fp: str, fp_len: int, end: int,
                tail: str | None) -> LiveFile | None:
        """The live file at (dev, inode) if it still holds what a record of it saw: the recorded head
        (perhaps grown past it since) and, for a plain file, the same bytes before the record's end. A
        file truncated and rewritten with the same first bytes (a banner) holds the head but not the
        rest, and so is no longer that source."""
        f = self.by_key.get((dev, inode)) if dev is not None and inode is not None else None
        if f is None or not begins_with(f.head, fp, fp_len):
            return None
        if end and tail is not None and not f.ident.compressed:
            key = ((f.ident.dev, f.ident.inode), end)
            if key not in self._tails:  # many records can name one file: each end is read once per pass
                self._tails[key] = tail_hash(f.path, end) if f.ident.size >= end else None
            if self._tails[key] != tail:
                return None
        return f

    def copied(self, me: Candidate, known: Callable[[LiveFile], bool]) -> LiveFile | None:
        """The live file whose bytes `me` only repeats, if any: another file that starts with all of
        `me`'s first LEAD_BYTES, is no shorter, and holds `me`'s last COMPARE_BYTES at the same offsets.
        Of two equal files one must still be read: the one `known` (already a source by inode and head),
        else the plain one (a renamed log may still be written to; its `.gz` never grows), else the older
        (a copy is made after its original), else the first by path; the other waits."""
        twins = self._twins(me.ident, me.head)
        if not twins:
            return None
        mine = _sample_of(me)
        if mine is None:
            return None
        size, window, _ = mine
        lead = window[: min(size, LEAD_BYTES)] if size <= COMPARE_BYTES else _lead_of(me)
        for f in twins:
            if not f.lead.startswith(lead):
                continue  # they part within the first LEAD_BYTES (a shared banner): no need to open it
            theirs = _sample(f.path, size)
            if theirs is None or theirs[0] < size or theirs[1] != window:  # shorter than `me`, or other bytes
                continue
            longer = theirs[2]
            if longer or known(f) or _rank(f) < _rank_of(me):
                return f
        return None

    def _twins(self, ident: FileIdentity, head: bytes) -> list[LiveFile]:
        """Other live files with this head; for a head shorter than the window (a copy just begun), every
        file beginning with it (found in the sorted heads, not by a scan of all files)."""
        if len(head) >= FINGERPRINT_BYTES:
            alike = self.by_fp.get(ident.fp, [])
        else:
            alike = []
            i = bisect.bisect_left(self._heads, (head,))
            while i < len(self._heads) and self._heads[i][0].startswith(head):
                alike.append(self.by_key[self._heads[i][1]])
                i += 1
        return [f for f in alike if (f.ident.dev, f.ident.inode) != (ident.dev, ident.inode)]


def _rank(f: LiveFile) -> tuple[bool, int, str]:
    return f.ident.compressed, f.mtime_ns, str(f.path)


def _rank_of(me: Candidate) -> tuple[bool, int, str]:
    try:
        mtime = os.fstat(me.handle.fileno()).st_mtime_ns if me.handle is not None else me.path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return me.ident.compressed, mtime, str(me.path)


def _lead_of(me: Candidate) -> bytes:
    if me.handle is not None:
        return os.pread(me.handle.fileno(), LEAD_BYTES, 0)
    return read_head(me.path, LEAD_BYTES)


def _sample_of(me: Candidate) -> tuple[int, bytes, bool] | None:
    if me.handle is not None and not me.ident.compressed:
        try:
            size = os.fstat(me.handle.fileno()).st_size
            return size, os.pread(me.handle.fileno(), min(size, COMPARE_BYTES), max(0, size - COMPARE_BYTES)), False
        except OSError:
            return None
    if me.ident.compressed:
        try:
            st = me.path.stat()
        except OSError:
            return None
        return _gzip_sample(str(me.path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return _sample(me.path)


@lru_cache(maxsize=32)
def _gzip_sample(path: str, dev: int, inode: int, size: int, mtime_ns: int) -> tuple[int, bytes, bool] | None:
    """A `.gz` copy is decompressed once per state of the file, not on every pass it waits."""
    return _sample(Path(path))


def _sample(path: Path, end: int | None = None) -> tuple[int, bytes, bool] | None:
    """(length, its last COMPARE_BYTES, whether the content goes on) of a file's content up to `end`
    (to its end if None), decompressed for `.gz`; a `.gz` still being written counts up to where it
    can be read. None if the file cannot be read."""
    try:
        with open_binary(path) as fh:
            if not is_gzip(path):
                size = os.fstat(fh.fileno()).st_size
                n = size if end is None else min(end, size)
                return n, os.pread(fh.fileno(), min(n, COMPARE_BYTES), max(0, n - COMPARE_BYTES)), size > n
            n, last, more = 0, b"", False
            with contextlib.suppress(CorruptCompressedFile):
                while block := fh.read(READ_BLOCK if end is None else min(READ_BLOCK, end - n)):
                    n += len(block)
                    last = (last + block)[-COMPARE_BYTES:]
                more = end is not None and bool(fh.read(1))
            return n, last, more
    except OSError:
        return None
