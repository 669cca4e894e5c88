"""One big file read by several workers at once commits exactly the rows one reader commits.

The file is cut at line starts; records that span lines (a container runtime's partial lines, SSE
streams) straddle some cuts, and the rows must still be the same as a single reader's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES, ingest_files, tt_sql

from ingest import parallel
from ingest.parallel import split_ranges
from ingest.sources import identify

ROW = ("SELECT * EXCLUDE (ingested_at, api_key_fp) FROM calls_all ORDER BY source_offset, call_id")
BAD = "SELECT * EXCLUDE (ingested_at) FROM quarantine ORDER BY source_offset"


def _big(tmp_path: Path, fixture: str, copies: int) -> Path:
    data = (FIXTURES / fixture).read_bytes()
    if not data.endswith(b"\n"):
        data += b"\n"
    big = tmp_path / "logs" / Path(fixture).name
    big.parent.mkdir()
    big.write_bytes(data * copies)
    return big


@pytest.mark.parametrize("fixture", ["cri/container.log", "sse/streams.sse", "docker/json-file.log",
                                     "openai/app_calls.jsonl"])
def test_two_workers_on_one_big_file_commit_what_one_reader_commits(fixture: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1500)  # many cuts, several inside multi-line records
    big = _big(tmp_path, fixture, 60)
    assert len(split_ranges(big, 0, identify(big))) > 10
    one, two = tmp_path / "wh-one", tmp_path / "wh-two"
    s1 = ingest_files(one, big, jobs=1)
    s2 = ingest_files(two, big, jobs=2)
    assert s1.total("calls") > 0 and s1.total("calls") == s2.total("calls")
    assert tt_sql(one, ROW).fetchall() == tt_sql(two, ROW).fetchall()
    assert tt_sql(one, BAD).fetchall() == tt_sql(two, BAD).fetchall()
    assert s1.total("lines") == s2.total("lines")


def test_cuts_are_line_starts_and_cover_the_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    lines = [b"x" * (i % 37) + b"\n" for i in range(5000)]
    log.write_bytes(b"".join(lines))
    ranges = split_ranges(log, 10, identify(log), range_bytes=4000)
    data = log.read_bytes()
    assert ranges[0][0] == 10 and ranges[-1][1] is None
    for (a, b), (c, _) in zip(ranges, ranges[1:], strict=False):
        assert b == c and data[b - 1:b] == b"\n" and b - a >= 4000
    one_line = tmp_path / "one.log"
    one_line.write_bytes(b"y" * 100_000 + b"\n")
    assert split_ranges(one_line, 0, identify(one_line), range_bytes=1000) == [(0, None)]  # no line start to cut at
