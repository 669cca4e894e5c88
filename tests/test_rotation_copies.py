"""A rotation seen half done: the copy and the file it copies, both present, hold the same calls once.

copytruncate copies the log and then truncates it; a gzip rotation compresses the renamed log and
then deletes it. A watcher pass (or an `ingest` run) that lands between the two steps sees the
calls twice. Before `ingest.copies`, the copy was read as a second source from its start: in the
three-hosts SIGKILL test a copytruncate copy seen before the truncate stored 150 calls twice.

The watcher is driven pass by pass here, so each test puts a pass exactly inside the window.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ingest_files, tt_sql
from test_store import call_line

import ingest.watch
from ingest.pipeline import IngestOptions
from ingest.watch import Watcher, WatchOptions


class Passes:
    """A watcher over `logs`, advanced one pass (scan, read, commit) at a time. With `flush_seconds=0`
    every changed file is due on every pass, and an unchanged one is skipped, as in `watch`."""

    def __init__(self, logs: Path, wh: Path, ingest: IngestOptions | None = None, **options: Any) -> None:
        """`ingest`: how files are read; `options`: other `WatchOptions` (`read_from`, `final_after_seconds`, …)."""
        from attribution.api import make_watcher

        settings: dict[str, Any] = {"flush_seconds": 0, "rescan_seconds": 0.1, "final_after_seconds": 0, **options}
        self.watcher: Watcher = make_watcher([logs], wh, None, None, ingest or IngestOptions(),
                                             WatchOptions(**settings))[0]

    def run(self, n: int = 1) -> None:
        for _ in range(n):
            self.watcher.run.new_pass()
            for _committed in self.watcher.scan():
                pass
            self.watcher.run.flush()


@pytest.fixture
def passes(logs: Path, wh_path: Path) -> Iterator[Passes]:
    p = Passes(logs, wh_path)
    yield p
    p.watcher.close()


def lines(ids: range, prefix: str = "c") -> str:
    return "".join(call_line(i, prefix=prefix) for i in ids)


def stored(wh: Path) -> Counter[str]:
    return Counter(r[0] for r in tt_sql(wh, "SELECT call_id FROM calls_all").fetchall())


def expect_once(wh: Path, ids: Iterable[int], prefix: str = "c") -> None:
    counts = stored(wh)
    assert {k: n for k, n in counts.items() if n > 1} == {}, "calls stored twice"
    assert sorted(counts) == sorted(f"chatcmpl-{prefix}{i}" for i in ids)


def append(f: Path, text: str) -> None:
    with f.open("a") as fh:
        fh.write(text)


def gzip_copy(f: Path, to: Path | None = None) -> Path:
    """What a compressing rotation writes next to `f` (not yet deleting it): `f.gz`, or `to`."""
    to = to or f.with_name(f.name + ".gz")
    with gzip.open(to, "wb") as gz:
        gz.write(f.read_bytes())
    return to


def truncate_and_write(f: Path, text: str) -> None:
    with f.open("r+") as fh:
        fh.truncate(0)
    with f.open("a") as fh:
        fh.write(text)


def test_a_copytruncate_copy_seen_before_the_truncate_is_read_once(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `resolve` not asking `LiveFiles.copied` (the copy becomes a second source, 25 calls twice).
    The copy also holds lines the watcher had not read yet: they are read from it after the truncate."""
    f = logs / "app.log"
    f.write_text(lines(range(20)))
    passes.run()
    with f.open("a") as fh:
        fh.write(lines(range(20, 25)))
    shutil.copyfile(f, logs / "app.log.1")
    passes.run()  # both files hold calls 0-24: the copy waits, the original is read on
    expect_once(wh_path, range(25))
    truncate_and_write(f, lines(range(100, 102)))
    passes.run(3)
    expect_once(wh_path, [*range(25), 100, 101])  # type: ignore[arg-type]


