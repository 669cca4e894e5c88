"""Tests written by a mutation pass over the store's recovery and safety branches.

Each test here kills a mutation (a branch deleted, or its condition forced) that the rest of the
suite let survive; the mutation it kills is named in its docstring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ingest_files, tt_sql
from helpers.procs import alive
from test_store import call_line, chunks_of, ids

from ingest.store import Store

PY = [sys.executable, "-m", "attribution"]


def _bad(i: int) -> str:
    return "{not json " + str(i) + "\n"


def _engine(store: Store):  # type: ignore[no-untyped-def]
    from attribution.current import build_engine

    return build_engine(store)


# -- Store.commit_chunks / commit_quarantine ---------------------------------------------------


def test_quarantine_version_never_goes_back_when_a_lower_chunk_commits(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `commit_quarantine` without its `if v >= c.end: continue` skip.

    A crash after the quarantine commit of the whole file, then the re-read commits smaller chunks one
    by one: the first (below the quarantine version) must not set the version back, or the second
    adds its bad lines again."""
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) + _bad(i) for i in range(3)))
    store = Store(wh_path).prepare_for_writing()
    (whole,) = chunks_of(store, log)
    store.commit_quarantine([whole], "2025-03-03")  # first half of a commit, then the "crash"
    parts = chunks_of(store, log, chunk_lines=2)
    assert len(parts) == 3
    for c in parts:  # committed one batch at a time (e.g. the watcher's max_chunks)
        store.commit_chunks([c], quarantine_date="2025-03-03")
    assert store.quarantine.txn_version(whole.source_id, refresh=True) == whole.end
    (n,), = tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall()
    assert n == 3
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(3))


def test_quarantine_rows_below_the_quarantine_version_are_dropped_from_a_longer_chunk(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `commit_quarantine` without `filter_from(c.quarantine, v)`.

    A crash after the quarantine commit of the first chunk; the next run reads the whole file as one
    chunk, which starts below the quarantine version and ends past it."""
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) + _bad(i) for i in range(3)))
    store = Store(wh_path).prepare_for_writing()
    first = chunks_of(store, log, chunk_lines=2)[0]
    store.commit_quarantine([first], "2025-03-03")
    ingest_files(wh_path, log)
    (n,), = tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall()
    assert n == 3
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(3))


@pytest.mark.parametrize("fresh", [False, True], ids=["existing-tables", "fresh-warehouse"])
def test_a_writer_that_loses_the_race_between_check_and_commit_adds_nothing(
        tmp_path: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: bool) -> None:
    """Kills: `commit_chunks` committing against the latest table instead of the snapshot it checked.

    Another writer commits the same range after this one checked the version and before it commits:
    Delta must reject this commit (same application id), the retry finds the range committed. Also
    on a fresh warehouse, where the tables do not exist yet when the version is checked."""
    if not fresh:
        other = tmp_path / "other.log"
        other.write_text(call_line(0, prefix="other") + _bad(9))
        ingest_files(wh_path, other)
    log = tmp_path / "a.log"
    log.write_text(call_line(0) + _bad(0) + call_line(1))
    a, b = Store(wh_path).prepare_for_writing(), Store(wh_path)
    chunks = chunks_of(a, log)
    real_append = a.calls.append
    raced: list[bool] = []

    def append(data, txns, dt=None):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(True)
            assert b.commit_chunks(chunks).calls.num_rows == 2  # type: ignore[union-attr]
        return real_append(data, txns, dt)

    monkeypatch.setattr(a.calls, "append", append)
    a.commit_chunks(chunks)
    assert raced
    assert Counter(ids(wh_path)) == Counter(["chatcmpl-c0", "chatcmpl-c1"] + ([] if fresh else ["chatcmpl-other0"]))
    (n,), = tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall()
    assert n == (1 if fresh else 2)


def test_the_commit_result_names_the_range_actually_committed(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `commit_chunks` reporting a chunk's own start instead of `max(start, committed version)`.
    Usage derives its ranges from this result: a stale start would make them claim lines another
    commit added."""
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(3)))
    store = Store(wh_path).prepare_for_writing()
    (first,) = store.commit_chunks(chunks_of(store, log)).chunks
    with log.open("a") as fh:
        fh.write("".join(call_line(i) for i in range(3, 5)))
    r = store.commit_chunks(chunks_of(store, log, offset=0))  # a stale reader from 0
    (c,) = r.chunks
    assert (c.start, c.end) == (first.end, log.stat().st_size)
    assert r.calls is not None and sorted(r.calls["call_id"].to_pylist()) == ["chatcmpl-c3", "chatcmpl-c4"]


