"""The Delta Lake store: exactly once by table transactions, source identity, recovery branches.

Each recovery branch in `ingest.store` and `attribution.derive` has a test here that fails when
the branch is removed (see the mutation list in the issue note).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ingest_files, tt_sql
from helpers.procs import alive, children

from ingest.pipeline import FileIngester, FileResult, IngestOptions
from ingest.sources import identify, identify_with_head, tail_hash
from ingest.store import ChunkRows, Store

PY = [sys.executable, "-m", "attribution"]


def call_line(i: int, ts: str = "2025-03-03T10:00:00Z", prefix: str = "c") -> str:
    return json.dumps({
        "timestamp": ts, "route": "/r",
        "response": {"id": f"chatcmpl-{prefix}{i}", "object": "chat.completion", "created": 1741000000,
                     "model": "gpt-4o-mini", "choices": [],
                     "usage": {"prompt_tokens": 10 + i, "completion_tokens": 5, "total_tokens": 15 + i}}}) + "\n"


def ids(wh: Path, view: str = "calls_all") -> list[str]:
    return sorted(r[0] for r in tt_sql(wh, f"SELECT call_id FROM {view}").fetchall())


def chunks_of(store: Store, path: Path, offset: int | None = None, chunk_lines: int = 8000) -> list[ChunkRows]:
    """Parse a file into chunks the way ingest does, without committing."""
    ident, head = identify_with_head(path)
    resolved = store.resolve(ident, head, None, lambda off: tail_hash(path, off))
    ing = FileIngester(store.hasher, IngestOptions(chunk_lines=chunk_lines))
    return list(ing.chunks(path, resolved.source_id, ident, resolved.offset if offset is None else offset,
                           FileResult(str(path), None)))


# -- exactly once -----------------------------------------------------------------------------


def test_a_chunk_committed_twice_is_stored_once(tmp_path: Path, wh_path: Path) -> None:
    """Two writers racing on the same range: the second finds the range committed and adds nothing."""
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(10)))
    a, b = Store(wh_path).prepare_for_writing(), Store(wh_path)
    chunks = chunks_of(a, log)
    assert a.commit_chunks(chunks).calls.num_rows == 10  # type: ignore[union-attr]
    again = b.commit_chunks(chunks)
    assert again.chunks == [] and again.calls is None
    assert ids(wh_path) == sorted(f"chatcmpl-c{i}" for i in range(10))


def test_an_overlapping_chunk_adds_only_the_lines_past_the_committed_offset(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(4)))
    store = Store(wh_path).prepare_for_writing()
    store.commit_chunks(chunks_of(store, log))
    with log.open("a") as fh:
        fh.write("".join(call_line(i) for i in range(4, 9)))
    whole = chunks_of(store, log, offset=0)  # a writer that read from 0 (stale offset)
    r = store.commit_chunks(whole)
    assert r.calls is not None and sorted(r.calls["call_id"].to_pylist()) == sorted(f"chatcmpl-c{i}" for i in range(4, 9))
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(9))


def test_the_same_source_twice_in_one_batch_is_stored_once(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(6)))
    store = Store(wh_path).prepare_for_writing()
    first = chunks_of(store, log, chunk_lines=3)  # [0, mid) and [mid, end)
    overlapping = chunks_of(store, log, offset=0)  # [0, end) again, in the same batch
    store.commit_chunks([*first, *overlapping])
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(6))


def test_quarantine_rows_are_stored_once_when_calls_lagged_behind(tmp_path: Path, wh_path: Path) -> None:
    """A crash after the quarantine commit and before the calls commit: the re-read adds no quarantine row twice."""
    log = tmp_path / "a.log"
    log.write_text(call_line(0) + "{not json\n" + call_line(1))
    store = Store(wh_path).prepare_for_writing()
    (chunk,) = chunks_of(store, log)
    store.commit_quarantine([chunk], "2025-03-03")  # the first half of a commit, then the "crash"
    ingest_files(wh_path, log)
    (n,), = tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall()
    assert n == 1 and ids(wh_path) == ["chatcmpl-c0", "chatcmpl-c1"]


def test_usage_missing_after_a_crash_is_repaired_once(tmp_path: Path, wh_path: Path) -> None:
    """Calls committed, then the process died before usage: the next run attributes exactly the missing range."""
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(5)))
    ingest_files(wh_path, log)
    with log.open("a") as fh:
        fh.write("".join(call_line(i) for i in range(5, 8)))
    store = Store(wh_path)
    store.commit_chunks(chunks_of(store, log))  # calls only: the "crash" before usage
    assert len(ids(wh_path, "usage_all")) == 5
    ingest_files(wh_path, log)  # nothing new to read; the repair runs first
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(8))


def test_usage_already_written_by_a_reattribute_is_not_added_again(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Calls committed, usage not yet, and a reattribute ran in between (it saw the calls): no double count."""
    from attribution.api import open_store
    from attribution.current import build_engine
    from attribution.derive import attribute_committed

    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(3)))
    ingest_files(wh_path, log)
    with log.open("a") as fh:
        fh.write("".join(call_line(i) for i in range(3, 6)))
    store = open_store(wh_path, write=True)
    committed = store.commit_chunks(chunks_of(store, log))  # calls of 3..5 committed, usage pending
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\n")
    assert cli("reattribute", "--rules", rules, "--warehouse", wh_path).exit_code == 0  # writes usage for all 6
    attribute_committed(store, build_engine(store), committed)  # the pending usage commit arrives late
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(6))


