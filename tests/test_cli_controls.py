"""Exit codes and messages of the control commands, and output for finance."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from controls_data import RULES, call_line  # noqa: E402

from attribution.output import exact_cost, format_cost, render  # noqa: E402


@pytest.fixture
def wh(tmp_path: Path, wh_path: Path, cli) -> Path:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES + 'allowlists:\n  - {id: "o\'brien net", scope: {key_name: alpha}, cidrs: ["10.0.0.0/8"]}\n')
    log = tmp_path / "calls.log"
    t = datetime(2025, 3, 10, 12, tzinfo=UTC)
    log.write_text(call_line(t, "alpha", 1_234_567, 10, route="/essays/1") + call_line(t, "beta", 1, 0, route="/chat/1", i=1)
                   + call_line(datetime(2025, 3, 11, tzinfo=UTC), "beta", 2, 0, route="/chat/2", i=2))
    assert cli("ingest", log, "--warehouse", wh_path, "--rules", rules).exit_code == 0
    return wh_path


@pytest.mark.parametrize("args", [["report", "--format", "xml"], ["budgets", "--rules", "R", "--format", "xml"],
                                  ["audit", "ips", "--rules", "R", "--format", "yaml"], ["anomalies", "--format", "x"],
                                  ["sql", "select 1", "--format", "xml"]])
def test_unknown_format_exits_2(args: list[str], cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    r = cli(*[str(rules) if a == "R" else a for a in args])
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.output


@pytest.mark.parametrize("cmd", [["report"], ["audit", "ips", "--rules", "R"], ["reattribute", "--rules", "R"]])
def test_inverted_range_exits_2(cmd: list[str], cli, tmp_path: Path, wh: Path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    r = cli(*[str(rules) if a == "R" else a for a in cmd], "--warehouse", wh, "--since", "2025-03-11", "--until", "2025-03-10")
    assert r.exit_code == 2 and "Error: --since 2025-03-11 is after --until 2025-03-10; swap them" in r.output


@pytest.mark.parametrize("bad", ["2025-02-30", "2025-13-01", "2025-3-1", "yesterday"])
def test_impossible_dates_exit_2(bad: str, cli, wh: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args in (["report", "--since", bad], ["budgets", "--rules", str(tmp_path / "rules.yaml"), "--at", bad]):
        r = cli(*args, "--warehouse", wh)
        assert r.exit_code == 2 and f"'{bad}' is not a valid day" in r.output and "use YYYY-MM-DD" in r.output


@pytest.mark.parametrize(("args", "said"), [
    (["sql", "select 1", "--as-of", "notaversion"], "--as-of 'notaversion': expected a version number"),
    (["report", "--by", "nosuch"], "unknown dimension 'nosuch'"),
    (["anomalies", "--by", "nosuch"], "unknown dimension 'nosuch' for --by"),  # said before "not enough history"
    (["watch", "LOGS", "--once", "--metrics", "notaport"], "--metrics takes HOST:PORT"),
    (["watch", "LOGS", "--once", "--metrics", "127.0.0.1:99999"], "got '127.0.0.1:99999'"),
    (["watch", "LOGS", "--once", "--rules", "R", "--webhook", "ftp://hooks.example/x"], "webhook URL must be http(s)"),
])
def test_flag_values_no_data_can_make_right_exit_2_and_create_nothing(args: list[str], said: str, cli, tmp_path: Path,
                                                                       wh: Path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    logs = tmp_path / "logs"
    logs.mkdir()
    fresh = tmp_path / "fresh-warehouse"
    target = fresh if args[0] == "watch" else wh
    r = cli(*[str(rules) if a == "R" else str(logs) if a == "LOGS" else a for a in args], "--warehouse", target)
    assert r.exit_code == 2 and said in r.output, r.output
    assert not fresh.exists()


@pytest.mark.parametrize("cmd", ["ingest", "watch"])
def test_a_bad_rule_or_price_file_fails_before_a_warehouse_is_created(cmd: str, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("")
    bad_rules, bad_prices = tmp_path / "r.yaml", tmp_path / "p.yaml"
    bad_rules.write_text("version: 1\nrulez: {}\n")
    bad_prices.write_text("prices:\n  - {model: gpt-4o, inptu: 1}\n")
    fresh = tmp_path / "fresh-warehouse"
    for flag, path, said in (("--rules", bad_rules, "r.yaml:2: rulez: unknown field"),
                             ("--prices", bad_prices, "p.yaml:2: prices.0.inptu: unknown field")):
        r = cli(cmd, logs, *(["--once"] if cmd == "watch" else []), flag, path, "--warehouse", fresh)
        assert r.exit_code == 1 and said in r.output, r.output
        assert not fresh.exists()  # no warehouse, no key secret left behind by a typo


def test_rules_coverage_shows_unmatched_values_of_the_fields_each_dimensions_rules_use(wh: Path, tmp_path: Path) -> None:
    from conftest import FIXTURE_KEY

    from attribution.api import rules_coverage

    rules = tmp_path / "coverage.yaml"
    rules.write_text(RULES.replace("  team:\n", "  network:\n    - {id: office, when: {client_ip: {cidr: 10.0.0.0/8}}, "
                                                "value: office}\n"
                                                f"  keyed:\n    - {{id: k, when: {{api_key: {FIXTURE_KEY}}}, value: k}}\n"
                                                "  owner:\n    - {id: o1, when: {route: {prefix: /x}}, value: '{user}'}\n"
                                                "    - {id: o2, when: {model: {prefix: gpt-3}}, value: '{user}'}\n"
                                                "  team:\n"))
    top = {c.dimension: c.top_unmatched for c in rules_coverage(rules, wh)}
    assert top["team"] == [("key_name=beta", 2)]  # its rules test key_name (and input_tokens, model once each)
    assert top["network"] == [("client_ip=203.0.113.1", 3)]
    assert top["end_user"] == [("user=(null)", 3)]  # tested and copied into the value
    assert top["owner"] == [("user=(null)", 3)]  # copied into the value twice, route and model tested once each
    # a full key is matched by fingerprint: its unmatched values are shown as display ids, never fingerprints
    assert [v.split("…")[0] for v, _ in top["keyed"]] == ["api_key_id=sk-", "api_key_id=sk-"]


def test_read_commands_create_no_state(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    missing = tmp_path / "typo-warehouse"
    cli("budgets", "--rules", rules, "--warehouse", missing)
    cli("audit", "ips", "--rules", rules, "--warehouse", missing)
    cli("anomalies", "--warehouse", missing)
    cli("rules", "sql", rules, "--dialect", "spark", "--warehouse", missing)
    assert not missing.exists()


def test_quote_in_an_allowlist_id_is_data_not_sql(cli, wh: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("audit", "ips", "--rules", tmp_path / "rules.yaml", "--warehouse", wh, "--format", "json")
    assert r.exit_code == 1, r.output
    rows = json.loads(r.output[r.output.index("["):])
    assert [(x["allowlist"], x["calls"]) for x in rows] == [("o'brien net", 1)]


def test_anomalies_says_not_enough_history(cli, wh: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("anomalies", "--warehouse", wh)
    assert r.exit_code == 0 and r.output.startswith("not enough history: 2 day(s) of data; spikes can be flagged once there are 22 days")


def test_reconcile_input_errors_name_file_and_line(cli, wh: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    latin = tmp_path / "costs.json"
    latin.write_bytes(b'{"object": "page",\n "data": [], "note": "caf\xe9"}')
    r = cli("reconcile", "--costs", latin, "--warehouse", wh)
    assert r.exit_code == 1 and f"Error: {latin}:2: not UTF-8 text (byte 0xe9" in r.output and "Traceback" not in r.output
    broken = tmp_path / "broken.json"
    broken.write_text('{"object": "page", "data": [\n  {"object": "bucket",\n  "start_time": }\n]}')
    r = cli("reconcile", "--costs", broken, "--warehouse", wh)
    assert r.exit_code == 1 and f"Error: {broken}:3: not JSON" in r.output
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps({"object": "page", "data": [{"start_time": "soon", "results": []}]}))
    r = cli("reconcile", "--costs", shape, "--warehouse", wh)
    assert r.exit_code == 1 and r.output.startswith(f"Error: {shape}:1: ") and "Traceback" not in r.output
    csv_file = tmp_path / "costs.csv"
    csv_file.write_text("date,cost\n2025-03-10,0.1\n2025-03-11,lots\n")
    r = cli("reconcile", "--costs", csv_file, "--warehouse", wh)
    assert r.exit_code == 1 and f"Error: {csv_file}:3: " in r.output


def test_report_table_is_finance_ready(cli, wh: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("report", "--warehouse", wh, "--by", "key_name")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    header = next(x for x in lines if "input_tokens" in x)
    alpha = next(x for x in lines if "│ alpha" in x)
    total = next(x for x in lines if "│ total" in x)
    # right-aligned with separators: the number ends where its column header ends
    assert "1,234,567" in alpha and alpha.index("1,234,567") + len("1,234,567") == header.index("input_tokens") + len("input_tokens")
    assert "1,234,570" in total and " 3 │" in total  # 3 requests, 1,234,567 + 1 + 2 input tokens
    beta = next(x for x in lines if "│ beta" in x)
    assert "<0.000001" in beta  # 3 tokens of gpt-4o-mini is not "0.000000"
    j = json.loads(cli("report", "--warehouse", wh, "--by", "key_name", "--format", "json").output)
    assert [x["key_name"] for x in j] == ["alpha", "beta"] and isinstance(j[0]["input_tokens"], int)
    csv_out = cli("report", "--warehouse", wh, "--by", "key_name", "--format", "csv").output.splitlines()
    assert csv_out[1].startswith("alpha,1,1234567,") and "total" not in "".join(csv_out)  # no total row in CSV


def test_cost_formats() -> None:
    assert format_cost(Decimal("0.0000004")) == "<0.000001" and format_cost(Decimal("-0.0000004")) == ">-0.000001"
    assert format_cost(Decimal("1234.5")) == "1,234.500000" and format_cost(0) == "0.000000"
    assert exact_cost(Decimal("0.000000450000")) == "0.00000045" and exact_cost(Decimal("12.000000000000")) == "12"
    assert exact_cost(0.1 + 0.2) == "0.3"
    t = pa.table({"n": pa.array([Decimal(5), Decimal(7)], pa.decimal128(38, 0)), "cost_usd": [0.1, 0.2]})
    assert json.loads(render(t, "json")) == [{"n": 5, "cost_usd": 0.1}, {"n": 7, "cost_usd": 0.2}]
    assert '"n": 5,' in render(t, "json")  # an integer, not 5.0
    assert render(t, "csv") == "n,cost_usd\n5,0.1\n7,0.2"


def test_chart_axes_are_round_and_readable() -> None:
    from attribution.html_report import axis_label, nice_ticks

    ticks = nice_ticks(0.0057)
    assert [axis_label(t, "USD", ticks[1]) for t in ticks] == ["$0.000", "$0.002", "$0.004", "$0.006"]
    ticks = nice_ticks(38_000)
    assert [axis_label(t, "tokens", ticks[1]) for t in ticks] == ["0", "10,000", "20,000", "30,000", "40,000"]
    ticks = nice_ticks(1.2)
    assert [axis_label(t, "USD", ticks[1]) for t in ticks] == ["$0.00", "$0.50", "$1.00", "$1.50"]


def test_rule_file_errors_are_one_clean_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\nrules: {}\n# caf\xe9\n")
    r = cli("rules", "check", latin, "--warehouse", tmp_path / "wh")
    assert r.exit_code == 1 and r.output == f"Error: {latin}:3: rule file is not UTF-8 text (byte 0xe9); save it as UTF-8\n"
    bad_re = tmp_path / "re.yaml"
    bad_re.write_text('version: 1\nrules:\n  feature:\n    - {id: a, when: {route: {regex: "(?<=x)a"}}, value: v}\n')
    r = cli("rules", "check", bad_re, "--warehouse", tmp_path / "wh")
    assert r.exit_code == 1 and r.output.startswith(f"Error: {bad_re}:4: ") and "invalid perl operator: (?<=" in r.output
    assert "b'" not in r.output


def test_no_re2_log_noise_on_stderr(tmp_path: Path) -> None:
    import subprocess

    bad_re = tmp_path / "re.yaml"
    bad_re.write_text('version: 1\nrules:\n  feature:\n    - {id: a, when: {route: {regex: "(?<=x)a"}}, value: v}\n')
    p = subprocess.run([sys.executable, "-m", "attribution", "rules", "check", str(bad_re), "--warehouse",
                        str(tmp_path / "wh")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.splitlines() == [p.stderr.strip()], p.stderr  # one line: our message only
    assert "re2.cc" not in p.stderr and "absl" not in p.stderr


def test_audit_rows_have_a_stable_order(cli, tmp_path: Path, wh_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES + "allowlists:\n  - {id: net, scope: {key_name: alpha}, cidrs: ['10.0.0.0/8']}\n")
    t = datetime(2025, 3, 10, 12, tzinfo=UTC)
    ips = [f"198.51.100.{n}" for n in (9, 3, 27, 1, 14, 5, 22, 8)]
    log = tmp_path / "calls.log"
    log.write_text("".join(call_line(t, "alpha", 10, 1, ip=ip, i=k) for k, ip in enumerate(ips))
                   + call_line(t, "alpha", 10, 1, ip="198.51.100.27", i=99))
    assert cli("ingest", log, "--warehouse", wh_path, "--rules", rules).exit_code == 0
    r = cli("audit", "ips", "--rules", rules, "--warehouse", wh_path, "--format", "csv")
    got = [line.split(",")[3] for line in r.output.splitlines()[1:] if line.startswith("net,")]
    assert got == ["198.51.100.27"] + sorted(set(ips) - {"198.51.100.27"})  # most calls first, then by IP


def test_decimal_cost_columns_are_handled_everywhere(wh: Path, tmp_path: Path) -> None:
    """The usage table's costs become DECIMAL(38,12): reports, budgets, anomalies and rendering take them as they come."""
    from attribution.anomalies import find_anomalies
    from attribution.budgets import evaluate, read_only_ruleset
    from attribution.pricing import COST_COLUMNS
    from attribution.query import connect
    from attribution.reports import report

    con = connect(wh)
    casts = ", ".join(f"CAST({c} AS DECIMAL(38, 12)) AS {c}" for c in COST_COLUMNS)
    con.execute(f"CREATE OR REPLACE VIEW usage AS SELECT * REPLACE ({casts}) FROM usage_all")
    table = report(wh, ["key_name"], con=con)
    assert pa.types.is_decimal(table.schema.field("cost_usd").type)
    text = render(table, "table")
    assert "│ total" in text and "0.185" in text  # 1,234,567 x $0.15/1M = $0.185185…
    assert json.loads(render(table, "json"))[0]["cost_usd"] == pytest.approx(0.18519105)
    assert render(table, "csv").splitlines()[1].split(",")[6] == "0.18519105"  # exact, no trailing zeros
    (alpha,) = [s for s in evaluate(wh, read_only_ruleset(wh, tmp_path / "rules.yaml"), None, con) if s.id == "alpha-month"]
    assert isinstance(alpha.spent, Decimal)
    assert find_anomalies(wh, "key_name", metric="cost", con=con) == []


def test_user_sql_cost_columns_keep_tiny_costs(cli, wh: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("sql", "select key_name, sum(cost_usd), count(*) as cost_rank from usage group by 1 order by 1", "--warehouse", wh)
    beta = next(x for x in r.output.splitlines() if "│ beta" in x)
    assert "<0.000001" in beta and "│         2 │" in beta  # a tiny cost is not 0; an integer column stays an integer