def test_a_stale_reader_with_a_smaller_line_cap_quarantines_no_committed_line(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `commit_chunks` not filtering a chunk's quarantine rows by the calls version.

    Lines already committed as calls, re-read from 0 by a writer whose --max-line is smaller (so it
    finds them too long): only the new lines count; the old ones are not quarantined after the fact.
    (The quarantine table's own version cannot tell: it never had a row for this source.)"""
    from ingest.pipeline import FileIngester, FileResult, IngestOptions
    from ingest.sources import identify

    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(3)))
    store = Store(wh_path).prepare_for_writing()
    (first,) = store.commit_chunks(chunks_of(store, log)).chunks
    with log.open("a") as fh:
        fh.write(call_line(3))
    sid = first.source_id
    small = FileIngester(store.hasher, IngestOptions(max_line=64))
    stale = list(small.chunks(log, sid, identify(log), 0, FileResult(str(log), None)))
    assert sum(c.quarantine.num_rows for c in stale if c.quarantine is not None) == 4
    store.commit_chunks(stale)
    (n,), = tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall()
    assert n == 1
    assert Counter(ids(wh_path)) == Counter(f"chatcmpl-c{i}" for i in range(3))


def test_a_usage_commit_that_loses_the_race_between_check_and_commit_adds_nothing(
        tmp_path: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills: `commit_usage` committing against the latest table instead of the snapshot it checked."""
    from attribution.derive import attribute_committed

    log, store, first, second = _two_batches(tmp_path, wh_path)
    engine = _engine(store)
    attribute_committed(store, engine, first)
    other = Store(wh_path)
    real_append = store.usage.append
    raced: list[bool] = []

    def append(data, txns, dt=None):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(True)
            attribute_committed(other, engine, second)
        return real_append(data, txns, dt)

    monkeypatch.setattr(store.usage, "append", append)
    attribute_committed(store, engine, second)
    assert raced
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(6))


# -- Store.commit_usage -------------------------------------------------------------------------


def _two_batches(tmp_path: Path, wh_path: Path):  # type: ignore[no-untyped-def]
    """calls committed in two batches [0, e1) and [e1, e2) of one source; usage not yet."""
    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(3)))
    store = Store(wh_path).prepare_for_writing()
    first = store.commit_chunks(chunks_of(store, log))
    with log.open("a") as fh:
        fh.write("".join(call_line(i) for i in range(3, 6)))
    second = store.commit_chunks(chunks_of(store, log))
    return log, store, first, second


def test_a_late_usage_commit_for_an_earlier_range_does_not_set_the_version_back(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `commit_usage` without its `if v >= end: continue` skip.

    A usage commit for [0, e1) arriving after usage already reached e2 (a retried reply) must
    leave the version at e2; set back to e1, the next run's repair adds [e1, e2) a second time."""
    from attribution.derive import attribute_committed

    log, store, first, second = _two_batches(tmp_path, wh_path)
    engine = _engine(store)
    attribute_committed(store, engine, first)
    attribute_committed(store, engine, second)
    sid = first.chunks[0].source_id
    e2 = second.chunks[0].end
    attribute_committed(Store(wh_path), engine, first)  # late
    assert store.usage.txn_version(sid, refresh=True) == e2
    ingest_files(wh_path, log)  # repair runs first
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(6))


