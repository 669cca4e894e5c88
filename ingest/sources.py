"""Finding log files and reading complete lines with their byte offsets.

A file's identity is a fingerprint of its first bytes (decompressed for `.gz`) plus
device/inode, so a renamed, copied-and-truncated or compressed rotation is recognised as
the file already read. A partial last line is never yielded: the reader stops at the last
newline, and that offset is what the checkpoint records.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

FINGERPRINT_BYTES = 1024
PREFIX_BYTES = 256  # short heads are also indexed by this much, to be found again once the file grew
# Bytes before a checkpoint whose hash must still match on resume. Fluent Bit uses 32; JSON log lines of
# equal length end alike in 32 bytes (`"total_tokens": 17}}}`), so a different file with the same head
# would pass for the old one. 1 KiB reaches back into the last line's ids and timestamps.
TAIL_BYTES = 1024
READ_BLOCK = 1 << 20
DEFAULT_MAX_LINE = 16 << 20  # 16 MiB; longer lines are quarantined by reference

LOG_SUFFIXES = (".log", ".jsonl", ".json", ".ndjson", ".txt", ".sse", ".csv", ".har")


def is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


class NotRegularFile(OSError):
    """A FIFO, socket or device: reading it could block forever or never end, so it is skipped."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"{kind}, not a regular file: skipped", str(path))