def test_a_stale_usage_commit_conflicts_and_adds_only_what_is_missing(tmp_path: Path, wh_path: Path) -> None:
    """Two processes attribute the same committed range (a retry after a lost reply): rows stay single."""
    from attribution.current import build_engine
    from attribution.derive import attribute_committed

    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(4)))
    store = Store(wh_path).prepare_for_writing()
    committed = store.commit_chunks(chunks_of(store, log))
    engine = build_engine(store)
    attribute_committed(store, engine, committed)
    attribute_committed(Store(wh_path), engine, committed)
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(4))


# -- identity ---------------------------------------------------------------------------------


def test_relative_and_absolute_spellings_are_one_warehouse_across_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("".join(call_line(i) for i in range(3)))
    monkeypatch.chdir(tmp_path)
    store = Store("wh").prepare_for_writing()
    store.commit_chunks(chunks_of(store, logs / "a.log"))  # calls committed under "wh"; usage never (crash)
    with (logs / "a.log").open("a") as fh:
        fh.write(call_line(3))
    ingest_files(tmp_path / "wh", logs)  # the next run spells it absolutely
    ingest_files("./wh/", logs)
    assert Counter(ids(tmp_path / "wh")) == Counter(f"chatcmpl-c{i}" for i in range(4))
    assert Counter(ids(tmp_path / "wh", "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(4))


def test_two_files_with_the_same_first_kib_are_both_read_once(tmp_path: Path, wh_path: Path) -> None:
    banner = "# " + "x" * 2000 + "\n"  # a common banner longer than the fingerprint window
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(banner + call_line(1, prefix="a"))
    b.write_text(banner + call_line(1, prefix="b") + call_line(2, prefix="b"))
    s = ingest_files(wh_path, a, b)
    assert any("read as a separate source" in (f.note or "") for f in s.files)
    ingest_files(wh_path, a, b)
    with a.open("a") as fh:
        fh.write(call_line(2, prefix="a"))
    ingest_files(wh_path, a, b)
    assert ids(wh_path) == ["chatcmpl-a1", "chatcmpl-a2", "chatcmpl-b1", "chatcmpl-b2"]


def test_a_file_truncated_and_rewritten_with_the_same_head_is_read_again(tmp_path: Path, wh_path: Path) -> None:
    head = "# service banner " + "y" * 1100 + "\n"
    log = tmp_path / "a.log"
    log.write_text(head + "".join(call_line(i, prefix="old") for i in range(3)))
    ingest_files(wh_path, log)
    # truncated and rewritten in place (same inode, same first KiB), longer than before
    with log.open("r+") as fh:
        fh.truncate(0)
        fh.write(head + "".join(call_line(i, prefix="new") for i in range(10, 15)))
    s = ingest_files(wh_path, log)
    assert "bytes before the checkpoint changed" in (s.files[0].note or "")
    assert ids(wh_path) == sorted([f"chatcmpl-old{i}" for i in range(3)] + [f"chatcmpl-new{i}" for i in range(10, 15)])


def test_a_file_truncated_to_less_than_its_offset_is_read_from_zero(tmp_path: Path, wh_path: Path) -> None:
    """Reaches the `offset > ident.size` branch of `Store.resolve` (the head still matches, so the source is
    found; the file is shorter than its checkpoint). Deleting that branch fails this test: the tail check
    then restarts the file as "replaced" instead."""
    log = tmp_path / "a.log"
    banner = "# banner " + "b" * 1100 + "\n"
    log.write_text(banner + "".join(call_line(i, prefix="old") for i in range(5)))
    ingest_files(wh_path, log)
    with log.open("r+") as fh:
        fh.truncate(0)
        fh.write(banner + call_line(0, prefix="old"))  # same head, shorter than the offset
    s = ingest_files(wh_path, log)
    assert s.files[0].note == "file is shorter than its checkpoint: truncated, reading from 0"
    assert Counter(ids(wh_path))["chatcmpl-old0"] == 2  # the rewritten line is a new line (the view folds the id)


def test_a_copytruncate_copy_resumes_and_the_truncated_file_starts_over(tmp_path: Path, wh_path: Path) -> None:
    import shutil

    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_text("".join(call_line(i) for i in range(3)))
    ingest_files(wh_path, logs)
    with log.open("a") as fh:
        fh.write(call_line(3))
    shutil.copyfile(log, logs / "app.log.1")
    with log.open("r+") as fh:
        fh.truncate(0)
        fh.write(call_line(4))
    ingest_files(wh_path, logs)
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(5))


def test_a_file_replaced_while_being_read_commits_nothing_for_the_old_identity(tmp_path: Path, wh_path: Path) -> None:
    from ingest.pipeline import FileChanged

    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(20)))
    store = Store(wh_path).prepare_for_writing()
    ident = identify(log)
    ing = FileIngester(store.hasher, IngestOptions(chunk_lines=5))
    it = ing.chunks(log, "src-x", ident, 0, FileResult(str(log), None))
    next(it)
    with log.open("r+") as fh:  # rewritten under the reader: another head
        fh.write("{" + "z" * 50)
    with pytest.raises(FileChanged):
        next(it)


