"""Re-attribution: one atomic commit for the whole range, SIGKILL-safe, dry run writes nothing, --as-of."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tree_digest, tt_sql

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
    rows = tt_sql(wh, "SELECT CAST(date AS VARCHAR), feature, count(*) FROM usage_all GROUP BY ALL").fetchall()
    out: dict[str, set[str]] = {}
    for day, feature, n in rows:
        assert n == 5, (day, feature, n)  # never a partition with both (a mix would show two groups of < 5)
        out.setdefault(day, set()).add(feature)
    return out




@pytest.mark.parametrize("batch_rows", [1, 7, 10_000])
def test_reattribute_gives_the_same_rows_whatever_the_grouping(tmp_path: Path, wh_path: Path, cli, monkeypatch,
                                                               batch_rows: int) -> None:  # type: ignore[no-untyped-def]
    """One group (kept in memory) and many groups (spooled) commit the same rows."""
    import attribution.reattribute as reattribute_module

    monkeypatch.setattr(reattribute_module, "BATCH_ROWS", batch_rows)
    _, b = _setup(tmp_path, cli, wh_path)
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path)
    assert r.exit_code == 0 and "re-attributed 20 calls over 4 days in one commit" in r.output, r.output
    assert _features_by_day(wh_path) == {f"2025-03-0{d}": {"beta"} for d in range(1, 5)}
    rows = tt_sql(wh_path, "SELECT count(*), count(DISTINCT call_id), sum(input_tokens) FROM usage_all").fetchall()
    assert rows == [(20, 20, 2000)]


def test_reattribute_rebuilds_every_partition(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    assert set().union(*_features_by_day(wh_path).values()) == {"alpha"}
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path)
    assert r.exit_code == 0 and "re-attributed 20 calls over 4 days in one commit" in r.output, r.output
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
    (alpha_cost,), = tt_sql(wh_path, "SELECT sum(cost_usd) FROM usage WHERE feature = 'alpha'").fetchall()
    assert alpha_cost > 0
    before = tree_digest(wh_path)
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path, "--dry-run", "--format", "json")
    assert r.exit_code == 0
    moves = json.loads(r.output[r.output.index("["):])
    cost = moves[0].pop("cost_usd")
    assert moves == [{"dimension": "feature", "old_value": "alpha", "new_value": "beta", "calls": 20, "tokens": 2200}]
    assert float(cost) == pytest.approx(float(alpha_cost), rel=1e-9)  # the cost that moves: all of alpha's
    assert tree_digest(wh_path) == before


def test_sigkill_at_any_moment_leaves_all_old_or_all_new(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A real reattribute process killed at random moments: never a mix of old and new numbers."""
    a, b = _setup(tmp_path, cli, wh_path)
    rng = random.Random(7)
    seen = set()
    for attempt in range(6):
        target = b if attempt % 2 == 0 else a
        proc = subprocess.Popen([sys.executable, "-m", "attribution", "reattribute", "--rules", str(target),
                                 "--warehouse", str(wh_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        state = _features_by_day(wh_path)  # asserts: 5 rows per day and feature
        values = set().union(*state.values())
        assert len(values) == 1, state  # one commit: all days old, or all days new
        seen |= values
        assert len(state) == 4
    r = cli("reattribute", "--rules", b, "--warehouse", wh_path)
    assert r.exit_code == 0
    assert _features_by_day(wh_path) == {f"2025-03-0{d}": {"beta"} for d in range(1, 5)}


def test_as_of_shows_the_numbers_before_a_rule_change(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from ingest.store import Store

    _, b = _setup(tmp_path, cli, wh_path)
    before = Store(wh_path).usage.snapshot().version()  # type: ignore[union-attr]
    assert cli("reattribute", "--rules", b, "--warehouse", wh_path).exit_code == 0
    now = cli("sql", "select distinct feature from usage", "--warehouse", wh_path, "--format", "csv")
    then = cli("sql", "select distinct feature from usage", "--warehouse", wh_path, "--format", "csv",
               "--as-of", str(before))
    assert now.output.split() == ["feature", "beta"] and then.output.split() == ["feature", "alpha"]
    r = cli("report", "--by", "feature", "--warehouse", wh_path, "--format", "csv", "--as-of", str(before))
    assert r.exit_code == 0 and "alpha,20," in r.output
    bad = cli("sql", "select 1", "--warehouse", wh_path, "--as-of", "yesterday")
    assert bad.exit_code == 2 and "--as-of 'yesterday'" in bad.output


def test_ingest_without_rules_uses_the_remembered_rules(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    cli("reattribute", "--rules", b, "--warehouse", wh_path)
    more = tmp_path / "more.log"
    more.write_text(json.dumps({"timestamp": "2025-03-09T10:00:00Z", "route": "/r", "response": {
        "id": "chatcmpl-new", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}) + "\n")
    cli("ingest", more, "--warehouse", wh_path)
    rows = tt_sql(wh_path, "SELECT feature FROM usage_all WHERE call_id = 'chatcmpl-new'").fetchall()
    assert rows == [("beta",)]


def test_remembered_rules_that_are_gone_stop_the_run_instead_of_attributing_to_the_defaults(
        tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, b = _setup(tmp_path, cli, wh_path)
    moved = tmp_path / "moved.yaml"
    cli("reattribute", "--rules", b, "--warehouse", wh_path)
    b.rename(moved)
    more = tmp_path / "more.log"
    more.write_text(json.dumps({"timestamp": "2025-03-09T10:00:00Z", "route": "/r", "response": {
        "id": "chatcmpl-new", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}) + "\n")
    r = cli("ingest", more, "--warehouse", wh_path)
    assert r.exit_code == 1 and f"{b}: the rule file last used with this warehouse is gone; put it back, or give its " \
                                f"new place with --rules FILE to ingest, watch or reattribute" in r.output
    assert tt_sql(wh_path, "SELECT count(*) FROM calls_all WHERE call_id = 'chatcmpl-new'").fetchall() == [(0,)]
    assert cli("ingest", more, "--warehouse", wh_path, "--rules", moved).exit_code == 0
    assert tt_sql(wh_path, "SELECT feature FROM usage_all WHERE call_id = 'chatcmpl-new'").fetchall() == [("beta",)]


def test_a_remembered_price_file_that_is_gone_is_named_by_every_command_that_prices(
        tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    a, _ = _setup(tmp_path, cli, wh_path)
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  - {model: gpt-4o-mini, input: 10.0, output: 20.0}\n")
    assert cli("reattribute", "--rules", a, "--prices", prices, "--warehouse", wh_path).exit_code == 0
    prices.unlink()
    for args in (["rules", "coverage", a], ["reattribute", "--rules", a]):
        r = cli(*args, "--warehouse", wh_path)
        assert r.exit_code == 1 and f"{prices}: the price file last used with this warehouse is gone" in r.output
        assert "--prices FILE to ingest, watch or reattribute" in r.output


def test_dry_run_with_new_prices_reports_the_cost_change_and_the_real_run_applies_it(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    a, _ = _setup(tmp_path, cli, wh_path)
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  - {model: gpt-4o-mini, input: 10.0, output: 20.0}\n")  # USD per 1M tokens
    before = tt_sql(wh_path, "SELECT sum(cost_usd) FROM usage").fetchall()[0][0]
    r = cli("reattribute", "--rules", a, "--prices", prices, "--warehouse", wh_path, "--dry-run", "--format", "json")
    assert r.exit_code == 0, r.output
    moves = json.loads(r.output[r.output.index("["):])
    (cost,) = [m for m in moves if m["dimension"] == "cost_usd"]
    # 20 calls x (100 input x $10 + 10 output x $20) / 1M = $0.024 after; the change is what moves
    assert cost["calls"] == 20 and float(cost["new_value"]) == pytest.approx(0.024)
    assert tt_sql(wh_path, "SELECT sum(cost_usd) FROM usage").fetchall()[0][0] == before  # nothing written
    assert cli("reattribute", "--rules", a, "--prices", prices, "--warehouse", wh_path).exit_code == 0
    assert float(tt_sql(wh_path, "SELECT sum(cost_usd) FROM usage").fetchall()[0][0]) == pytest.approx(0.024)
