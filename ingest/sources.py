"""Finding log files and reading complete lines with their byte offsets.

A file's identity is a fingerprint of its first bytes (decompressed for `.gz`) plus
device/inode, so a renamed, copied-and-truncated or compressed rotation is recognised as
the file already read. A partial last line is never yielded: the reader stops at the last
newline, and that offset is what the checkpoint records.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FINGERPRINT_BYTES = 1024
PREFIX_BYTES = 256  # short heads are also indexed by this much, to be found again once the file grew
TAIL_BYTES = 32
READ_BLOCK = 1 << 20
DEFAULT_MAX_LINE = 16 << 20  # 16 MiB; longer lines are quarantined by reference

LOG_SUFFIXES = (".log", ".jsonl", ".json", ".ndjson", ".txt", ".sse", ".csv", ".har")


def is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


def discover(paths: Iterable[str | Path], pattern: str | None = None) -> list[Path]:
    """Expand files and directories (recursively) into a sorted list of readable log files.

    Hidden files and our own warehouse files are skipped; with `pattern`, only names that
    match it (fnmatch syntax against the file name) are kept.
    """
    import fnmatch

    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
                for name in sorted(files):
                    if name.startswith(".") or name.endswith((".parquet", ".sqlite", ".tmp", ".yaml", ".yml")):
                        continue
                    if name.endswith((".md", ".py")):
                        continue
                    found.append(Path(root) / name)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    if pattern:
        found = [f for f in found if fnmatch.fnmatch(f.name, pattern)]
    return found


def open_binary(path: Path) -> BinaryIO:
    """Open a log file for reading; `.gz` transparently (offsets are in decompressed bytes)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


@dataclass(frozen=True, slots=True)
class FileIdentity:
    fp: str  # sha256 of the first `fp_len` (decompressed) bytes
    fp_len: int
    dev: int
    inode: int
    size: int  # bytes on disk (compressed size for .gz)
    compressed: bool
    prefix: str | None = None  # hash of the first PREFIX_BYTES when the head is shorter than the window


    @property
    def short(self) -> str:
        return self.fp[:16]


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


def read_head(path: Path, n: int = FINGERPRINT_BYTES) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""


def identify(path: Path) -> FileIdentity:
    st = path.stat()
    head = read_head(path)
    return FileIdentity(
        fp=fingerprint(head),
        fp_len=len(head),
        dev=st.st_dev,
        inode=st.st_ino,
        size=st.st_size,
        compressed=is_gzip(path),
        prefix=_prefix(head),
    )


def _prefix(head: bytes) -> str | None:
    return fingerprint(head[:PREFIX_BYTES]) if PREFIX_BYTES <= len(head) < FINGERPRINT_BYTES else None


def identify_open(fh: BinaryIO) -> tuple[FileIdentity, bytes]:
    """Identity of a file we hold open (it may have been renamed or deleted since)."""
    st = os.fstat(fh.fileno())
    head = os.pread(fh.fileno(), FINGERPRINT_BYTES, 0)
    return FileIdentity(fingerprint(head), len(head), st.st_dev, st.st_ino, st.st_size, False, _prefix(head)), head


def tail_hash(path: Path, offset: int) -> str | None:
    """Hash of the TAIL_BYTES before `offset`: detects a file truncated or replaced under us."""
    try:
        with open(path, "rb") as fh:
            return tail_hash_open(fh, offset)
    except OSError:
        return None


def tail_hash_open(fh: BinaryIO, offset: int) -> str | None:
    """The same, through a descriptor we hold (the file may have been renamed or deleted)."""
    if offset <= 0:
        return None
    start = max(0, offset - TAIL_BYTES)
    data = os.pread(fh.fileno(), offset - start, start)
    return hashlib.sha256(data).hexdigest()[:16] if len(data) == offset - start else None


@dataclass(slots=True)
class Line:
    """A complete line (without its newline). `data` is None for a line over the cap."""

    offset: int
    length: int  # bytes including the newline
    data: bytes | None


class LineReader:
    """Reads complete lines from `start`; `end` is the offset just past the last one yielded.

    Lines longer than `max_line` are yielded with `data=None` (never held whole in memory).
    A trailing partial line is not yielded unless `final` (a compressed or closed file whose
    last line simply lacks a newline); `pending` says how many bytes are held back.
    """

    def __init__(self, fh: BinaryIO, start: int, max_line: int = DEFAULT_MAX_LINE, final: bool = False):
        self._fh = fh
        self.start = start
        self.end = start
        self.pending = 0
        self.max_line = max_line
        self.final = final

    def __iter__(self) -> Iterator[Line]:
        fh = self._fh
        fh.seek(self.start)  # always: a held descriptor is wherever the last read left it, not at 0
        pos = self.start
        buf = b""
        skipping: int | None = None  # start offset of an overlong line being skipped
        skipped = 0
        while True:
            block = fh.read(READ_BLOCK)
            if not block:
                break
            if skipping is not None:
                nl = block.find(b"\n")
                if nl < 0:
                    skipped += len(block)
                    continue
                length = skipped + nl + 1
                yield Line(skipping, length, None)
                pos = skipping + length
                self.end = pos
                skipping = None
                block = block[nl + 1 :]
            data = buf + block if buf else block
            parts = data.split(b"\n")
            buf = parts.pop()
            for part in parts:
                n = len(part) + 1
                if n > self.max_line:
                    yield Line(pos, n, None)
                else:
                    yield Line(pos, n, part)
                pos += n
            self.end = pos
            if len(buf) > self.max_line:
                skipping, skipped, buf = pos, len(buf), b""
        if skipping is not None:
            # an overlong line still without its newline: held (by reference) like any partial line
            self.pending = skipped
            if self.final:
                yield Line(skipping, skipped, None)
                self.end = skipping + skipped
                self.pending = 0
            return
        self.pending = len(buf)
        if buf and self.final:
            yield Line(pos, len(buf), buf)
            self.end = pos + len(buf)
            self.pending = 0