# -- readers ----------------------------------------------------------------------------------


def test_polars_reads_the_same_totals_as_tokentrail_sql(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import polars as pl
    from conftest import FIXTURES

    assert cli("ingest", FIXTURES / "openai", "--warehouse", wh_path).exit_code == 0
    with (tmp_path / "more.log").open("w") as fh:
        fh.write("".join(call_line(i, ts=f"2025-03-0{1 + i % 5}T10:00:00Z") for i in range(40)))
    assert cli("ingest", tmp_path / "more.log", "--warehouse", wh_path).exit_code == 0
    assert cli("compact", "--warehouse", wh_path, "--no-vacuum").exit_code == 0  # removed files stay on disk
    ours = tt_sql(wh_path, "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM usage_all").fetchall()[0]
    df = pl.read_delta(str(wh_path / "usage"))
    theirs = (df.height, df["input_tokens"].sum(), df["output_tokens"].sum(), df["cost_usd"].sum())
    assert ours[0] == theirs[0] and ours[1] == theirs[1] and ours[2] == theirs[2]
    assert abs(float(ours[3]) - float(theirs[3])) < 1e-9
    # a plain Parquet reader over the directory would see the compacted-away files too
    import duckdb

    plain = duckdb.sql(f"SELECT count(*) FROM read_parquet('{wh_path}/usage/*/*.parquet')").fetchall()[0][0]
    assert plain > ours[0]


# -- parallel ingest under SIGKILL --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["many files", "one big file cut into ranges"])
def test_a_killed_parallel_ingest_leaves_no_worker_and_resumes_exactly_once(tmp_path: Path, wh_path: Path,
                                                                            layout: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for f in range(6):
        name = f"f{f}.log" if layout == "many files" else "big.log"
        with open(logs / name, "a") as fh:
            fh.write("".join(call_line(i, prefix=f"f{f}-") for i in range(30_000)))
    if layout != "many files":
        from ingest.parallel import RANGE_BYTES

        assert (logs / "big.log").stat().st_size > 2 * RANGE_BYTES  # cut into ranges read at once
    proc = subprocess.Popen([*PY, "ingest", str(logs), "--warehouse", str(wh_path), "-j", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = [c for c in children(proc.pid) if "python" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
        time.sleep(0.2)
    assert workers, "the run started no worker"
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    time.sleep(5.0)
    assert not [w for w in workers if alive(w)], "workers outlived their parent"
    r = subprocess.run([*PY, "ingest", str(logs), "--warehouse", str(wh_path), "-j", "2"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    counts = Counter(ids(wh_path))
    assert len(counts) == 180_000 and max(counts.values()) == 1
    assert Counter(ids(wh_path, "usage_all")) == counts


@pytest.mark.slow
def test_ten_thousand_small_files_make_a_bounded_number_of_data_files(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    for f in range(10_000):
        (logs / f"f{f:05d}.log").write_text(
            "".join(call_line(i, ts=f"2025-03-{1 + f % 28:02d}T10:00:00Z", prefix=f"{f}-") for i in range(2)))
    r = cli("ingest", logs, "--warehouse", wh_path, "-j", "1")
    assert r.exit_code == 0 and "20,000 calls" in r.output, r.output
    files = list(wh_path.rglob("*.parquet"))
    assert len(files) < 200  # coalesced commits: per table and date, not per source file
    t0 = time.perf_counter()
    out = cli("sql", "select count(*) as n from calls", "--warehouse", wh_path, "--format", "csv")
    assert out.output.split() == ["n", "20000"]
    assert time.perf_counter() - t0 < 10  # generous bound for a loaded CI machine; typically under 2 s
    again = cli("ingest", logs, "--warehouse", wh_path, "-j", "1")
    assert again.exit_code == 0 and "0 calls" in again.output


def test_compact_prunes_source_records_and_resume_still_works(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(40)))
    ingest_files(wh_path, log, chunk_lines=4)  # ten chunks: ten source records
    store = Store(wh_path)
    assert len(store.sources.read()) >= 10
    assert cli("compact", "--warehouse", wh_path, "--vacuum-hours", "0").exit_code == 0
    assert len(Store(wh_path).sources.read()) == 3
    with log.open("a") as fh:  # truncation and tail checks still find the record at the committed offset
        fh.write("".join(call_line(i) for i in range(40, 45)))
    s = ingest_files(wh_path, log)
    assert s.total("calls") == 5 and not s.files[0].note
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(45))


def test_a_write_is_seen_by_the_next_read_even_one_that_does_not_refresh(tmp_path: Path) -> None:
    """After a write, however it was made, the table's next read (also `refresh=False`) is at the new version."""
    import pyarrow as pa

    from ingest.store.table import Table

    table = Table(Store(tmp_path / "wh").loc, "scratch")
    table.append(pa.table({"n": [1]}), {})
    cached = table.snapshot()
    assert cached is not None and cached.version() == 0
    table.append(pa.table({"n": [2]}), {}, cached)  # through the cached snapshot
    after = table.snapshot(refresh=False)
    assert after is not None and after.version() == 1
    table.append(pa.table({"n": [3]}), {})  # by URI
    after = table.snapshot(refresh=False)
    assert after is not None and after.version() == 2
