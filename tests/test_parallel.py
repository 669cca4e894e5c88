"""One big file read by several workers at once commits exactly the rows one reader commits.

The file is cut at line starts; records that span lines (a container runtime's partial lines, SSE
streams) straddle some cuts, and the rows must still be the same as a single reader's.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

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
    cut: list[int] = []
    real_split = parallel.split_ranges

    def split(*args: Any, **kwargs: Any) -> list[tuple[int, int | None]]:
        ranges = real_split(*args, **kwargs)
        cut.append(len(ranges))
        return ranges

    monkeypatch.setattr(parallel, "split_ranges", split)
    one, two = tmp_path / "wh-one", tmp_path / "wh-two"
    s1 = ingest_files(one, big, jobs=1)
    assert cut == []  # one worker reads the file whole
    s2 = ingest_files(two, big, jobs=2)
    assert cut and cut[0] > 10  # two workers read it in ranges
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


class _InProcessPool:
    """ProcessPoolExecutor's interface, running each task at once in this process (so a test can
    make one range's read fail deterministically)."""

    def __init__(self, max_workers: int, mp_context: object, initializer: Any, initargs: tuple[Any, ...]) -> None:
        initializer(*initargs)

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(fn(*args))
        return fut

    def __enter__(self) -> _InProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_range_whose_file_changed_ends_the_file_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing after a range that failed (file replaced or unreadable) is committed; the next run reads it."""
    from ingest.pipeline import FileChanged, FileIngester

    monkeypatch.setattr(parallel, "RANGE_BYTES", 1500)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _InProcessPool)
    monkeypatch.setattr(parallel, "die_with_parent", lambda: None)
    big = _big(tmp_path, "openai/app_calls.jsonl", 60)
    ranges = split_ranges(big, 0, identify(big))
    failing = ranges[4][0]
    real_chunks = FileIngester.chunks

    def chunks(self: FileIngester, path: Path, source_id: str, ident: Any, offset: int, *a: Any, **k: Any) -> Any:
        if offset == failing:
            raise FileChanged(str(path))
        return real_chunks(self, path, source_id, ident, offset, *a, **k)

    monkeypatch.setattr(FileIngester, "chunks", chunks)
    wh = tmp_path / "wh"
    first = ingest_files(wh, big, jobs=2)
    (res,) = first.files
    assert res.note is not None and "replaced" in res.note
    (max_offset,), = tt_sql(wh, "SELECT max(source_offset) FROM calls_all").fetchall()
    assert max_offset < failing  # nothing at or after the failed range
    monkeypatch.setattr(FileIngester, "chunks", real_chunks)
    ingest_files(wh, big, jobs=1)
    alone = tmp_path / "wh-alone"
    ingest_files(alone, big, jobs=1)
    assert tt_sql(wh, ROW).fetchall() == tt_sql(alone, ROW).fetchall()


def test_a_format_that_carries_state_from_line_to_line_is_not_cut(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM's spend CSV: rows are read with the last header line seen. Two exports concatenated, the
    second with its columns in another order: a worker starting after the second header without
    having seen it would swap prompt and completion tokens. Such files are read whole."""
    import csv
    import io

    monkeypatch.setattr(parallel, "RANGE_BYTES", 4000)
    with open(FIXTURES / "litellm" / "spend_logs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = list(rows[0])
    second = first[:]
    i, j = second.index("prompt_tokens"), second.index("completion_tokens")
    second[i], second[j] = second[j], second[i]
    out = io.StringIO()
    for columns in (first, second):
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for n in range(60):
            for row in rows:
                writer.writerow({**row, "request_id": f"{row['request_id']}-{columns is second}-{n}"})
    big = tmp_path / "logs" / "spend_logs.csv"
    big.parent.mkdir()
    big.write_text(out.getvalue())
    assert len(split_ranges(big, 0, identify(big))) > 10
    one, two = tmp_path / "wh-one", tmp_path / "wh-two"
    ingest_files(one, big, jobs=1)
    ingest_files(two, big, jobs=2)
    q = "SELECT call_id, input_tokens, output_tokens FROM calls_all ORDER BY source_offset"
    assert tt_sql(one, q).fetchall() == tt_sql(two, q).fetchall()