def test_a_repair_racing_with_a_watchers_usage_commit_adds_only_what_is_missing(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `commit_usage` without `_drop_present` (and without the `v > start` check).

    A repair reads the lagging range [0, e2) of calls; before it commits, the watcher that committed
    [0, e1) commits its usage. The repair then finds usage at e1 > its start: rows already there are
    recognised by content and not added again."""
    from attribution.derive import attribute_committed

    log, store, first, second = _two_batches(tmp_path, wh_path)
    engine = _engine(store)
    lag = store.usage_lag()  # what repair_usage reads ...
    (sid, uv, cv), = lag
    rows = engine.apply(store.calls_since(lag).drop_columns(["date"]))
    attribute_committed(Store(wh_path), engine, first)  # ... the watcher's usage commit lands ...
    store.commit_usage({sid: (uv, cv)}, rows)  # ... and the repair commits
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(6))
    assert store.usage.txn_version(sid, refresh=True) == cv


# -- repair_usage at the start of watch and reattribute -----------------------------------------


def _calls_without_usage(tmp_path: Path, wh_path: Path, day: str = "2025-03-03") -> Path:
    """3 calls ingested (calls + usage), then 2 more committed to calls only: a crash before usage."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "a.log"
    log.write_text("".join(call_line(i, ts=f"{day}T10:00:00Z") for i in range(3)))
    ingest_files(wh_path, logs)
    with log.open("a") as fh:
        fh.write("".join(call_line(i, ts=f"{day}T10:00:00Z") for i in range(3, 5)))
    store = Store(wh_path)
    store.commit_chunks(chunks_of(store, log))
    assert not {"chatcmpl-c3", "chatcmpl-c4"} & set(ids(wh_path, "usage_all"))
    return logs


def test_watch_repairs_usage_missing_after_a_crash(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Kills: `make_watcher` without `repair_usage` (watch finds nothing new to read in calls)."""
    logs = _calls_without_usage(tmp_path, wh_path)
    assert cli("watch", logs, "--warehouse", wh_path, "--once").exit_code == 0
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(5))


def test_reattribute_of_a_date_range_repairs_lagging_usage_outside_it(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Kills: `reattribute` without `repair_usage`: usage lagging (a crash between calls and usage)
    on a day outside --since must be complete when reattribute returns, not only after a later run."""
    other = tmp_path / "b.log"
    other.write_text(call_line(0, ts="2025-03-05T10:00:00Z", prefix="later"))
    ingest_files(wh_path, other)  # (an ingest repairs first: this one comes before the crash)
    logs = _calls_without_usage(tmp_path, wh_path, day="2025-03-01")
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\n")
    assert cli("reattribute", "--rules", rules, "--warehouse", wh_path, "--since", "2025-03-05").exit_code == 0
    want = Counter([*(f"chatcmpl-c{i}" for i in range(5)), "chatcmpl-later0"])
    assert Counter(ids(wh_path, "usage_all")) == want  # complete as soon as reattribute is done
    ingest_files(wh_path, logs)  # and a later run's repair adds nothing twice
    assert Counter(ids(wh_path, "usage_all")) == want


# -- ingest and watch: identity, shutdown, files changing -------------------------------------


def test_a_file_named_twice_in_one_run_is_read_once(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `IngestRun.read_file` resuming from the committed offset only, not from the end of what
    is already pending for the source in this batch (the file is parsed and counted twice)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "a.log"
    log.write_text("".join(call_line(i) for i in range(3)))
    s = ingest_files(wh_path, logs, log)  # the directory, and the file in it
    assert s.total("calls") == 3 and s.total("lines") == 3
    assert ids(wh_path) == [f"chatcmpl-c{i}" for i in range(3)]


def test_a_file_replaced_while_being_read_does_not_stop_the_run(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `IngestRun.read_file` not catching `FileChanged`: the rest of the run goes on, the file is
    marked for another pass, and what was committed before the change stays."""
    from ingest.pipeline import FileResult, IngestOptions
    from ingest.run import IngestRun

    log = tmp_path / "a.log"
    log.write_text("".join(call_line(i) for i in range(20)))
    store = Store(wh_path).prepare_for_writing()
    run = IngestRun(store, IngestOptions(chunk_lines=5), batch_rows=1)  # every chunk commits at once
    res = FileResult(str(log), None)
    batches = run.read_file(log, res)
    next(batches)
    with log.open("r+") as fh:  # rewritten under the reader: another head
        fh.write("{" + "z" * 50)
    list(batches)
    assert res.more and "truncated or replaced" in (res.note or "")
    assert ids(wh_path) == sorted(f"chatcmpl-c{i}" for i in range(5))


def test_watch_reads_two_files_with_the_same_head_as_two_sources(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Kills: the watcher's `live_files` provider returning nothing: the second new file with the same
    first KiB would adopt the first one's (provisional) source and lose its lines."""
    logs = tmp_path / "logs"
    logs.mkdir()
    banner = "# " + "x" * 2000 + "\n"
    (logs / "a.log").write_text(banner + call_line(1, prefix="a"))
    (logs / "b.log").write_text(banner + call_line(1, prefix="b") + call_line(2, prefix="b"))
    assert cli("watch", logs, "--warehouse", wh_path, "--once").exit_code == 0
    assert ids(wh_path) == ["chatcmpl-a1", "chatcmpl-b1", "chatcmpl-b2"]


def test_watch_commits_what_is_waiting_when_stopped(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `Watcher.drain_all` not reading the plain files it tracks (or reading them as final):
    lines not yet due for a flush when the watcher is stopped are committed on the way out, and a
    partial last line is held."""
    import threading

    from attribution.api import make_watcher, run_watcher
    from ingest.pipeline import IngestOptions
    from ingest.watch import WatchOptions

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("".join(call_line(i) for i in range(3)) + call_line(3)[:40])  # + a partial line
    options = WatchOptions(flush_seconds=3600.0, rescan_seconds=0.1, final_after_seconds=3600.0)
    watcher, engine, store = make_watcher([logs], wh_path, None, None, IngestOptions(), options)
    ticks: list[object] = []
    thread = threading.Thread(target=lambda: ticks.extend(run_watcher(watcher, engine, store)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while len(ticks) < 3 and time.monotonic() < deadline:  # several passes; nothing is due
        time.sleep(0.05)
    assert len(ticks) >= 3 and not Store(wh_path).calls.exists()
    watcher.stop.set()
    thread.join(20)
    assert not thread.is_alive()
    assert ids(wh_path) == [f"chatcmpl-c{i}" for i in range(3)]
    assert Counter(ids(wh_path, "usage_all")) == Counter(f"chatcmpl-c{i}" for i in range(3))
    (n,), = tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall()
    assert n == 0  # the partial line is held (its writer may still finish it), not taken as complete


def test_the_oldest_key_secret_wins_after_two_hosts_raced_to_create_it(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `Meta.secret` taking the newest secret row: every host must keep fingerprinting keys
    with the first secret, or the same key gets two fingerprints."""
    import secrets

    from ingest.store.meta import SECRET_KEY

    store = Store(wh_path).prepare_for_writing()
    first = store.meta.secret(create=False)
    time.sleep(0.01)
    store.meta.put(SECRET_KEY, secrets.token_hex(32))  # the other host's row (appended: the oldest still wins)
    assert Store(wh_path).meta.secret(create=False) == first
    assert Store(wh_path).hasher.fingerprint("sk-test-key") == store.hasher.fingerprint("sk-test-key")


# -- SQL sandbox --------------------------------------------------------------------------------


@pytest.fixture
def loaded(wh_path: Path, cli) -> Path:  # type: ignore[no-untyped-def]
    from conftest import FIXTURES

    assert cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", wh_path).exit_code == 0
    return wh_path


def test_explain_analyze_of_a_write_is_refused(loaded: Path) -> None:
    """Kills: `check_read_only` accepting any EXPLAIN. EXPLAIN ANALYZE runs its statement, and a
    snapshot data file is on the allow-list: the COPY would overwrite it."""
    from attribution.query import QueryError, run_sql

    target = next((loaded / "calls").glob("date=*/*.parquet"))
    before = target.read_bytes()
    with pytest.raises(QueryError, match="only reads the warehouse"):
        run_sql(loaded, f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)")
    assert target.read_bytes() == before
    assert run_sql(loaded, "EXPLAIN SELECT count(*) FROM calls").num_rows >= 1  # a read can be explained


def test_the_user_sql_connection_refuses_configuration_changes(loaded: Path) -> None:
    """Kills: `connect(user_sql=True)` without `lock_configuration`: even a statement that got past
    the filter cannot change settings (memory, threads, temp directory)."""
    import duckdb

    from attribution.query import connect

    con = connect(loaded, user_sql=True)
    for stmt in ("SET memory_limit = '64GB'", "SET threads = 64", "SET temp_directory = '/tmp'"):
        with pytest.raises(duckdb.Error):
            con.execute(stmt)
    assert con.sql("SELECT count(*) FROM calls").fetchall() == [(13,)]


# -- reattribute --------------------------------------------------------------------------------


def test_a_date_limited_reattribute_racing_with_a_watcher_loses_no_usage(
        tmp_path: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher commits calls (day 1) just after reattribute's repair and before its snapshot; its
    usage commit arrives after the reattribute (--since day 5). The overwrite must not claim the
    watcher's range for usage (it rewrote only day 5), or the watcher's rows are never written."""
    from datetime import date

    import attribution.reattribute as ra
    from attribution.derive import attribute_committed

    logs = _calls_without_usage(tmp_path, wh_path, day="2025-03-01")
    ingest_files(wh_path, logs)  # repaired: usage complete for c0..c4
    log = logs / "a.log"
    (logs / "b.log").write_text(call_line(0, ts="2025-03-05T10:00:00Z", prefix="later"))
    ingest_files(wh_path, logs / "b.log")
    with log.open("a") as fh:
        fh.write("".join(call_line(i, ts="2025-03-01T11:00:00Z") for i in range(5, 7)))
    watcher_store = Store(wh_path)
    pending = []
    real_repair = ra.repair_usage

    def repair_then_watcher_commits_calls(store, engine):  # type: ignore[no-untyped-def]
        n = real_repair(store, engine)
        pending.append(watcher_store.commit_chunks(chunks_of(watcher_store, log)))
        return n

    monkeypatch.setattr(ra, "repair_usage", repair_then_watcher_commits_calls)
    store = Store(wh_path)
    engine = _engine(store)
    ra.reattribute(store, engine, since=date(2025, 3, 5))
    attribute_committed(watcher_store, engine, pending[0])  # the watcher's usage commit
    ingest_files(wh_path, logs)  # and any later repair
    want = Counter([*(f"chatcmpl-c{i}" for i in range(7)), "chatcmpl-later0"])
    assert Counter(ids(wh_path)) == want
    assert Counter(ids(wh_path, "usage_all")) == want


# -- parallel ingest workers --------------------------------------------------------------------

_POOL = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from ingest.keys import KeyHasher
    from ingest.pipeline import IngestOptions
    from ingest.parallel import worker_init

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=worker_init,
                                   initargs=(KeyHasher(b"k" * 32), IngestOptions(), {}))
        pool.submit(time.sleep, 0).result()  # workers are up
        for _ in range(2):
            pool.submit(time.sleep, 60)  # busy, as when parsing a large chunk
        time.sleep(0.5)
        print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
        time.sleep(120)
""")


def test_busy_ingest_workers_die_with_their_parent(tmp_path: Path) -> None:
    """Kills: `worker_init` without `die_with_parent()`. A worker in the middle of a task would
    otherwise run on after its parent was SIGKILLed (until the task ends)."""
    script = tmp_path / "pool.py"
    script.write_text(_POOL)
    import ingest

    env = {**os.environ, "PYTHONPATH": str(Path(ingest.__file__).parents[1])}  # the code under test
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(w) for w in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [w for w in workers if alive(w)]
        for w in left:
            os.kill(w, signal.SIGKILL)
        assert not left, "workers outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_usage_commit_landing_during_a_reattribute_makes_it_retry(
        tmp_path: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills: the overwrite carrying no source versions (`{}`), and `reattribute` without
    `retry_on_conflict`. A watcher's usage commit lands between the reattribute's snapshot and its
    commit: the overwrite must conflict and be redone, not delete the rows that commit added."""
    import attribution.reattribute as ra
    from attribution.derive import attribute_committed

    logs = _calls_without_usage(tmp_path, wh_path)
    ingest_files(wh_path, logs)  # repaired: c0..c4 in usage
    log = logs / "a.log"
    with log.open("a") as fh:
        fh.write("".join(call_line(i) for i in range(5, 7)))
    watcher_store = Store(wh_path)
    store = Store(wh_path)
    engine = _engine(store)
    real_repair, real_write = ra.repair_usage, store.usage.overwrite
    pending = []
    writes = []

    def repair_then_watcher_commits_calls(s, e):  # type: ignore[no-untyped-def]
        n = real_repair(s, e)
        pending.append(watcher_store.commit_chunks(chunks_of(watcher_store, log)))
        return n

    def write(*args, **kw):  # type: ignore[no-untyped-def]
        if not writes:
            attribute_committed(watcher_store, engine, pending[0])  # lands before the overwrite commits
        writes.append(args[1])
        return real_write(*args, **kw)

    monkeypatch.setattr(ra, "repair_usage", repair_then_watcher_commits_calls)
    monkeypatch.setattr(store.usage, "overwrite", write)
    ra.reattribute(store, engine)
    want = Counter(f"chatcmpl-c{i}" for i in range(7))
    assert Counter(ids(wh_path, "usage_all")) == want
    assert len(writes) == 2  # conflicted once, then committed
    ingest_files(wh_path, logs)
    assert Counter(ids(wh_path, "usage_all")) == want


@pytest.mark.parametrize("sql", ["PRAGMA memory_limit = '64GB'", "PRAGMA enable_profiling", "PRAGMA threads = 64"])
def test_only_read_pragmas_are_accepted(loaded: Path, sql: str) -> None:
    """Kills: `check_read_only` accepting any PRAGMA (only table_info and show are reads)."""
    from attribution.query import QueryError, run_sql

    with pytest.raises(QueryError, match="only reads the warehouse"):
        run_sql(loaded, sql)
    assert run_sql(loaded, "PRAGMA table_info('calls')").num_rows > 10


def test_a_copy_is_matched_to_the_source_whose_bytes_it_holds_not_the_newest_with_its_head(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `resolve` adopting the newest candidate with the same head without checking the bytes
    before its offset. Two files with the same banner were read and rotated away; a copy of the
    older one appears (restored, or copied by a rotation): it must resume at that file's offset."""
    import shutil

    banner = "# service banner " + "y" * 1100 + "\n"
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(banner + "".join(call_line(i, prefix="a") for i in range(3)))
    ingest_files(wh_path, a)
    time.sleep(0.01)
    b.write_text(banner + "".join(call_line(i, prefix="bee") for i in range(5)))  # (see the xfail below)
    ingest_files(wh_path, b)  # the newer record with this head
    copy = tmp_path / "rotated" / "a.log.1"
    copy.parent.mkdir()
    shutil.copyfile(a, copy)
    a.unlink()
    b.unlink()
    s = ingest_files(wh_path, copy.parent)
    assert s.total("calls") == 0 and not s.files[0].note
    assert Counter(ids(wh_path)) == Counter([*(f"chatcmpl-a{i}" for i in range(3)), *(f"chatcmpl-bee{i}" for i in range(5))])


def test_a_different_file_with_the_same_head_and_an_equal_tail_is_read_from_its_start(tmp_path: Path, wh_path: Path) -> None:
    """a.log is ingested; later b.log (another file, still next to a.log, same 1 KiB banner) is ingested
    on its own. b's last 32 bytes before a's offset equal a's (lines of the same length end with the same
    `"total_tokens": 17}}}`): with a 32-byte tail check b was taken for a and its first lines were lost.
    The 1 KiB window reaches the lines' ids, so b is a new source."""
    banner = "# service banner " + "y" * 1100 + "\n"
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(banner + "".join(call_line(i, prefix="a") for i in range(3)))
    ingest_files(wh_path, a)
    b.write_text(banner + "".join(call_line(i, prefix="b") for i in range(5)))
    ingest_files(wh_path, b)
    assert ids(wh_path) == sorted([*(f"chatcmpl-a{i}" for i in range(3)), *(f"chatcmpl-b{i}" for i in range(5))])


_PARALLEL = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from conftest import ingest_files, tt_sql

    if __name__ == "__main__":
        logs, wh = Path(sys.argv[1]), Path(sys.argv[2])
        s = ingest_files(wh, logs, jobs=2, chunk_lines=2)
        ids = [r[0] for r in tt_sql(wh, "SELECT call_id FROM calls_all").fetchall()]
        print(json.dumps({"lines": s.total("lines"), "calls": len(ids), "distinct": len(set(ids))}))
""")


def test_a_parallel_ingest_resumes_each_file_after_its_pending_chunks(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `ingest_parallel` sending a file back to a worker from its committed offset instead of the
    end of its chunks pending in the batch: the worker reads the same chunks again and again (a file
    of more than WORKER_MAX_CHUNKS chunks never finishes)."""
    import ingest

    logs = tmp_path / "logs"
    logs.mkdir()
    for f in range(2):
        (logs / f"f{f}.log").write_text("".join(call_line(i, prefix=f"f{f}-") for i in range(30)))  # 15 chunks each
    script = tmp_path / "parallel.py"
    script.write_text(_PARALLEL)
    tests_dir = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ingest.__file__).parents[1]), str(tests_dir)])}
    r = subprocess.run([sys.executable, str(script), str(logs), str(wh_path)], capture_output=True, text=True,
                       timeout=90, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"lines": 60, "calls": 60, "distinct": 60}
