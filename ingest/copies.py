"""Files on this host that hold the same bytes: a rotation's copy still being made, and the file it copies.

Rotation has a window in which two files hold the same calls. copytruncate copies the live log
and only then truncates it; a gzip rotation compresses the renamed log and only then deletes it
(logrotate's `compress`, which can take seconds on a big file). A reader that sees both in that
window must read those calls once: the copy is left alone while the file it copies still holds
them, and once that file is truncated or deleted the copy is recognised as the old source (by
its head and the bytes before its offset) and resumed there. Two files that merely start alike
(a shared banner) diverge after it and stay two sources.

"Holds the same bytes" is decided on samples, the head fingerprint and the COMPARE_BYTES before
the copy's end (decompressed for `.gz`), so a check costs two small reads for plain files. A
sample can only err towards waiting, never towards reading a call twice.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .sources import (
    FINGERPRINT_BYTES,
    READ_BLOCK,
    CorruptCompressedFile,
    FileIdentity,
    fingerprint,
    identify_with_head,
    is_gzip,
    open_binary,
    tail_hash,
)

COMPARE_BYTES = 64 << 10


def copy_note(original: str) -> str:
    return (f"holds the same bytes as {original} (a copy: a rotation not finished, or made by hand): not read "
            f"while that file holds them; once it is truncated or removed, read from where its source stopped")


@dataclass(frozen=True, slots=True)
class LiveFile:
    path: Path
    ident: FileIdentity
    head: bytes  # the first FINGERPRINT_BYTES (fewer if the file is shorter)


class LiveFiles:
    """The files being read now (identified once per pass), by (device, inode) and by head fingerprint."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.by_key: dict[tuple[int, int], LiveFile] = {}
        self.by_fp: dict[str, list[LiveFile]] = defaultdict(list)
        for p in paths:
            with contextlib.suppress(OSError):
                ident, head = identify_with_head(p)
                if (ident.dev, ident.inode) not in self.by_key and head:
                    f = LiveFile(p, ident, head)
                    self.by_key[(ident.dev, ident.inode)] = f
                    self.by_fp[ident.fp].append(f)

    def holding(self, dev: int | None, inode: int | None, fp: str, fp_len: int, end: int,
                tail: str | None) -> LiveFile | None:
        """The live file at (dev, inode) if it still holds what a record of it saw: the recorded head
        (perhaps grown past it since) and, for a plain file, the same bytes before the record's end. A
        file truncated and rewritten with the same first bytes (a banner) holds the head but not the
        rest, and so is no longer that source."""
        f = self.by_key.get((dev, inode)) if dev is not None and inode is not None else None
        if f is None or len(f.head) < fp_len or fingerprint(f.head[:fp_len]) != fp:
            return None
        if end and tail is not None and not f.ident.compressed and (f.ident.size < end or tail_hash(f.path, end) != tail):
            return None
        return f

    def copied(self, ident: FileIdentity, head: bytes, path: Path, known: Callable[[LiveFile], bool]) -> LiveFile | None:
        """The live file (same head, another file) whose bytes this file only repeats, if any: this
        file is no longer than it and their last COMPARE_BYTES before this file's end are equal. Of two
        equal files one must still be read: the one `known` (already a source by its inode), else the
        plain one (a renamed log may still be written to; its `.gz` never grows), else the first met."""
        # a copy shorter than the fingerprint window (just begun) is a twin of every file starting with it
        alike = self.by_fp.get(ident.fp, ()) if len(head) >= FINGERPRINT_BYTES else \
            [f for f in self.by_key.values() if f.head.startswith(head)]
        twins = [f for f in alike if (f.ident.dev, f.ident.inode) != (ident.dev, ident.inode)]
        if not twins:
            return None
        mine = _sample(path)
        if mine is None:
            return None
        size, window, _ = mine
        for f in twins:
            theirs = _sample(f.path, size)
            if theirs is None or theirs[0] < size or theirs[1] != window:  # shorter than this file, or other bytes
                continue
            longer = theirs[2]
            if longer or known(f) or (is_gzip(path) and not is_gzip(f.path)):
                return f
        return None


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
