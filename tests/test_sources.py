"""Line reading with byte offsets and file identity."""

from __future__ import annotations

import io
from pathlib import Path

from ingest.sources import LineReader, identify


def test_reader_starting_at_zero_rewinds_a_used_handle(tmp_path: Path) -> None:
    """Regression: a held descriptor left mid-file must still be read from offset 0 when asked to."""
    f = tmp_path / "a.log"
    f.write_bytes(b"first\nsecond\nthird\n")
    with open(f, "rb") as fh:
        fh.read(9)  # a previous read left the position mid-file
        lines = [(ln.offset, ln.data) for ln in LineReader(fh, 0)]
    assert lines == [(0, b"first"), (6, b"second"), (13, b"third")]


def test_partial_last_line_is_held_unless_final() -> None:
    data = b"a\nbb\nccc"
    r = LineReader(io.BytesIO(data), 0)
    assert [ln.data for ln in r] == [b"a", b"bb"] and (r.end, r.pending) == (5, 3)
    r = LineReader(io.BytesIO(data), 0, final=True)
    assert [ln.data for ln in r] == [b"a", b"bb", b"ccc"] and (r.end, r.pending) == (8, 0)


def test_overlong_lines_are_yielded_by_reference_across_blocks() -> None:
    data = b"ok\n" + b"x" * 3_000_000 + b"\nafter\n"
    out = [(ln.offset, ln.length, ln.data) for ln in LineReader(io.BytesIO(data), 0, max_line=1000)]
    assert out == [(0, 3, b"ok"), (3, 3_000_001, None), (3_000_004, 6, b"after")]


def test_crlf_and_resume_offsets() -> None:
    data = b"one\r\ntwo\r\n"
    assert [(ln.offset, ln.data) for ln in LineReader(io.BytesIO(data), 5)] == [(5, b"two\r")]


def test_identity_of_short_files_and_gzip(tmp_path: Path) -> None:
    import gzip

    f = tmp_path / "a.log"
    f.write_bytes(b"short\n")
    g = tmp_path / "a.log.gz"
    with gzip.open(g, "wb") as fh:
        fh.write(b"short\n")
    a, b = identify(f), identify(g)
    assert a.fp == b.fp and a.fp_len == b.fp_len == 6 and b.compressed and not a.compressed
