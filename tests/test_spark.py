"""`rules sql`: the emitted view gives the same rows as tokentrail's own `usage`, in DuckDB and on a real local Spark."""

from __future__ import annotations

import math
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from controls_data import RULES, call_line  # noqa: E402

from attribution.budgets import read_only_ruleset  # noqa: E402
from attribution.pricing import COST_COLUMNS, Pricer  # noqa: E402
from attribution.query import connect, run_sql  # noqa: E402
from attribution.rules_sql import glob_regex, transpile, view_select  # noqa: E402

RULES_WITH_CIDR = RULES.replace("budgets:", """  area:
    - {id: office, when: {client_ip: {cidr: "203.0.113.0/28"}}, value: office}
budgets:""")
COMPARED = ("key_name", "key_name_rule", "team", "team_rule", "feature", "feature_rule", "end_user", "end_user_rule",
            "area", "area_rule", "ruleset_hash", "price_source", "price_model", *COST_COLUMNS)


@pytest.fixture
def warehouse(tmp_path: Path, wh_path: Path, cli) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_WITH_CIDR)
    t = datetime(2025, 3, 10, 12, tzinfo=UTC)
    lines = [
        call_line(t, "alpha", 1_000_000, 2_000, route="/essays/7", user="stu-1", cached=200_000),
        call_line(t, "beta", 4000, 3, route="/chat/x", model="gpt-4o", i=1),           # team by gte + not prefix
        call_line(t, "beta", 40, 3, route="/Chat/x", model="gpt-4o", i=2, user="u2"),  # regex does not match
        call_line(datetime(2025, 3, 11, tzinfo=UTC), "alpha", 10, 1, route="/essays/8", model="gpt-4.1", i=3),
        call_line(datetime(2025, 3, 11, tzinfo=UTC), "beta", 10, 1, route="/x", model="no-such-model", i=4),  # unpriced
        call_line(datetime(2025, 4, 2, tzinfo=UTC), "beta", 7, 1, route="/essays/[1]", i=5),
    ]
    lines.append(lines[1])  # the same call logged twice: counted once
    log = tmp_path / "calls.log"
    log.write_text("".join(lines))
    assert cli("ingest", log, "--warehouse", wh_path, "--rules", rules).exit_code == 0
    return wh_path, rules


def _usage(root: Path) -> dict[str, dict[str, Any]]:
    return {r["call_id"]: r for r in run_sql(root, "select * from usage").to_pylist()}


def _same(expected: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> None:
    assert sorted(got) == sorted(expected)
    for cid, want in expected.items():
        for col in COMPARED:
            a, b = want[col], got[cid][col]
            if col.endswith("_usd") and a is not None and b is not None:
                assert math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15), (cid, col, a, b)
            else:
                assert a == b, (cid, col, a, b)


def test_duckdb_view_equals_usage(warehouse: tuple[Path, Path], cli) -> None:  # type: ignore[no-untyped-def]
    root, rules = warehouse
    rs = read_only_ruleset(root, rules)
    con = connect(root)
    rows = con.sql(view_select(root, rs, Pricer(), "duckdb", source="calls_all")).to_arrow_table().to_pylist()
    expected = _usage(root)
    assert len(rows) == len(expected) == 6
    _same(expected, {r["call_id"]: r for r in rows})
    assert {r["area"] for r in rows} == {"office"}  # 203.0.113.1 is in 203.0.113.0/28
    out = cli("rules", "sql", rules, "--dialect", "trino", "--warehouse", root)
    assert out.exit_code == 0 and out.output.startswith("-- tokentrail rules sql --dialect trino")
    assert "CREATE OR REPLACE VIEW tokentrail_usage AS" in out.output and "ELEMENT_AT(metadata, 'x-feature')" in out.output


def test_every_dialect_transpiles_and_ipv6_is_refused(warehouse: tuple[Path, Path], tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root, rules = warehouse
    for dialect in ("spark", "trino", "bigquery", "snowflake"):
        r = cli("rules", "sql", rules, "--dialect", dialect, "--warehouse", root)
        assert r.exit_code == 0 and "(?P<" not in r.output and " GLOB " not in r.output.upper()
    assert transpile("SELECT metadata['k'] FROM calls", "spark") == "SELECT TRY_ELEMENT_AT(metadata, 'k') FROM calls"
    assert glob_regex("/essays/*") == "^/essays/.*$" and glob_regex("a?[!b].txt") == "^a.[^b]\\.txt$"
    v6 = tmp_path / "v6.yaml"
    v6.write_text(RULES.replace("budgets:", "  area:\n    - {id: v6, when: {client_ip: {cidr: 'fd00::/8'}}, value: lan}\nbudgets:"))
    r = cli("rules", "sql", v6, "--dialect", "spark", "--warehouse", root)
    assert r.exit_code == 1 and "Error: rule v6: IPv6 network fd00::/8 cannot be matched in portable SQL" in r.output
    assert cli("rules", "sql", rules, "--dialect", "oracle").exit_code == 2


def _java() -> str | None:
    return shutil.which("java")


@pytest.mark.slow
def test_spark_runs_the_emitted_view_with_the_same_rows_as_usage(warehouse: tuple[Path, Path], tmp_path: Path) -> None:
    pyspark = pytest.importorskip("pyspark", reason="pyspark is a dev dependency (pip install -e '.[dev]')")
    if _java() is None:
        pytest.skip("no Java runtime: .ci/run installs Debian's default-jre-headless")
    root, rules = warehouse
    # Spark cannot fetch the Delta jars here (no Maven access): it reads the calls table's rows as Parquet.
    calls = tmp_path / "calls.parquet"
    rows = run_sql(root, "select * from calls_all")
    pq.write_table(rows.drop_columns([c for c in ("date",) if c in rows.column_names]), calls)
    sql = view_select(root, read_only_ruleset(root, rules), Pricer(), "spark")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (pyspark.sql.SparkSession.builder.master("local[1]").appName("tokentrail-test")
             .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    try:
        spark.read.parquet(str(calls)).createOrReplaceTempView("calls")
        got = {r["call_id"]: r.asDict() for r in spark.sql(sql).collect()}
    finally:
        spark.stop()
    _same(_usage(root), got)