class CorruptCompressedFile(OSError):
    """A `.gz` that ends early or holds bad data: the lines before the damage are still read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(errno.EIO, f"compressed file is truncated or corrupt ({reason})", path)


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is (for messages)."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a file"


def discover(paths: Iterable[str | Path], pattern: str | None = None,
             skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Expand files and directories (recursively) into a sorted list of readable log files.

    Hidden files and our own warehouse files are skipped; with `pattern`, only names that
    match it (fnmatch syntax against the file name) are kept. Only regular files are listed:
    FIFOs, sockets and devices (which would block or never end), and symlinks that lead out of
    the directory given, go to `skipped` as (path, reason) instead.
    """
    import fnmatch

    found: list[Path] = []
    dropped: list[tuple[Path, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            root = path.resolve()
            for dirpath, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
                for name in sorted(files):
                    if name.startswith(".") or name.endswith((".parquet", ".sqlite", ".tmp", ".yaml", ".yml")):
                        continue
                    if name.endswith((".md", ".py")):
                        continue
                    _keep(Path(dirpath) / name, root, found, dropped)
        elif path.exists() or path.is_symlink():
            _keep(path, None, found, dropped)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    if pattern:
        found = [f for f in found if fnmatch.fnmatch(f.name, pattern)]
        dropped = [d for d in dropped if fnmatch.fnmatch(d[0].name, pattern)]
    if skipped is not None:
        skipped.extend(dropped)
    return found


def _keep(path: Path, root: Path | None, found: list[Path], dropped: list[tuple[Path, str]]) -> None:
    try:
        st = path.stat()  # follows symlinks: what would be read
    except OSError as exc:
        dropped.append((path, f"cannot read: {exc.strerror or exc}; skipped"))
        return
    kind = file_kind(st.st_mode)
    if kind is not None:
        dropped.append((path, f"{kind}, not a regular file: skipped"))
        return
    if root is not None and not path.resolve().is_relative_to(root):
        dropped.append((path, f"a symlink leading outside {root}: skipped"))
        return
    found.append(path)


class _CheckedGzip(gzip.GzipFile):
    """GzipFile whose truncation and corruption errors are an OSError naming the file."""

    def _fail(self, exc: Exception) -> CorruptCompressedFile:
        return CorruptCompressedFile(str(self.name), str(exc) or type(exc).__name__)

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self._fail(exc) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self._fail(exc) from None

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self._fail(exc) from None


def open_binary(path: Path) -> BinaryIO:
    """Open a regular log file for reading; `.gz` transparently (offsets are in decompressed bytes).

    Opened without blocking and checked on the descriptor, so a FIFO put in place of a log (even
    after discovery) raises NotRegularFile instead of hanging; damage in a `.gz` raises
    CorruptCompressedFile (both are OSError).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(path, kind)
        os.set_blocking(fd, True)
        raw = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    if not is_gzip(path):
        return raw
    gz = _CheckedGzip(filename=str(path), fileobj=raw, mode="rb")
    gz.myfileobj = cast(io.FileIO, raw)  # closed with the GzipFile, as gzip.open does
    return cast(BinaryIO, gz)


def sample_lines(path: Path, n: int = 50, max_line: int = 1 << 20, max_scan: int = 16 << 20) -> list[bytes]:
    """Up to `n` lines from the start of a file, for format detection, in bounded memory.

    A line over `max_line` is passed over (read in pieces, never held); reading stops after
    `max_scan` bytes or at damage in a compressed file. The last line may lack its newline.
    """
    out: list[bytes] = []
    scanned = 0
    try:
        with open_binary(path) as fh:
            while len(out) < n and scanned < max_scan:
                line = fh.readline(max_line)
                if not line:
                    break
                scanned += len(line)
                if len(line) >= max_line and not line.endswith(b"\n"):
                    while scanned < max_scan:  # pass over the rest of an overlong line
                        piece = fh.readline(max_line)
                        scanned += len(piece)
                        if not piece or piece.endswith(b"\n"):
                            break
                    continue
                out.append(line)
    except CorruptCompressedFile:
        pass  # detection works with what was readable; the reader reports the damage
    return out


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
    return identify_with_head(path)[0]


def identify_with_head(path: Path) -> tuple[FileIdentity, bytes]:
    """Identity and the head it was computed from (one read of the file's first bytes)."""
    st = path.stat()
    head = read_head(path)
    return identity_of(st, head, is_gzip(path)), head


def identity_of(st: os.stat_result, head: bytes, compressed: bool) -> FileIdentity:
    """A file's identity from its stat and the head read from it (at most FINGERPRINT_BYTES)."""
    return FileIdentity(fingerprint(head), len(head), st.st_dev, st.st_ino, st.st_size, compressed, _prefix(head))


def begins_with(head: bytes, fp: str, fp_len: int) -> bool:
    """Whether `head` begins with a recorded head: the fingerprint `fp` of its first `fp_len` bytes."""
    return len(head) >= fp_len and fingerprint(head[:fp_len]) == fp


def _prefix(head: bytes) -> str | None:
    return fingerprint(head[:PREFIX_BYTES]) if PREFIX_BYTES <= len(head) < FINGERPRINT_BYTES else None


def identify_open(fh: BinaryIO) -> tuple[FileIdentity, bytes]:
    """Identity of a file we hold open (it may have been renamed or deleted since)."""
    st = os.fstat(fh.fileno())
    head = os.pread(fh.fileno(), FINGERPRINT_BYTES, 0)
    return identity_of(st, head, False), head


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
    last line simply lacks a newline); `pending` says how many bytes are held back. Damage in a
    compressed file ends the reading like an end of file would, and `error` says what it was.
    """

    def __init__(self, fh: BinaryIO, start: int, max_line: int = DEFAULT_MAX_LINE, final: bool = False):
        self._fh = fh
        self.start = start
        self.end = start
        self.pending = 0
        self.max_line = max_line
        self.final = final
        self.error: str | None = None

    def __iter__(self) -> Iterator[Line]:
        fh = self._fh
        fh.seek(self.start)  # always: a held descriptor is wherever the last read left it, not at 0
        pos = self.start
        buf = b""
        skipping: int | None = None  # start offset of an overlong line being skipped
        skipped = 0
        # read1: one decompression step at a time, so damage in a .gz loses nothing read before it
        read = getattr(fh, "read1", fh.read)
        while True:
            try:
                block = read(READ_BLOCK)
            except CorruptCompressedFile as exc:
                self.error = exc.strerror
                break
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
