"""FOCUS 1.2 export: columns and types against the spec's own column list, values against `usage`."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from controls_data import RULES, call_line  # noqa: E402

from attribution.query import run_sql  # noqa: E402

SPEC = Path(__file__).parent / "specs" / "focus_1_2_columns.csv"
ARROW_FOR = {"Decimal": lambda t: pa.types.is_decimal(t), "String": pa.types.is_string, "JSON": pa.types.is_string,
             "Date/Time": lambda t: pa.types.is_timestamp(t) and t.tz == "UTC"}


@pytest.fixture
def warehouse(tmp_path: Path, wh_path: Path, cli) -> Path:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = tmp_path / "calls.log"
    t = datetime(2025, 3, 10, 12, tzinfo=UTC)
    log.write_text("".join([
        call_line(t, "alpha", 1_000_000, 2_000, route="/essays/7", user="stu-1", cached=200_000),
        call_line(t, "beta", 40, 3, route="/chat/x", model="gpt-4o", i=1),
        call_line(datetime(2025, 3, 11, 9, tzinfo=UTC), "alpha", 10, 1, route="/essays/8", i=2),
        call_line(datetime(2025, 4, 2, 9, tzinfo=UTC), "beta", 7, 1, route="/chat/y", model="gpt-4o", i=3),
    ]))
    assert cli("ingest", log, "--warehouse", wh_path, "--rules", rules).exit_code == 0
    return wh_path


def spec() -> dict[str, dict[str, str]]:
    with SPEC.open() as fh:
        return {r["column_id"]: r for r in csv.DictReader(fh)}


def test_parquet_columns_and_types_match_the_focus_1_2_list(warehouse: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "focus.parquet"
    r = cli("export", "focus", "--warehouse", warehouse, "--output", out)
    assert r.exit_code == 0, r.output
    table = pq.read_table(out)
    cols = spec()
    mandatory = {c for c, row in cols.items() if row["feature_level"] == "Mandatory"}
    assert mandatory <= set(table.column_names), mandatory - set(table.column_names)
    for f in table.schema:
        if f.name.startswith("x_"):
            continue  # custom columns carry the x_ prefix the spec reserves for them
        assert f.name in cols, f"{f.name} is not a FOCUS 1.2 column"
        assert ARROW_FOR[cols[f.name]["data_type"]](f.type), (f.name, f.type, cols[f.name]["data_type"])
        if cols[f.name]["allows_nulls"] == "False":
            assert table.column(f.name).null_count == 0, f.name
    rows = table.to_pylist()
    assert {r["ServiceCategory"] for r in rows} == {"AI and Machine Learning"}
    assert {r["ConsumedUnit"] for r in rows} == {"Tokens"} and {r["ChargeCategory"] for r in rows} == {"Usage"}
    # The sum of BilledCost equals usage's cost exactly (one row per day x model x meter x attribution).
    total = run_sql(warehouse, "select sum(cost_usd) as c from usage").column("c")[0].as_py()
    assert sum(r["BilledCost"] for r in rows) == pytest.approx(Decimal(str(total)), abs=Decimal("1e-9"))
    alpha_input = [r for r in rows if r["x_KeyName"] == "alpha" and r["SkuMeter"] == "Input Tokens"
                   and r["ChargePeriodStart"].day == 10]
    assert len(alpha_input) == 1 and alpha_input[0]["ConsumedQuantity"] == 800_000  # cached tokens are their own meter
    assert alpha_input[0]["PricingQuantity"] == Decimal("0.8") and alpha_input[0]["PricingUnit"] == "1M Tokens"
    assert alpha_input[0]["BilledCost"] == Decimal("0.12")  # 0.8M x $0.15
    assert json.loads(alpha_input[0]["Tags"]) == {"key_name": "alpha", "feature": "essay-review", "end_user": "stu-1",
                                                  "team": "product"}
    assert alpha_input[0]["SkuId"] == "gpt-4o-mini/input" and alpha_input[0]["ChargePeriodEnd"].day == 11
    april = [r for r in rows if r["ChargePeriodStart"].month == 4]
    assert april and all(r["BillingPeriodStart"] == datetime(2025, 4, 1, tzinfo=UTC) for r in april)
    keys = [(r["ChargePeriodStart"], r["x_Model"], r["x_Meter"], r["x_KeyName"], r["x_Feature"], r["x_EndUser"]) for r in rows]
    assert keys == sorted(keys)  # a stable order


def test_csv_export_with_range_and_exact_decimals(warehouse: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "focus.csv"
    r = cli("export", "focus", "--warehouse", warehouse, "--output", out, "--since", "2025-03-10", "--until", "2025-03-10")
    assert r.exit_code == 0, r.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["ChargePeriodStart"] for r in rows} == {"2025-03-10T00:00:00Z"}
    cached = next(r for r in rows if r["SkuMeter"] == "Cached Input Tokens")
    assert cached["ConsumedQuantity"] == "200000" and cached["BilledCost"] == "0.015"  # 0.2M x $0.075
    assert all("e" not in r["BilledCost"].lower() for r in rows)  # never scientific notation
    bad = cli("export", "focus", "--warehouse", warehouse, "--output", tmp_path / "focus.xlsx")
    assert bad.exit_code == 2 and "name it .csv or .parquet" in bad.output
    inverted = cli("export", "focus", "--warehouse", warehouse, "--output", out, "--since", "2025-03-11", "--until", "2025-03-10")
    assert inverted.exit_code == 2 and "--since 2025-03-11 is after --until 2025-03-10" in inverted.output


def test_the_readme_focus_table_names_every_column_written() -> None:
    import re

    from attribution.export import FOCUS_COLUMNS, X_COLUMNS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## FOCUS export"):]
    section = section[:section.index("\n## ", 1)]
    named = set(re.findall(r"`(\w+)`", "\n".join(line.split("|")[1] for line in section.splitlines()
                                                  if line.startswith("| `"))))
    # `BillingPeriodStart / End` and `ChargePeriodStart / End` name their pair once
    named |= {n.replace("Start", "End") for n in named if n.endswith("Start")}
    assert {c for c, _ in FOCUS_COLUMNS} | {c for c, _ in X_COLUMNS} <= named
