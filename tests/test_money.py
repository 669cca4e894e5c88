"""Money is exact in every output: the same aggregate to the last digit across runs and across the
`report` formats, and no format shows a non-zero cost as zero.

The warehouse is built through the library ingest (`ingest_files`) from a generated app log whose
calls carry reported usage at magnitudes from a few tokens to millions, on models with cheap and
dear rates. `test_json_keeps_digits_a_float_cannot` covers sums wider than a float (an ingested call
is capped at 100M tokens, so the warehouse's sums stay within a float's 15 digits).
"""

from __future__ import annotations

import csv
import io
import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ingest_files, run, tt_sql

MODELS = ["gpt-4o-mini-2024-07-18", "gpt-5-2025-08-07", "o3-2025-04-16", "text-embedding-3-small", "gpt-4.1-nano-2025-04-14"]


def _log(path: Path, n: int = 400) -> Path:
    rnd = random.Random(11)
    lines = []
    for i in range(n):
        model = MODELS[i % len(MODELS)]
        inp = rnd.choice([1, 7, 333, 12_345, 2_000_000, 99_999_999])
        out = 0 if model.startswith("text-embedding") else rnd.choice([0, 1, 99, 40_000])
        cached = min(inp, rnd.choice([0, 0, 128, 1024]))
        endpoint = "embeddings" if model.startswith("text-embedding") else "chat"
        req = {"model": model, "input": "x"} if endpoint == "embeddings" else {"model": model, "messages": [{"role": "user", "content": "q"}]}
        usage = ({"prompt_tokens": inp, "total_tokens": inp} if endpoint == "embeddings" else
                 {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
                  "prompt_tokens_details": {"cached_tokens": cached}})
        resp = ({"object": "list", "data": [], "model": model, "usage": usage} if endpoint == "embeddings" else
                {"id": f"chatcmpl-money{i:05d}", "object": "chat.completion", "created": 1756000000 + i, "model": model,
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}], "usage": usage})
        lines.append(json.dumps({"timestamp": f"2025-09-{1 + i % 28:02d}T10:00:{i % 60:02d}Z", "route": f"/r{i % 3}",
                                 "status_code": 200, "request": req, "response": resp}))
    # a group cheaper than the table's last digit: one 7-token embedding ($0.02 / 1M -> $0.00000014)
    lines.append(json.dumps({"timestamp": "2025-09-02T11:00:00Z", "route": "/tiny", "status_code": 200,
                             "request": {"model": MODELS[3], "input": "x"},
                             "response": {"object": "list", "data": [], "model": MODELS[3],
                                          "usage": {"prompt_tokens": 7, "total_tokens": 7}}}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def money_wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("money")
    wh = root / "warehouse"
    ingest_files(wh, _log(root / "calls.jsonl"))
    return wh


def _reports(wh: Path) -> dict[str, str]:
    out = {}
    for fmt in ("table", "csv", "json"):
        r = run("report", "--warehouse", wh, "--by", "model", "--by", "route", "--format", fmt)
        assert r.exit_code == 0, r.output
        out[fmt] = r.output
    return out


def _table_total(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if "total" in ln]
    return line.split("│")[-3].strip()  # cost_usd is the second-last column


def test_same_aggregate_to_the_last_digit_across_runs_and_formats(money_wh: Path) -> None:
    ((exact,),) = tt_sql(money_wh, "SELECT sum(cost_usd) FROM usage").fetchall()
    assert isinstance(exact, Decimal) and exact.as_tuple().exponent == -12
    runs = [_reports(money_wh) for _ in range(5)]
    assert all(r == runs[0] for r in runs[1:])  # five runs: byte-identical, every format
    rep = runs[0]
    csv_rows = list(csv.DictReader(io.StringIO(rep["csv"])))
    csv_total = sum((Decimal(r["cost_usd"]) for r in csv_rows if r["cost_usd"]), Decimal(0))
    json_rows = json.loads(rep["json"], parse_float=Decimal)
    json_total = sum((Decimal(r["cost_usd"]) for r in json_rows if r["cost_usd"] is not None), Decimal(0))
    assert csv_total == json_total == exact  # machine formats: every digit
    assert Decimal(_table_total(rep["table"]).replace(",", "")) == exact.quantize(Decimal("0.000001"))  # people: 6 places


def test_no_format_shows_a_non_zero_cost_as_zero(money_wh: Path) -> None:
    rep = _reports(money_wh)
    exact = {(m, r): c for m, r, c in tt_sql(money_wh, "SELECT model, route, sum(cost_usd) FROM usage GROUP BY ALL").fetchall()}
    tiny = {k for k, c in exact.items() if c is not None and 0 < c < Decimal("0.0000005")}
    assert tiny, "the log must hold groups cheaper than the table's last digit"
    for row in csv.DictReader(io.StringIO(rep["csv"])):
        c = exact[(row["model"], row["route"])]
        assert Decimal(row["cost_usd"]) == c
    for row in json.loads(rep["json"], parse_float=Decimal):
        assert Decimal(row["cost_usd"]) == exact[(row["model"], row["route"])]
    for line in rep["table"].splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[1] in MODELS:
            c = exact[(cells[1], cells[2])]
            shown = cells[-3]
            assert shown != "0.000000" if c else shown == "0.000000", (cells, c)
            if c in {exact[k] for k in tiny}:
                assert shown == "<0.000001"


def test_json_keeps_digits_a_float_cannot() -> None:
    import pyarrow as pa

    from attribution.output import render
    from attribution.pricing import COST_TYPE

    wide = Decimal("12345678.123456789012")  # 20 significant digits: a float keeps 17
    assert Decimal(repr(float(wide))) != wide
    table = pa.table({"model": ["m", "n"], "cost_usd": pa.array([wide, Decimal("0.000000000001")], COST_TYPE)})
    rows = json.loads(render(table, "json"), parse_float=Decimal)
    assert [r["cost_usd"] for r in rows] == [wide, Decimal("0.000000000001")]
    assert render(table, "csv").splitlines()[1:] == ["m,12345678.123456789012", "n,0.000000000001"]


SMALL = ("SELECT CAST(0.00001234 AS DECIMAL(38, 12)) AS x, CAST(0.00000012 AS DECIMAL(38, 12)) AS y, "
         "CAST(0.00000012 AS DECIMAL(38, 12)) AS cost_usd, CAST(1.5e-7 AS DOUBLE) AS z, CAST(1e17 AS DOUBLE) AS big, "
         "CAST(3.9e-5 AS DOUBLE) AS float_usd, CAST(0.00012 AS DECIMAL(38, 12)) AS v, "
         "CAST(12345678.123456789012 AS DECIMAL(38, 12)) AS w")


def test_sql_numbers_are_written_by_type_not_by_column_name(money_wh: Path) -> None:
    """A DECIMAL under any alias is money: CSV and JSON carry its exact digits without an exponent, and
    the table never shows it as 0; a float gets no exponent either."""
    csv_out = run("sql", SMALL, "--warehouse", money_wh, "--format", "csv")
    assert csv_out.exit_code == 0, csv_out.output
    assert csv_out.output == ("x,y,cost_usd,z,big,float_usd,v,w\n0.00001234,0.00000012,0.00000012,0.00000015,"
                              "100000000000000000,0.000039,0.00012,12345678.123456789012\n")
    json_out = run("sql", SMALL, "--warehouse", money_wh, "--format", "json").output
    assert "e-" not in json_out and "e+" not in json_out
    assert '"x": 0.00001234,' in json_out and '"y": 0.00000012,' in json_out and '"z": 0.00000015,' in json_out
    assert '"float_usd": 0.000039,' in json_out and '"w": 12345678.123456789012' in json_out
    assert json.loads(json_out, parse_float=Decimal)[0]["x"] == Decimal("0.00001234")  # money: a JSON number
    table = run("sql", SMALL, "--warehouse", money_wh).output
    (row,) = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    assert row == ["0.000012", "<0.000001", "<0.000001", "<0.000001", "100,000,000,000,000,000", "0.000039",
                   "0.000120", "12,345,678.123457"]  # any DECIMAL at the cost precision
