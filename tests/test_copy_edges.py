"""Edges of the rotation-copy handling that a mutation pass found unguarded: each test here fails when
the branch its docstring names is removed (or, for the ordering in `_finish`, reversed).

Real files and a real warehouse throughout; the seams patched are the watcher's clock (so a minute of
waiting or a writer's quiet spell takes no time) and, for `_finish`, the two reads whose order matters.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ingest_files
from test_rotation_copies import Passes, append, expect_once, gzip_copy, lines, stored, truncate_and_write

import ingest.pipeline
import ingest.sources
import ingest.watch
from ingest.store import Store


class Clock:
    """The monotonic clock `ingest.watch` reads, set by hand (`at`, in seconds from the start). It runs
    ahead of the real one, so a file first tracked now (stamped with the real clock) is due at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = time.monotonic() + 1000.0
        self.at = 0.0
        monkeypatch.setattr(ingest.watch, "time", SimpleNamespace(monotonic=self.now))

    def now(self) -> float:
        return self.base + self.at


@pytest.fixture
def passes(logs: Path, wh_path: Path) -> Iterator[Passes]:
    p = Passes(logs, wh_path)
    yield p
    p.watcher.close()


def said_waiting(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "holds the same bytes as" in r.getMessage()]


def test_a_waiting_copy_is_said_only_after_it_has_waited_a_minute(passes: Passes, logs: Path, wh_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Kills: `_note_deferred` warning without the `>= DEFERRED_WARN_SECONDS` wait. A rotation's copy
    waits for a pass or two on every rotation; only one still waiting after a minute (a copy made by
    hand) is worth a warning, and that one is said once."""
    clock = Clock(monkeypatch)
    f = logs / "app.log"
    f.write_text(lines(range(6)))
    passes.run()
    shutil.copyfile(f, logs / "app.log.bak")
    with caplog.at_level(logging.WARNING, logger="tokentrail.watch"):
        for at in (0, 1, 2, 3, 59):
            clock.at = at
            passes.run()
        assert said_waiting(caplog) == []
        for at in (61, 62, 200):
            clock.at = at
            passes.run()
    said = said_waiting(caplog)
    assert len(said) == 1 and said[0].startswith(str(logs / "app.log.bak"))
    expect_once(wh_path, range(6))


def test_read_from_end_started_while_a_copy_is_being_made_commits_no_nameless_source(logs: Path, wh_path: Path) -> None:
    """Kills: `_skip_existing` going on past `resolved.copy_of` (a copy has no source id: `""`). The copy
    half made at start-up was skipped to its last line under the id "" and, found by its inode from then
    on, no longer waited: once complete it was read from there, storing lines from before start-up and
    again the lines already read from the log (calls 30-39 twice)."""
    f = logs / "app.log"
    f.write_text(lines(range(30)))
    at_start = f.read_bytes()
    copy = logs / "app.log.1"
    copy.write_bytes(at_start[: len(at_start) // 3])  # copytruncate's copy, a third written
    p = Passes(logs, wh_path, read_from="end")
    try:
        p.run()
        append(f, lines(range(30, 40)))
        p.run()
        copy.write_bytes(f.read_bytes())  # the copy completed, then the log truncated
        truncate_and_write(f, lines(range(100, 101)))
        p.run(3)
    finally:
        p.watcher.close()
    expect_once(wh_path, [*range(30, 40), 100])
    assert "" not in Store(wh_path).source_index(refresh=True).by_id


def test_a_file_that_once_waited_as_a_copy_is_drained_after_it_is_rotated_away(tmp_path: Path, logs: Path, wh_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills: `_ingest` not clearing `deferred_since` once the file is read. b.log began equal to a.log and
    waited; then it diverged and became a source of its own. Renamed out of the directory, it must still
    be drained through its descriptor until quiet (`final_after_seconds`): the writer still appends to it.
    Still marked as waiting, it was let go at the first pass after the rename, and b3-b5 were lost."""
    clock = Clock(monkeypatch)
    p = Passes(logs, wh_path, final_after_seconds=5)
    a, b = logs / "a.log", logs / "b.log"
    a.write_text(lines(range(5), "s"))
    shutil.copyfile(a, b)
    os.utime(a, ns=(b.stat().st_mtime_ns - 10**9,) * 2)  # a is the older: b is the one that waits
    try:
        p.run()
        assert [t.path.name for t in p.watcher.tracked.values() if t.deferred_since is not None] == ["b.log"]
        clock.at = 1
        append(b, lines(range(3), "b"))  # no longer a copy: read as itself
        p.run()
        with b.open("a") as writer:  # the application's descriptor, kept across the rotation
            away = tmp_path / "rotated"
            away.mkdir()
            b.rename(away / "b.log")
            clock.at = 2
            p.run()  # gone, and not yet quiet for final_after_seconds
            writer.write(lines(range(3, 6), "b"))
            writer.flush()
            clock.at = 3
            p.run()
        clock.at = 20
        p.run()  # quiet for long enough: final, and let go
        assert [t.path.name for t in p.watcher.tracked.values()] == ["a.log"]
    finally:
        p.watcher.close()
    assert {k: n for k, n in stored(wh_path).items() if k.startswith("chatcmpl-b")} == {f"chatcmpl-b{i}": 1 for i in range(6)}


def test_a_gz_name_reused_by_the_next_rotation_is_sampled_afresh(passes: Passes, logs: Path, wh_path: Path) -> None:
    """Kills: the `.gz` sample cache (`copies._gzip_sample`) keyed by path alone. app.log.1.gz is written
    at each rotation; the second generation's, beside the plain app.log.1 it was made from, must be
    compared by its own bytes. Given the first generation's sample it matched nothing, was read as a
    new source, and calls 100-114 were stored twice."""
    f = logs / "app.log"
    f.write_text(lines(range(15)))
    passes.run()
    f.rename(logs / "app.log.1")
    gzip_copy(logs / "app.log.1")
    f.write_text(lines(range(100, 115)))
    passes.run()  # app.log.1.gz (first generation) waits for app.log.1: its sample is taken
    (logs / "app.log.1").unlink()
    passes.run(2)
    expect_once(wh_path, [*range(15), *range(100, 115)])
    (logs / "app.log.1.gz").rename(logs / "app.log.2.gz")  # the next rotation: the same names again
    f.rename(logs / "app.log.1")
    gzip_copy(logs / "app.log.1")
    f.write_text(lines(range(200, 202)))
    passes.run()
    (logs / "app.log.1").unlink()
    passes.run(3)
    expect_once(wh_path, [*range(15), *range(100, 115), 200, 201])


def test_a_copytruncate_landing_between_the_tail_hash_and_the_head_check_is_read_once(
        passes: Passes, logs: Path, wh_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills: `_finish` checking the head before hashing the bytes before the chunk's end. The log
    restarts with the same 1 KiB banner and is soon longer than the chunk, so the head check passes
    either way; hashed after the truncate, the chunk's record carried the new content's hash: the log
    then resumed past its first new lines (calls 100-113 lost) and its copy, no longer matching, was read as a new
    source (calls 0-13 twice). The copytruncate is made right after whichever of the two reads comes
    first."""
    banner = "# service banner " + "y" * 1100 + "\n"
    f = logs / "app.log"
    f.write_text(banner + lines(range(10)))
    passes.run()
    append(f, lines(range(10, 14)))
    real_fingerprint, real_tail_hash = ingest.sources.fingerprint, ingest.sources.tail_hash_open
    fired: list[bool] = []

    def copytruncate_once() -> None:
        if not fired:
            fired.append(True)
            shutil.copyfile(f, logs / "app.log.1")
            truncate_and_write(f, banner + lines(range(100, 120)))

    def hash_then_rotate(fh, offset):  # type: ignore[no-untyped-def]
        tail = real_tail_hash(fh, offset)
        copytruncate_once()
        return tail

    def rotate_then_fingerprint(head):  # type: ignore[no-untyped-def]
        copytruncate_once()  # the head it is given was read before
        return real_fingerprint(head)

    monkeypatch.setattr(ingest.pipeline, "tail_hash_open", hash_then_rotate)
    monkeypatch.setattr(ingest.pipeline, "fingerprint", rotate_then_fingerprint)
    passes.run()
    monkeypatch.setattr(ingest.pipeline, "tail_hash_open", real_tail_hash)
    monkeypatch.setattr(ingest.pipeline, "fingerprint", real_fingerprint)
    assert fired
    assert (logs / "app.log").stat().st_size > (logs / "app.log.1").stat().st_size  # past the chunk's end
    passes.run(3)
    expect_once(wh_path, [*range(14), *range(100, 120)])


def test_pruning_a_sources_table_written_before_copy_links_existed_keeps_the_newest_records(
        tmp_path: Path, wh_path: Path) -> None:
    """Kills: `prune_sources` assuming the `copy` column (a warehouse written before copy links has no
    such column: DuckDB failed to bind it, and `compact` failed). The newest record per source is kept,
    so ingest resumes at its offset afterwards."""
    from deltalake import write_deltalake

    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "app.log"
    f.write_text(lines(range(10)))
    (logs / "web.log").write_text(lines(range(3), "w"))
    ingest_files(wh_path, logs, chunk_lines=2)  # a `_sources` record per chunk: 5 for app.log, 2 for web.log
    old = Store(wh_path).sources.read().drop_columns(["copy"])
    shutil.rmtree(wh_path / "_sources")
    write_deltalake(str(wh_path / "_sources"), old)
    assert "copy" not in Store(wh_path).sources.read().column_names

    assert Store(wh_path).prune_sources(keep=1) == 5
    kept = Store(wh_path).sources.read()
    assert sorted(kept["end_offset"].to_pylist()) == sorted([f.stat().st_size, (logs / "web.log").stat().st_size])
    assert Store(wh_path).prune_sources(keep=1) == 0
    append(f, lines(range(10, 12)))
    ingest_files(wh_path, logs)
    assert stored(wh_path) == {**{f"chatcmpl-c{i}": 1 for i in range(12)}, **{f"chatcmpl-w{i}": 1 for i in range(3)}}
