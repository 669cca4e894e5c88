"""Re-attribution: atomic per partition, crash-safe between partitions, dry run writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from attribution.reattribute import CRASH_ENV

RULES_A = "version: 1\nrules:\n  feature:\n    - {id: all, when: {route: {prefix: /}}, value: alpha}\n"
RULES_B = "version: 1\nrules:\n  feature:\n    - {id: all, when: {route: {prefix: /}}, value: beta}\n"


def _logs(tmp_path: Path, days: int = 4, per_day: int = 5) -> Path:
    log = tmp_path / "app.log"
    lines = []
    for d in range(days):
        for i in range(per_day):
            lines.append(json.dumps({
                "timestamp": f"2025-03-{d + 1:02d}T10:00:{i:02d}Z", "route": "/r",
                "response": {"id": f"chatcmpl-{d}-{i}", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                             "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}}))
    log.write_text("\n".join(lines) + "\n")
    return log


def _setup(tmp_path: Path, cli, wh: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(RULES_A)
    b.write_text(RULES_B)
    r = cli("ingest", _logs(tmp_path), "--warehouse", wh, "--rules", a)
    assert r.exit_code == 0, r.output
    return a, b


def _features_by_day(wh: Path) -> dict[str, set[str]]:
    rows = duckdb.sql(f"SELECT CAST(date AS VARCHAR), feature, count(*) FROM read_parquet('{wh}/usage/*/*.parquet', "
                      "hive_partitioning=true) GROUP BY ALL").fetchall()
    out: dict[str, set[str]] = {}
    for day, feature, n in rows:
        assert n == 5, (day, feature, n)  # never a partition with both (a mix would show two groups of < 5)
        out.setdefault(day, set()).add(feature)
    return out


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "_state" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
        elif p.is_symlink():
            h.update(str(p.relative_to(root)).encode() + os.readlink(p).encode())
    return h.hexdigest()


def test_reattribute_rebuilds_every_partition(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    assert set().union(*_features_by_day(wh_path).values()) == {"alpha"}
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path)
    assert r.exit_code == 0 and "re-attributed 20 calls in 4 partitions" in r.output
    assert _features_by_day(wh_path) == {f"2025-03-0{d}": {"beta"} for d in range(1, 5)}
    r = cli("sql", "select distinct ruleset_hash from usage", "--warehouse", wh_path, "--format", "csv")
    assert len(r.output.strip().splitlines()) == 2


def test_since_until_limit_the_partitions(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    cli("reattribute", "--rules", b, "--warehouse", wh_path, "--since", "2025-03-02", "--until", "2025-03-03")
    assert _features_by_day(wh_path) == {"2025-03-01": {"alpha"}, "2025-03-02": {"beta"}, "2025-03-03": {"beta"},
                                         "2025-03-04": {"alpha"}}


def test_dry_run_changes_nothing_and_reports_the_moves(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    before = _tree_digest(wh_path)
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path, "--dry-run", "--format", "json")
    assert r.exit_code == 0
    moves = json.loads(r.output[r.output.index("["):])
    assert moves == [{"dimension": "feature", "old_value": "alpha", "new_value": "beta", "calls": 20, "tokens": 2200,
                      "cost_usd": moves[0]["cost_usd"]}]
    assert moves[0]["cost_usd"] > 0
    assert _tree_digest(wh_path) == before


def test_crash_between_partitions_leaves_each_partition_old_or_new(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    env = {**os.environ, CRASH_ENV: "2"}
    proc = subprocess.run([sys.executable, "-m", "attribution", "reattribute", "--rules", str(b), "--warehouse",
                           str(wh_path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    state = _features_by_day(wh_path)  # asserts: no partition mixes old and new rows
    assert sorted(state.values(), key=sorted) == [{"alpha"}, {"alpha"}, {"beta"}, {"beta"}]
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path)
    assert r.exit_code == 0
    assert _features_by_day(wh_path) == {f"2025-03-0{d}": {"beta"} for d in range(1, 5)}


def test_journaled_swap_is_finished_by_the_next_writer(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A crash after the new generation was journaled but before the symlink moved: rolled forward."""
    from attribution.store import build_engine
    from ingest.warehouse import Warehouse, write_parquet_durably

    _, b = _setup(tmp_path, cli, wh_path)
    wh = Warehouse(wh_path)
    engine = build_engine(wh, b)
    calls = duckdb.sql(f"SELECT * FROM read_parquet('{wh_path}/calls/date=2025-03-01/*.parquet')").to_arrow_table()
    gen = wh.new_generation_dir("2025-03-01", "crashed")
    write_parquet_durably(engine.apply(calls), gen / "usage.parquet")
    wh.checkpoints.db.execute("INSERT INTO reattribute_journal VALUES (?, ?, 0)", ("2025-03-01", str(gen)))
    wh.close()
    assert _features_by_day(wh_path)["2025-03-01"] == {"alpha"}
    with Warehouse(wh_path).writing("test"):
        pass
    assert _features_by_day(wh_path)["2025-03-01"] == {"beta"}


def test_ingest_without_rules_uses_the_remembered_rules(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    cli("reattribute", "--rules", b, "--warehouse", wh_path)
    more = tmp_path / "more.log"
    more.write_text(json.dumps({"timestamp": "2025-03-09T10:00:00Z", "route": "/r", "response": {
        "id": "chatcmpl-new", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}) + "\n")
    cli("ingest", more, "--warehouse", wh_path)
    rows = duckdb.sql(f"SELECT feature FROM read_parquet('{wh_path}/usage/date=2025-03-09/*.parquet')").fetchall()
    assert rows == [("beta",)]
