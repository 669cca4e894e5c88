"""A real watcher over a real directory: rotation in every style, partial and long lines, the lock."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from ingest.pipeline import IngestOptions
from ingest.warehouse import Warehouse
from ingest.watch import Watcher, WatchOptions


def line(i: int) -> str:
    return json.dumps({
        "timestamp": "2025-03-03T10:00:00Z", "route": "/r",
        "response": {"id": f"chatcmpl-{i:06d}", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini",
                     "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}}) + "\n"


def ids(wh_path: Path, view: str = "calls_all") -> list[str]:
    files = list((wh_path / "calls").glob("date=*/*.parquet"))
    if not files:
        return []
    return sorted(r[0] for r in duckdb.sql(
        f"SELECT call_id FROM read_parquet('{wh_path}/calls/*/*.parquet')").fetchall())


def wait_for(pred: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


class Running:
    def __init__(self, wh_path: Path, logs: Path, **opts: object) -> None:
        self.wh = Warehouse(wh_path)
        self.wh.lock("test")
        max_line = int(opts.pop("max_line", 1 << 20))  # type: ignore[call-overload]
        options = WatchOptions(flush_seconds=0.1, rescan_seconds=0.1, final_after_seconds=0.6, **opts)  # type: ignore[arg-type]
        self.watcher = Watcher(self.wh, [logs], IngestOptions(max_line=max_line), options)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.watcher.stop.set()
        self.thread.join(20)
        self.watcher.close()
        self.wh.close()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture
def watching(wh_path: Path, logs: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**opts: object) -> Running:
        r = Running(wh_path, logs, **opts)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.thread.is_alive():
            r.stop()


def expect(wh_path: Path, n: int) -> None:
    wait_for(lambda: len(ids(wh_path)) >= n)
    time.sleep(0.3)
    got = ids(wh_path)
    assert got == [f"chatcmpl-{i:06d}" for i in range(n)], f"{len(got)} rows, {len(set(got))} distinct"


def test_appends_are_picked_up(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text("".join(line(i) for i in range(3)))
    w = watching()
    expect(wh_path, 3)
    with f.open("a") as fh:
        fh.write("".join(line(i) for i in range(3, 7)))
    expect(wh_path, 7)
    w.stop()


def test_rename_and_create_rotation(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text("".join(line(i) for i in range(3)))
    w = watching()
    expect(wh_path, 3)
    with f.open("a") as fh:  # written just before rotation
        fh.write(line(3))
    f.rename(logs / "app.log.1")
    (logs / "app.log").write_text(line(4) + line(5))
    expect(wh_path, 6)
    w.stop()


def test_rotated_out_of_the_directory_is_read_to_its_end(watching, logs: Path, wh_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text(line(0))
    w = watching()
    expect(wh_path, 1)
    with f.open("a") as fh:
        fh.write(line(1) + line(2)[:-1])  # the last line has no newline yet
        fh.flush()
        f.rename(tmp_path / "elsewhere.log")  # moved out of the watched directory
        time.sleep(0.3)
    expect(wh_path, 3)  # drained through the held descriptor; the partial line flushed once quiet
    w.stop()


def test_deleted_file_is_drained(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text(line(0))
    w = watching()
    expect(wh_path, 1)
    with f.open("a") as fh:
        fh.write(line(1))
    f.unlink()
    expect(wh_path, 2)
    w.stop()


def test_copytruncate(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text("".join(line(i) for i in range(3)))
    w = watching()
    expect(wh_path, 3)
    w.stop()  # stopped while the app writes more, so the copy holds lines never read
    with f.open("a") as fh:
        fh.write(line(3) + line(4))
    shutil.copy(f, logs / "app.log.1")
    with f.open("r+") as fh:
        fh.truncate(0)
    with f.open("a") as fh:
        fh.write(line(5))
    w = watching()
    expect(wh_path, 6)  # 3,4 from the copy (resumed at the old offset), 5 from the truncated file
    w.stop()


def test_gzip_rotation_is_recognised_as_read(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text("".join(line(i) for i in range(4)))
    w = watching()
    expect(wh_path, 4)
    with f.open("a") as fh:
        fh.write(line(4))
    rotated = logs / "app.log.1"
    f.rename(rotated)
    with gzip.open(str(rotated) + ".gz", "wb") as gz:
        gz.write(rotated.read_bytes())
    rotated.unlink()
    f.write_text(line(5))
    expect(wh_path, 6)
    w.stop()


def test_new_subdirectories_are_watched(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = watching()
    sub = logs / "2025" / "03"
    sub.mkdir(parents=True)
    (sub / "a.log").write_text(line(0) + line(1))
    expect(wh_path, 2)
    w.stop()


def test_partial_line_is_held_until_completed(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    text = line(1)
    f.write_text(line(0) + text[:30])
    w = watching()
    expect(wh_path, 1)
    time.sleep(1.0)
    assert len(ids(wh_path)) == 1  # a growing file's partial line is never taken as complete
    with f.open("a") as fh:
        fh.write(text[30:])
    expect(wh_path, 2)
    w.stop()


def test_overlong_line_quarantined_and_skipped(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text(line(0) + '{"x": "' + "y" * 5000 + '"}\n' + line(1))
    w = watching(max_line=1000)
    expect(wh_path, 2)
    w.stop()
    (n, length), = duckdb.sql(f"SELECT count(*), max(length) FROM read_parquet('{wh_path}/quarantine/*/*.parquet')").fetchall()
    assert n == 1 and length == 5000 + 10


def test_read_from_end_skips_existing_content(watching, logs: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = logs / "app.log"
    f.write_text(line(100) + line(101))
    w = watching(read_from="end")
    time.sleep(0.5)
    with f.open("a") as fh:
        fh.write(line(0))
    expect(wh_path, 1)
    w.stop()


def _watch_proc(wh_path: Path, logs: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh_path),
                             "--flush-seconds", "0.2", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_watcher_is_refused_and_sigterm_is_clean(logs: Path, wh_path: Path) -> None:
    (logs / "app.log").write_text(line(0))
    first = _watch_proc(wh_path, logs)
    try:
        wait_for(lambda: len(ids(wh_path)) == 1, timeout=60)
        second = subprocess.run([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh_path),
                                 "--once"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "is locked by pid" in second.stderr and "(watch)" in second.stderr and "Only one writer" in second.stderr
        with (logs / "app.log").open("a") as fh:
            fh.write(line(1))
        time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert ids(wh_path) == ["chatcmpl-000000", "chatcmpl-000001"]  # flushed on the way out
    finally:
        if first.poll() is None:
            first.kill()


def test_once_processes_and_exits(logs: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (logs / "a.log").write_text(line(0) + line(1))
    r = cli("watch", logs, "--warehouse", wh_path, "--once")
    assert r.exit_code == 0 and ids(wh_path) == ["chatcmpl-000000", "chatcmpl-000001"]


def test_compaction_keeps_every_call_once(logs: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    f = logs / "a.log"
    for i in range(6):
        with f.open("a") as fh:
            fh.write(line(i))
        assert cli("ingest", logs, "--warehouse", wh_path).exit_code == 0
    part = wh_path / "calls" / "date=2025-03-03"
    assert len(list(part.glob("*.parquet"))) == 6
    r = cli("compact", "--warehouse", wh_path)
    assert r.exit_code == 0 and "compacted 2 partitions: 12 files -> 2" in r.output  # calls/ and usage/
    assert len(list(part.glob("*.parquet"))) == 1
    assert ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(6)]
    with f.open("a") as fh:
        fh.write(line(6))
    cli("ingest", logs, "--warehouse", wh_path)
    assert ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(7)]
    r = cli("sql", "select count(*) as n from usage", "--warehouse", wh_path, "--format", "csv")
    assert r.output.split() == ["n", "7"]


def test_compaction_crash_is_finished_by_recovery(logs: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Merged file renamed in, old files not yet deleted: recovery deletes them (no duplicates)."""
    import json as _json

    from ingest.compact import _JOURNAL, _read

    f = logs / "a.log"
    for i in range(4):
        with f.open("a") as fh:
            fh.write(line(i))
        cli("ingest", logs, "--warehouse", wh_path)
    part = wh_path / "calls" / "date=2025-03-03"
    old = sorted(part.glob("*.parquet"))
    merged = part / "compact-test.parquet"
    import pyarrow.parquet as pq

    pq.write_table(_read(old).to_arrow_table(), merged)
    wh = Warehouse(wh_path)
    wh.checkpoints.db.execute(_JOURNAL)
    wh.checkpoints.db.execute("INSERT INTO compact_journal VALUES (?,?,?,?)",
                              (str(part), str(merged), str(wh.tmp_dir / "gone"), _json.dumps([str(p) for p in old])))
    wh.close()
    assert len(ids(wh_path)) == 8  # the crash window: duplicates on disk (the `calls` view folds them)
    with Warehouse(wh_path).writing("test"):
        pass
    assert ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(4)]


def test_inotify_failure_falls_back_to_polling(monkeypatch: pytest.MonkeyPatch, logs: Path, wh_path: Path) -> None:
    import watchfiles

    real = watchfiles.watch

    def failing(*args: object, **kwargs: object) -> Iterator[set[object]]:
        if not kwargs.get("force_polling"):
            raise OSError("OS file watch limit reached")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watchfiles, "watch", failing)
    (logs / "a.log").write_text(line(0))
    r = Running(wh_path, logs)
    try:
        expect(wh_path, 1)
        with (logs / "a.log").open("a") as fh:
            fh.write(line(1))
        expect(wh_path, 2)
    finally:
        r.stop()

