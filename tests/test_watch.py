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

import pytest
from conftest import tt_sql

from ingest.pipeline import IngestOptions
from ingest.watch import WatchOptions


def line(i: int) -> str:
    return json.dumps({
        "timestamp": "2025-03-03T10:00:00Z", "route": "/r",
        "response": {"id": f"chatcmpl-{i:06d}", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini",
                     "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}}) + "\n"


def ids(wh_path: Path, view: str = "calls_all") -> list[str]:
    from ingest.store import Store

    if not Store(wh_path).calls.exists():
        return []
    return sorted(r[0] for r in tt_sql(wh_path, f"SELECT call_id FROM {view}").fetchall())


def wait_for(pred: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


class Running:
    def __init__(self, wh_path: Path, logs: Path, **opts: object) -> None:
        from attribution.api import make_watcher, run_watcher

        max_line = int(opts.pop("max_line", 1 << 20))  # type: ignore[call-overload]
        options = WatchOptions(flush_seconds=0.1, rescan_seconds=0.1, final_after_seconds=0.6, **opts)  # type: ignore[arg-type]
        self.watcher, engine, store = make_watcher([logs], wh_path, None, None, IngestOptions(max_line=max_line), options)
        self.ticks = 0

        def consume() -> None:
            for _tick in run_watcher(self.watcher, engine, store):
                self.ticks += 1

        self.thread = threading.Thread(target=consume, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.watcher.stop.set()
        self.thread.join(20)


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
    (n, length), = tt_sql(wh_path, "SELECT count(*), max(length) FROM quarantine").fetchall()
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


def test_a_second_writer_on_the_same_logs_adds_nothing_and_sigterm_is_clean(logs: Path, wh_path: Path) -> None:
    (logs / "app.log").write_text(line(0))
    first = _watch_proc(wh_path, logs)
    try:
        wait_for(lambda: len(ids(wh_path)) == 1, timeout=60)
        second = subprocess.run([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh_path),
                                 "--once"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert ids(wh_path) == ["chatcmpl-000000"]  # same source, same range: committed once
        with (logs / "app.log").open("a") as fh:
            fh.write(line(1))
        time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert ids(wh_path) == ["chatcmpl-000000", "chatcmpl-000001"]  # flushed on the way out
        assert sorted(r[0] for r in tt_sql(wh_path, "SELECT call_id FROM usage_all").fetchall()) == ids(wh_path)
    finally:
        if first.poll() is None:
            first.kill()


def test_once_processes_and_exits(logs: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (logs / "a.log").write_text(line(0) + line(1))
    r = cli("watch", logs, "--warehouse", wh_path, "--once")
    assert r.exit_code == 0 and ids(wh_path) == ["chatcmpl-000000", "chatcmpl-000001"]


def test_compaction_keeps_every_call_once(logs: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from ingest.store import Store

    f = logs / "a.log"
    for i in range(6):
        with f.open("a") as fh:
            fh.write(line(i))
        assert cli("ingest", logs, "--warehouse", wh_path).exit_code == 0
    before = len(Store(wh_path).calls.snapshot().file_uris())  # type: ignore[union-attr]
    assert before == 6
    r = cli("compact", "--warehouse", wh_path, "--vacuum-hours", "0")
    assert r.exit_code == 0, r.output
    assert "calls: 6 files -> 1" in r.output and "usage: 6 files -> 1" in r.output
    assert len(Store(wh_path).calls.snapshot().file_uris()) == 1  # type: ignore[union-attr]
    on_disk = list((wh_path / "calls").rglob("*.parquet"))
    assert len(on_disk) == 1  # vacuum removed the merged-away files
    assert ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(6)]
    with f.open("a") as fh:
        fh.write(line(6))
    cli("ingest", logs, "--warehouse", wh_path)
    assert ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(7)]
    r = cli("sql", "select count(*) as n from usage", "--warehouse", wh_path, "--format", "csv")
    assert r.output.split() == ["n", "7"]


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



def test_more_files_than_descriptors_are_all_read_with_a_clear_message(tmp_path: Path, wh_path: Path) -> None:
    """A watcher under a low `ulimit -n`: files beyond the descriptor cap are read by path, none is stuck."""
    import resource

    logs = tmp_path / "many"
    logs.mkdir()
    for f in range(150):
        (logs / f"f{f:03d}.log").write_text(line(f))

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))

    r = subprocess.run([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh_path), "--once"],
                       capture_output=True, text=True, timeout=300, preexec_fn=low_limit)
    assert r.returncode == 0, r.stderr
    assert "watching more files than descriptors allow" in r.stderr and "ulimit -n" in r.stderr
    assert ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(150)]
    with (logs / "f149.log").open("a") as fh:  # an over-the-cap file keeps being read as it grows
        fh.write(line(150))
    r = subprocess.run([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh_path), "--once"],
                       capture_output=True, text=True, timeout=300, preexec_fn=low_limit)
    assert r.returncode == 0 and ids(wh_path) == [f"chatcmpl-{i:06d}" for i in range(151)]


def test_watch_says_what_share_of_calls_has_key_user_route_timestamp(logs: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (logs / "a.log").write_text(line(0) + line(1))
    r = cli("watch", logs, "--warehouse", wh_path, "--once")
    assert r.exit_code == 0 and "coverage: calls with key 0% user 0% route 100% timestamp 100%" in r.output


def test_a_failed_hourly_compaction_does_not_stop_the_watcher(logs: Path, wh_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from attribution.api import make_watcher, run_watcher
    from ingest.store import ConflictError, Store

    def failing(self: Store, target_size: int = 0) -> dict[str, dict[str, int]]:
        raise ConflictError("other writers kept committing")

    monkeypatch.setattr(Store, "optimize", failing)
    (logs / "a.log").write_text(line(0))
    options = WatchOptions(once=True, compact_every_seconds=0.0)
    watcher, engine, store = make_watcher([logs], wh_path, None, None, IngestOptions(), options)
    ticks = list(run_watcher(watcher, engine, store))
    assert ticks[-1].final and ids(wh_path) == ["chatcmpl-000000"]