def test_a_copy_the_log_was_read_past_before_its_truncate_adds_nothing(passes: Passes, logs: Path, wh_path: Path) -> None:
    """copytruncate's own window: the application writes between the copy and the truncate, and the
    watcher reads that line from the log, so the source's offset lies beyond the copy's end. The copy
    is still that source's bytes (checked at an earlier commit's end), all of them read."""
    f = logs / "app.log"
    f.write_text(lines(range(10)))
    passes.run()
    shutil.copyfile(f, logs / "app.log.1")
    with f.open("a") as fh:
        fh.write(lines(range(10, 11)))
    passes.run()
    expect_once(wh_path, range(11))
    truncate_and_write(f, lines(range(100, 101)))
    passes.run(3)
    expect_once(wh_path, [*range(11), 100])  # type: ignore[arg-type]


def test_a_copy_still_being_made_waits_and_resumes_where_its_original_stopped(passes: Passes, logs: Path, wh_path: Path) -> None:
    """A copy half written (a prefix of the log) waits; the rest of the copy, completed after the
    truncate, holds lines never read from the original, and they are read once."""
    f = logs / "app.log"
    f.write_text(lines(range(30)))
    passes.run()
    whole = f.read_bytes() + lines(range(30, 40)).encode()
    f.write_bytes(whole)
    half = logs / "app.log.1"
    half.write_bytes(whole[: len(whole) // 3])
    passes.run()
    expect_once(wh_path, range(40))  # the original read to its end, the partial copy left alone
    truncate_and_write(f, "")
    half.write_bytes(whole)
    passes.run(3)
    expect_once(wh_path, range(40))


def test_a_copy_just_begun_shorter_than_the_fingerprint_window_waits(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `copied` looking for twins by equal fingerprint only. A copy of under 1 KiB has a head
    fingerprint of its own; it begins the log, which makes it a copy all the same."""
    f = logs / "app.log"
    f.write_text(lines(range(12)))
    passes.run()
    whole = f.read_bytes()
    part = whole[: whole.index(b"\n", 500) + 1]
    assert len(part) < 1024
    (logs / "app.log.1").write_bytes(part)
    passes.run()
    (logs / "app.log.1").write_bytes(whole)
    truncate_and_write(f, lines(range(100, 101)))
    passes.run(3)
    expect_once(wh_path, [*range(12), 100])  # type: ignore[arg-type]


def test_a_copy_that_looks_older_still_waits_for_the_file_being_read(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `copied` deciding a tie between two equal files without `known` first: the complete copy
    `a-backup.log` (made with `cp -p`, then touched older) ranks before `z.log`, the file being read,
    and would be read too."""
    f = logs / "z.log"
    f.write_text(lines(range(10)))
    passes.run()
    backup = logs / "a-backup.log"
    shutil.copy2(f, backup)
    os.utime(backup, ns=(f.stat().st_mtime_ns - 10**9,) * 2)
    passes.run(2)
    expect_once(wh_path, range(10))


def test_a_watcher_starting_mid_rotation_checks_the_first_file_against_those_met_after_it(logs: Path, wh_path: Path) -> None:
    """Kills: the watcher offering only the files tracked so far as live: on its first pass the copy
    `a-web.log.1` (sorted first) is met before `web.log`, the longer log it copies, and was read as a
    source; the log then became a second source holding the same calls."""
    (logs / "web.log").write_text(lines(range(6)))
    shutil.copyfile(logs / "web.log", logs / "a-web.log.1")
    with (logs / "web.log").open("a") as fh:
        fh.write(lines(range(6, 9)))
    p = Passes(logs, wh_path)
    p.run(2)
    p.watcher.close()
    expect_once(wh_path, range(9))


def test_a_gzip_rotation_seen_before_the_plain_file_is_removed_is_read_once(passes: Passes, logs: Path, wh_path: Path) -> None:
    f = logs / "app.log"
    f.write_text(lines(range(15)))
    passes.run()
    rotated = logs / "app.log.1"
    f.rename(rotated)
    gzip_copy(rotated)
    f.write_text(lines(range(100, 101)))
    passes.run()  # app.log.1 and app.log.1.gz both hold calls 0-14
    rotated.unlink()
    passes.run(3)
    expect_once(wh_path, [*range(15), 100])  # type: ignore[arg-type]


def test_a_gzip_still_being_written_beside_its_plain_file_is_not_a_new_source(passes: Passes, logs: Path, wh_path: Path) -> None:
    """The compressor has written part of the stream: what can be decompressed is a prefix of the
    plain file, so the `.gz` waits (read as a new source, it would commit its readable part twice)."""
    f = logs / "app.log"
    f.write_text(lines(range(400)))
    passes.run()
    rotated = logs / "app.log.1"
    f.rename(rotated)
    gz = gzip.compress(rotated.read_bytes(), compresslevel=1)
    (logs / "app.log.1.gz").write_bytes(gz[: len(gz) // 2])
    passes.run()
    expect_once(wh_path, range(400))
    (logs / "app.log.1.gz").write_bytes(gz)
    rotated.unlink()
    passes.run(3)
    expect_once(wh_path, range(400))


def test_a_log_restarted_with_the_same_banner_no_longer_holds_its_copys_source(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `LiveFiles.holding` not checking the bytes before the record's end. After copytruncate
    the log starts again with the same 1 KiB banner, so it has the old head but not the old lines;
    the copy, which holds lines never read, must resume the old source, not start a new one."""
    banner = "# service banner " + "y" * 1100 + "\n"
    f = logs / "app.log"
    f.write_text(banner + lines(range(5)))
    passes.run()
    with f.open("a") as fh:
        fh.write(lines(range(5, 8)))
    shutil.copyfile(f, logs / "app.log.1")
    truncate_and_write(f, banner + lines(range(100, 102)))
    passes.run(3)
    expect_once(wh_path, [*range(8), 100, 101])  # type: ignore[arg-type]


@pytest.mark.parametrize("banner_bytes", [1100, 9000])
def test_two_logs_with_the_same_banner_are_still_two_sources(passes: Passes, logs: Path, wh_path: Path,
                                                             banner_bytes: int) -> None:
    """Files that only start alike diverge after the banner: neither is a copy of the other. A banner
    longer than LEAD_BYTES is told apart by the bytes before the shorter file's end (kills: `copied`
    not comparing them)."""
    banner = "# service banner " + "y" * banner_bytes + "\n"
    (logs / "a.log").write_text(banner + lines(range(3), "a"))
    (logs / "b.log").write_text(banner + lines(range(4), "b"))
    passes.run(2)
    assert sorted(stored(wh_path)) == sorted([*(f"chatcmpl-a{i}" for i in range(3)), *(f"chatcmpl-b{i}" for i in range(4))])


def test_a_log_that_grew_past_a_short_head_still_holds_its_source(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `LiveFiles.holding` comparing whole fingerprints. a.log was read while it held only a
    600-byte banner; it grew, so its head fingerprint is longer than the recorded one. b.log, with the
    same banner, must not adopt a.log's source (which made a.log restart from 0 and store its banner,
    a quarantined line, twice)."""
    banner = "# service banner " + "y" * 580 + "\n"
    a = logs / "a.log"
    a.write_text(banner)
    passes.run()
    with a.open("a") as fh:
        fh.write(lines(range(3), "a"))
    (logs / "b.log").write_text(banner + lines(range(2), "b"))
    passes.run(3)
    assert sorted(stored(wh_path)) == sorted([*(f"chatcmpl-a{i}" for i in range(3)), *(f"chatcmpl-b{i}" for i in range(2))])
    assert tt_sql(wh_path, "SELECT count(*) FROM quarantine").fetchall() == [(2,)]  # the banner, once per file


def test_a_hand_made_copy_is_never_read_and_is_said_once(passes: Passes, logs: Path, wh_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    f = logs / "app.log"
    f.write_text(lines(range(6)))
    passes.run()
    shutil.copyfile(f, logs / "app.log.bak")
    monkeypatch.setattr(ingest.watch, "DEFERRED_WARN_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger="tokentrail.watch"):
        passes.run(4)
    said = [r.getMessage() for r in caplog.records if "holds the same bytes as" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(str(logs / "app.log.bak"))
    with f.open("a") as fh:
        fh.write(lines(range(6, 8)))
    passes.run(2)
    expect_once(wh_path, range(8))


@pytest.mark.parametrize("jobs", [1, 2])
def test_ingest_of_a_directory_mid_rotation_reads_each_call_once(tmp_path: Path, wh_path: Path, jobs: int) -> None:
    """Batch ingest sees the same windows: a `.gz` beside the plain file it was made from, and a copy
    that sorts before the (longer, still written) log it copies. Either order, each call once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log.1").write_text(lines(range(10)))
    gzip_copy(logs / "app.log.1")
    (logs / "web.log").write_text(lines(range(6), "w"))
    shutil.copyfile(logs / "web.log", logs / "a-web.log.1")
    with (logs / "web.log").open("a") as fh:
        fh.write(lines(range(6, 9), "w"))
    summary = ingest_files(wh_path, logs, jobs=jobs)
    counts = stored(wh_path)
    assert {k: n for k, n in counts.items() if n > 1} == {}
    assert sorted(counts) == sorted([*(f"chatcmpl-c{i}" for i in range(10)), *(f"chatcmpl-w{i}" for i in range(9))])
    waiting = sorted(Path(r.path).name for r in summary.files if r.deferred)
    assert waiting == ["a-web.log.1", "app.log.1.gz"]
    assert all("holds the same bytes as" in (r.note or "") for r in summary.files if r.deferred)


def test_of_a_log_and_its_equal_gzip_the_plain_one_carries_the_source(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `copied` not preferring the plain file of two equal ones. Here the `.gz` sorts first; read
    as the source, the plain file (a renamed log its writer still appends to) would later be a new
    source read from its start."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "b.log").write_text(lines(range(5)))
    gzip_copy(logs / "b.log", logs / "a.log.gz")
    os.utime(logs / "a.log.gz", ns=((logs / "b.log").stat().st_mtime_ns,) * 2)  # as `gzip -k` keeps it
    first = ingest_files(wh_path, logs)
    # the plain file is read at once and only the `.gz` waits (both waiting would leave a log that never
    # changes again unread)
    expect_once(wh_path, range(5))
    assert [Path(r.path).name for r in first.files if r.deferred] == ["a.log.gz"]
    with (logs / "b.log").open("a") as fh:
        fh.write(lines(range(5, 7)))
    ingest_files(wh_path, logs)
    expect_once(wh_path, range(7))


# -- found by an independent review of the first version (each lost or doubled calls there) ----------------


def test_a_new_log_that_began_like_a_rotated_one_is_not_taken_for_its_copy(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `Store._copied_from` adopting a remembered copy without checking it is unchanged. Every
    generation starts with the same header line; generation 2, seen holding only that line, waits as a
    'copy' of app.log.1. Once app.log.1 is compressed and deleted and generation 2 has its own calls,
    it must be read as itself (taking app.log.1's source at its offset lost all 10 calls)."""
    header = "# app v1 log\n"
    f = logs / "app.log"
    f.write_text(header)
    passes.run()
    append(f, lines(range(20)))
    passes.run()
    f.rename(logs / "app.log.1")
    f.write_text(header)
    passes.run()
    gzip_copy(logs / "app.log.1")
    (logs / "app.log.1").unlink()
    append(f, lines(range(100, 110)))
    passes.run(3)
    expect_once(wh_path, [*range(20), *range(100, 110)])  # type: ignore[arg-type]


def test_a_remembered_copy_s_inode_taken_by_a_new_log_is_not_that_copy(logs: Path, wh_path: Path) -> None:
    """The same, through inode reuse: a hand copy waits and is deleted; a new log with the same banner gets
    its inode (read by path, over the descriptor cap, so the inode is freed at once)."""
    p = Passes(logs, wh_path, max_open=1)
    banner = "# service banner " + "y" * 1100 + "\n"
    (logs / "0-holder.log").write_text(lines(range(1), "h"))  # takes the one held descriptor
    p.run()
    app = logs / "app.log"
    app.write_text(banner + lines(range(20), "a"))
    p.run()
    bak = logs / "app.log.bak"
    shutil.copyfile(app, bak)
    p.run()
    inode = bak.stat().st_ino
    bak.unlink()
    worker = logs / "worker.log"
    worker.write_text(banner + lines(range(5), "w"))
    if worker.stat().st_ino != inode:
        p.watcher.close()
        pytest.skip("this filesystem did not reuse the freed inode at once")
    app.unlink()
    p.run(3)
    p.watcher.close()
    assert {k for k in stored(wh_path) if "-w" in k} == {f"chatcmpl-w{i}" for i in range(5)}


def test_two_logs_rewritten_with_the_same_lines_are_read_once_not_never(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `known` counting any record on the file's inode (its old content's too): both logs, read before,
    then each waited for the other forever."""
    a, b = logs / "a.log", logs / "b.log"
    a.write_text(lines(range(3), "a"))
    b.write_text(lines(range(3), "b"))
    passes.run()
    for f in (a, b):
        truncate_and_write(f, lines(range(50, 60), "s"))
    passes.run(3)
    counts = stored(wh_path)
    assert {k: n for k, n in counts.items() if "-s" in k} == {f"chatcmpl-s{i}": 1 for i in range(50, 60)}


def test_a_waiting_copy_deleted_while_its_original_lives_is_let_go_unread(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: the watcher not letting go of a gone waiting copy (or sampling it by its path, now missing): it
    was drained through its descriptor as a new source. logrotate's `copy` + `compress` does this at every
    rotation: the plain copy is deleted once its `.gz` is written, while the log goes on."""
    app = logs / "app.log"
    app.write_text(lines(range(20)))
    passes.run()
    shutil.copyfile(app, logs / "app.log.1")
    passes.run()
    gzip_copy(logs / "app.log.1")
    (logs / "app.log.1").unlink()
    append(app, lines(range(20, 22)))
    passes.run(3)
    expect_once(wh_path, range(22))
    assert not any(t.path.name == "app.log.1" for t in passes.watcher.tracked.values())  # its descriptor closed


def test_of_two_equal_new_files_the_older_is_read_and_the_copy_waits(tmp_path: Path, wh_path: Path) -> None:
    """Kills: breaking the tie between two equal files never seen before by name alone. The backup sorts
    first and is newer; read as the source, the log itself would wait and, once grown, be read again from 0."""
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "z.log"
    f.write_text(lines(range(10)))
    backup = logs / "a-backup.log"
    shutil.copyfile(f, backup)
    os.utime(f, ns=(backup.stat().st_mtime_ns - 10**9,) * 2)  # the original is the older file
    ingest_files(wh_path, logs)
    append(f, lines(range(10, 12)))
    ingest_files(wh_path, logs)
    expect_once(wh_path, range(12))


def test_read_from_end_started_mid_rotation_skips_what_was_there(logs: Path, wh_path: Path) -> None:
    """--read-from end, first started while a copy equal to the log exists: the log is skipped to its end
    (the copy waits), so nothing from before start-up is read later."""
    f = logs / "z.log"
    f.write_text(lines(range(10)))
    shutil.copyfile(f, logs / "a-copy.log")
    os.utime(f, ns=((logs / "a-copy.log").stat().st_mtime_ns - 10**9,) * 2)
    p = Passes(logs, wh_path, read_from="end")
    p.run()
    append(f, lines(range(10, 12)))
    p.run(2)
    p.watcher.close()
    assert sorted(stored(wh_path)) == ["chatcmpl-c10", "chatcmpl-c11"]


def test_a_copy_the_log_was_read_past_is_recognised_by_a_later_run_too(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `Store._link_copy` not recording the waiting copy, and `prune_sources` not keeping the link.
    copytruncate's window seen by one `ingest` run (the app wrote between the copy and the truncate, and
    that run read the log past the copy's end), the truncate, then another run (a new process, which did
    not see the copy wait): the copy was read again from 0."""
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "app.log"
    f.write_text(lines(range(10)))
    ingest_files(wh_path, logs)
    shutil.copyfile(f, logs / "app.log.1")
    append(f, lines(range(10, 12)))
    assert [r.deferred for r in ingest_files(wh_path, logs).files if r.path.endswith(".1")] == [True]
    from ingest.store import Store

    assert Store(wh_path).prune_sources(keep=1) > 0  # pruning (compact) keeps every copy link
    truncate_and_write(f, lines(range(100, 101)))
    ingest_files(wh_path, logs)
    expect_once(wh_path, [*range(12), 100])  # type: ignore[arg-type]


def test_two_copies_of_a_log_cut_off_before_its_last_lines_were_read_give_them_once(tmp_path: Path, wh_path: Path) -> None:
    """Kills: `SourceIndex.source_of` counting copy links as sources read. Two copies were seen waiting (and
    linked) while the log held their bytes, but the log's last two lines were not committed before it was
    truncated (a watcher killed in between). Counted as known, each copy then waited for the other forever
    and those lines were lost; one of them must carry the source on."""
    from ingest.pipeline import FileResult, IngestOptions
    from ingest.run import IngestRun
    from ingest.store import Store

    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "z.log"
    f.write_text(lines(range(18)))
    ingest_files(wh_path, logs)
    append(f, lines(range(18, 20)))
    for name in ("a1.log", "a2.log"):
        shutil.copyfile(f, logs / name)
    store = Store(wh_path).prepare_for_writing()
    run = IngestRun(store, IngestOptions())
    run.live_files = lambda: sorted(logs.iterdir())
    for name in ("a1.log", "a2.log"):  # the copies are seen waiting; the log's new lines are never committed
        res = FileResult(str(logs / name), None)
        list(run.read_file(logs / name, res))
        assert res.deferred
    truncate_and_write(f, lines(range(100, 101)))
    ingest_files(wh_path, logs)
    ingest_files(wh_path, logs)
    expect_once(wh_path, [*range(20), 100])  # type: ignore[arg-type]


def test_a_copytruncate_landing_while_a_chunk_is_finished_records_no_wrong_tail(
        passes: Passes, logs: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills: `FileIngester._finish` hashing the bytes before the chunk's end *after* its check that the
    file is unchanged. The copy and the truncate happen while the chunk is being turned into a table
    (estimation and Arrow: milliseconds under load): the record then carried the hash of bytes the file
    no longer held (or none), the copy failed the check at that offset, and was read again from 0 as a
    new source (120 and 200 calls twice in the fault tests)."""
    import ingest.pipeline

    f = logs / "app.log"
    f.write_text(lines(range(10)))
    passes.run()
    append(f, lines(range(10, 14)))
    real = ingest.pipeline.calls_to_table
    fired: list[bool] = []

    def copytruncate_meanwhile(calls):  # type: ignore[no-untyped-def]
        if not fired:
            fired.append(True)
            shutil.copyfile(f, logs / "app.log.1")
            truncate_and_write(f, lines(range(100, 101)))
        return real(calls)

    monkeypatch.setattr(ingest.pipeline, "calls_to_table", copytruncate_meanwhile)
    passes.run()
    monkeypatch.setattr(ingest.pipeline, "calls_to_table", real)
    passes.run(3)
    assert fired
    expect_once(wh_path, [*range(14), 100])  # type: ignore[arg-type]


def test_a_log_cut_shorter_under_its_same_banner_while_a_chunk_is_finished_is_a_changed_file(
        tmp_path: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills: `_finish` accepting a chunk whose end the file no longer reaches while its head is unchanged
    (truncated and restarted with the same banner while the chunk's lines were parsed): the chunk would be
    committed with no tail hash, so nothing could later check a copy or the log itself at that offset."""
    import ingest.pipeline
    from ingest.pipeline import FileChanged, FileIngester, FileResult, IngestOptions
    from ingest.sources import identify_with_head
    from ingest.store import Store

    banner = "# service banner " + "y" * 1100 + "\n"
    f = tmp_path / "app.log"
    f.write_text(banner + lines(range(6)))
    real = ingest.pipeline.LineDispatcher.handle_line
    seen: list[int] = []

    def cut_meanwhile(self, line, chunk):  # type: ignore[no-untyped-def]
        seen.append(1)
        if len(seen) == 7:  # the last line has been read: the log is cut back to its banner
            truncate_and_write(f, banner)
        return real(self, line, chunk)

    monkeypatch.setattr(ingest.pipeline.LineDispatcher, "handle_line", cut_meanwhile)
    ident, _ = identify_with_head(f)
    ingester = FileIngester(Store(wh_path).prepare_for_writing().hasher, IngestOptions())
    with pytest.raises(FileChanged), open(f, "rb") as handle:
        list(ingester.chunks(f, "src-test", ident, 0, FileResult(str(f), None), handle=handle))  # type: ignore[arg-type]


# -- found by a mutation pass (each branch removed in turn; these went unnoticed before) -------------------

def test_a_copy_longer_than_the_sample_window_is_recognised_by_its_lead(tmp_path: Path, wh_path: Path) -> None:
    """Kills: the lead of a file over 64 KiB taken from its tail window. A copytruncate copy of a 400-call
    log (over the window) beside the log it copies, which has grown since: each call once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "web.log").write_text(lines(range(400), "w"))
    assert (logs / "web.log").stat().st_size > 64 << 10
    shutil.copyfile(logs / "web.log", logs / "a-web.log.1")
    append(logs / "web.log", lines(range(400, 403), "w"))
    ingest_files(wh_path, logs)
    expect_once(wh_path, range(403), "w")


def test_a_moved_log_continues_the_source_whose_bytes_it_holds_not_the_newest_with_its_banner(
        tmp_path: Path, wh_path: Path) -> None:
    """Kills: `_moved_here` adopting a source on its head alone. Two logs share a 1,100-byte banner; the
    one read first is moved to another filesystem (same bytes, a new inode) and both originals are gone.
    The moved file must continue its own source, not the newer one with the same head (whose offset
    check would then restart it from its start)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    banner = "# service banner " + "y" * 1100 + "\n"
    a, b = logs / "a.log", logs / "b.log"
    a.write_text(banner + lines(range(20), "a"))
    b.write_text(banner + lines(range(10), "b"))
    ingest_files(wh_path, a)
    ingest_files(wh_path, b)  # b's record is the newer one
    moved = tmp_path / "elsewhere.log"
    shutil.copyfile(a, moved)
    a.unlink()
    b.unlink()
    ingest_files(wh_path, moved)
    counts = stored(wh_path)
    assert {k: n for k, n in counts.items() if n > 1} == {}, "calls stored twice"
    assert len(counts) == 30


def test_a_waiting_hand_made_copy_is_linked_once_not_on_every_pass(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `_link_copy` writing a link that exists already. `compact` keeps every link, so one per pass
    would grow `_sources` without bound while a hand-made copy sits beside its log."""
    from ingest.store import Store

    f = logs / "app.log"
    f.write_text(lines(range(6)))
    passes.run()
    shutil.copyfile(f, logs / "app.log.bak")
    passes.run(4)
    links = [r for rs in Store(wh_path).source_index(refresh=True).by_id.values() for r in rs if r.copy]
    assert len(links) == 1
    expect_once(wh_path, range(6))



def test_a_linked_copy_rewritten_to_the_same_length_is_read_not_taken_for_the_copy(
        passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: `_copied_from` trusting a link on head and length without the bytes before its end. A waiting
    copy is rewritten in place (same inode, same length, same 1,100-byte banner, other calls) before its log
    lets go; taken for the linked copy it would resume the log's source at its end and lose the new calls."""
    banner = "# service banner " + "y" * 1100 + "\n"
    f = logs / "app.log"
    f.write_text(banner + lines(range(10)))
    passes.run()
    copy = logs / "app.log.bak"
    shutil.copyfile(f, copy)
    passes.run(2)  # the copy waits, linked to the log's source
    with copy.open("r+") as fh:  # the same length: `c` and `d` ids are as long
        fh.write(banner + lines(range(10), "d"))
    assert copy.stat().st_size == f.stat().st_size
    truncate_and_write(f, "")
    passes.run(2)
    counts = stored(wh_path)
    assert {k: n for k, n in counts.items() if n > 1} == {}, "calls stored twice"
    assert sorted(counts) == sorted([*(f"chatcmpl-c{i}" for i in range(10)), *(f"chatcmpl-d{i}" for i in range(10))])
