"""Secrets, prompt privacy, read-only SQL, concurrent writers and readers, write failures."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, tree_digest, tt_sql

from attribution.query import QueryError, run_sql

PY = [sys.executable, "-m", "attribution"]






@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS x) TO '{wh}/calls/date=2025-03-03/evil.parquet' (FORMAT parquet)",
    "COPY calls TO '{target}' (FORMAT parquet)",
    "DROP VIEW calls",
    "ATTACH '{wh}/evil.duckdb' AS evil",
    "CREATE TABLE t AS SELECT 1",
    "INSTALL httpfs",
    "SET enable_external_access = true",
    "EXPORT DATABASE '{wh}/export'",
    "SELECT 1; COPY (SELECT 1) TO '{wh}/x.csv'",
])
def test_sql_cannot_write_or_escape(loaded: Path, sql: str) -> None:
    target = next((loaded / "calls").glob("date=*/*.parquet"))
    before = tree_digest(loaded)
    with pytest.raises(QueryError, match="only reads the warehouse"):
        run_sql(loaded, sql.format(wh=loaded, target=target))
    assert tree_digest(loaded) == before


def test_sql_reads_only_the_warehouse(loaded: Path) -> None:
    with pytest.raises(QueryError, match="Permission|access"):
        run_sql(loaded, "SELECT * FROM read_csv('/etc/passwd')")
    assert run_sql(loaded, "SELECT count(*) AS n FROM calls").to_pylist() == [{"n": 13}]


def test_user_prompt_text_is_not_stored(loaded: Path, wh_path: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    user_texts = [b"Please review my essay about robotics club", b"When is the early decision deadline",
                  b"What is a transcript", b"college essay tips"]
    for p in list((loaded / "calls").rglob("*.parquet")) + list((loaded / "usage").rglob("*.parquet")):
        data = p.read_bytes()
        assert not any(t in data for t in user_texts), p
    heads = {r[0] for r in tt_sql(loaded, "SELECT system_prompt_head FROM calls_all").fetchall()}
    assert "You are an essay reviewer." in heads
    other = tmp_path / "no-heads"
    cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", other, "--no-system-prompt")
    heads = {r[0] for r in tt_sql(other, "SELECT system_prompt_head FROM calls_all").fetchall()}
    fps = {r[0] for r in tt_sql(other, "SELECT system_prompt_fp FROM calls_all").fetchall()}
    assert heads == {None} and len(fps - {None}) >= 3  # the fingerprint still tells features apart


def test_quarantine_raw_bytes_can_be_switched_off(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "bad.log"
    log.write_text('{"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "secret plan"}]\n')
    cli("ingest", log, "--warehouse", wh_path, "--quarantine-raw-bytes", "0")
    (raw, reason), = tt_sql(wh_path, "SELECT raw, reason FROM quarantine").fetchall()
    assert raw is None and "invalid JSON" in reason


def _watcher(logs: Path, wh: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*PY, "watch", str(logs), "--warehouse", str(wh), "--flush-seconds", "0.2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _line(i: int) -> str:
    return json.dumps({"timestamp": "2025-03-03T10:00:00Z", "response": {"id": f"chatcmpl-c{i}", "object": "chat.completion",
                       "created": 1741000000, "model": "gpt-4o-mini", "choices": [],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}) + "\n"


def test_writers_share_the_warehouse_while_watch_runs(tmp_path: Path, wh_path: Path) -> None:
    """ingest, reattribute and compact run while a watcher writes the same warehouse: all succeed, each call once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(_line(0))
    other = tmp_path / "other.log"
    other.write_text(_line(1))
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\n")
    w = _watcher(logs, wh_path)
    try:
        deadline = time.monotonic() + 60
        while not (wh_path / "calls").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for i, args in enumerate((["ingest", str(other)], ["reattribute", "--rules", str(rules)], ["compact"])):
            with (logs / "a.log").open("a") as fh:
                fh.write(_line(10 + i))
            r = subprocess.run([*PY, *args, "--warehouse", str(wh_path)], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        time.sleep(1.0)
        w.send_signal(signal.SIGTERM)
        assert w.wait(60) == 0
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    expected = ["chatcmpl-c0", "chatcmpl-c1", "chatcmpl-c10", "chatcmpl-c11", "chatcmpl-c12"]
    assert sorted(r[0] for r in tt_sql(wh_path, "SELECT call_id FROM calls_all").fetchall()) == expected
    assert sorted(r[0] for r in tt_sql(wh_path, "SELECT call_id FROM usage_all").fetchall()) == expected


def test_readers_never_see_half_written_files(tmp_path: Path, wh_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            if not (wh_path / "calls").exists():
                time.sleep(0.02)
                continue
            try:
                seen.append(run_sql(wh_path, "SELECT count(*) AS n FROM calls").to_pylist()[0]["n"])
            except QueryError as exc:
                errors.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(12):
            (logs / f"f{i}.log").write_text("".join(_line(i * 100 + j) for j in range(50)))
            r = subprocess.run([*PY, "ingest", str(logs), "--warehouse", str(wh_path), "-j", "1"],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:3]
    # the reader may have stopped mid-query on the snapshot before the last commit: read once more
    seen.append(run_sql(wh_path, "SELECT count(*) AS n FROM calls").to_pylist()[0]["n"])
    assert len(seen) > 1 and seen == sorted(seen) and seen[-1] == 600  # only ever whole chunks, growing
    assert all(n % 50 == 0 for n in seen)  # whole files (one chunk each), never part of one


def test_a_failed_write_commits_nothing_and_the_next_run_resumes(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A real write failure: the kernel refuses to grow files past RLIMIT_FSIZE (as on a full disk)."""
    log = tmp_path / "big.log"
    # a stored, incompressible column makes each chunk's Parquet file far bigger than the limit below,
    # while the checkpoint database stays far under it
    log.write_text("".join(_line(i).replace('"timestamp"', f'"request_id": "{os.urandom(100).hex()}", "timestamp"')
                           for i in range(20_000)))
    cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", wh_path)  # state exists before the failure
    from ingest.store import Store

    committed_before = Store(wh_path).calls.snapshot().version()  # type: ignore[union-attr]

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    r = subprocess.run([*PY, "ingest", str(log), "--warehouse", str(wh_path), "-j", "1"], capture_output=True, text=True,
                       timeout=120, preexec_fn=limit)
    assert r.returncode == 1, r.stderr
    assert "File too large" in r.stderr and "nothing partial was committed" in r.stderr
    assert "Traceback" not in r.stderr
    assert Store(wh_path).calls.snapshot().version() == committed_before  # type: ignore[union-attr]  # no commit
    n = tt_sql(wh_path, "SELECT count(*) FROM calls_all").fetchall()[0][0]
    assert n == 13
    r2 = cli("ingest", log, "--warehouse", wh_path)
    assert r2.exit_code == 0
    rows = tt_sql(wh_path, "SELECT count(*), count(DISTINCT call_id) FROM calls_all").fetchall()
    assert rows == [(20_013, 20_013)]


def test_a_warehouse_path_that_is_a_file_is_a_clear_error(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    r = cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", f)
    assert r.exit_code == 2 and "is a file" in r.output


def test_regex_rules_are_bounded_and_linear(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from attribution.rules import load_rules
    from ingest.errors import ConfigError

    long = tmp_path / "long.yaml"
    long.write_text("version: 1\nrules:\n  feature:\n    - {id: a, when: {route: {regex: '" + "a" * 1001 + "'}}, value: v}\n")
    with pytest.raises(ConfigError, match="regex is over 1000 characters"):
        load_rules(long)
    evil = tmp_path / "evil.yaml"
    evil.write_text("version: 1\nrules:\n  feature:\n    - {id: a, when: {route: {regex: '^(a+)+$'}}, value: v}\n")
    log = tmp_path / "r.log"
    log.write_text(json.dumps({"timestamp": "2025-03-03T10:00:00Z", "route": "a" * 50_000 + "!", "response": {
        "id": "chatcmpl-r", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}) + "\n")
    assert cli("ingest", log, "--warehouse", wh_path, "--rules", evil).exit_code == 0  # RE2: no catastrophic backtracking

