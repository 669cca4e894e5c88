"""Budgets, IP allowlists, spikes, reconciliation and the HTML report on constructed warehouses."""

from __future__ import annotations

import json
import random
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from helpers.controls_data import call_line

from attribution.alerts import AlertEvaluator, JsonFileStateStore, JsonLinesSink
from attribution.anomalies import find_anomalies
from attribution.budgets import evaluate
from attribution.reconcile import reconcile
from attribution.rules import load_rules
from ingest.store import Store

RULES = """
version: 1
rules:
  key_name:
    - {id: alpha, when: {api_key_id: {suffix: ALFA}}, value: alpha}
    - {id: beta, when: {api_key_id: {suffix: BETA}}, value: beta}
  feature:
    - {id: f, when: {route: {exists: true}}, value: "{route}"}
budgets:
  - {id: alpha-month-utc, scope: {key_name: alpha}, limit_usd: 1.0, period: month, warn_at: [0.5]}
  - {id: alpha-month-ny, scope: {key_name: alpha}, limit_usd: 1.0, period: month, timezone: America/New_York}
  - {id: beta-day-tokens, scope: {key_name: beta}, limit_tokens: 1000, period: day}
allowlists:
  - {id: alpha-net, scope: {key_name: alpha}, cidrs: ["203.0.113.0/24", "2001:db8:10::/48"]}
"""


@pytest.fixture
def build(tmp_path: Path, wh_path: Path, cli):  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    def make(lines: list[str]) -> Path:
        log = tmp_path / f"calls-{len(list(tmp_path.glob('calls-*')))}.log"
        log.write_text("".join(lines))
        r = cli("ingest", log, "--warehouse", wh_path, "--rules", rules)
        assert r.exit_code == 0, r.output
        return rules

    return make


M = 1_000_000  # gpt-4o-mini: $0.15 per 1M input tokens


def test_budget_boundary_day_in_utc_and_a_named_zone(build, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    rules = build([
        call_line(datetime(2025, 3, 31, 23, 30, tzinfo=UTC), "alpha", 4 * M),  # $0.60, March in UTC and in New York
        call_line(datetime(2025, 4, 1, 0, 30, tzinfo=UTC), "alpha", 4 * M),   # $0.60, April in UTC, still March in New York
        call_line(datetime(2025, 4, 1, 12, 0, tzinfo=UTC), "beta", 1000),      # exactly the daily token limit
    ])
    rs = load_rules(rules, Store(wh_path).hasher)
    by_id = {s.id: s for s in evaluate(wh_path, rs, date(2025, 3, 31))}
    assert by_id["alpha-month-utc"].spent == pytest.approx(Decimal("0.60")) and by_id["alpha-month-utc"].status == "warn"
    assert by_id["alpha-month-utc"].thresholds_crossed == [0.5]
    assert by_id["alpha-month-ny"].spent == pytest.approx(Decimal("1.20")) and by_id["alpha-month-ny"].status == "exceeded"
    assert by_id["alpha-month-ny"].period_start == "2025-03-01T00:00:00-05:00"
    assert by_id["alpha-month-utc"].projected == pytest.approx(Decimal("0.60"), rel=Decimal("0.01"))  # the whole month has elapsed
    april = {s.id: s for s in evaluate(wh_path, rs, date(2025, 4, 1))}
    assert april["beta-day-tokens"].spent == 1000 and april["beta-day-tokens"].status == "exceeded"
    assert april["alpha-month-utc"].spent == pytest.approx(Decimal("0.60"))
    assert april["alpha-month-utc"].projected == pytest.approx(Decimal("18.0"), rel=Decimal("0.01"))  # one day of thirty elapsed
    r = cli("budgets", "--rules", rules, "--warehouse", wh_path, "--at", "2025-03-30", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)[0]["status"] == "ok"
    r = cli("budgets", "--rules", rules, "--warehouse", wh_path, "--at", "2025-03-31")
    assert r.exit_code == 1 and "budget exceeded: alpha-month-ny" in r.output


def test_alerts_are_written_once_per_budget_threshold_and_period(build, wh_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = build([call_line(datetime(2025, 3, 10, tzinfo=UTC), "alpha", 4 * M)])
    rs = load_rules(rules, Store(wh_path).hasher)
    alerts = tmp_path / "alerts.jsonl"
    state = tmp_path / "alert-state.json"

    def tick() -> list[tuple[str, float]]:
        ev = AlertEvaluator(wh_path, rs, [JsonLinesSink(alerts)], JsonFileStateStore(state))  # a fresh process each time
        return [(a["budget"], a["threshold"]) for _, a in ev.tick().delivered]

    # $0.60 of $1: the UTC budget (warn_at 0.5) warns; the New York one (default warn_at 0.8) does not yet
    first = tick()
    assert first == [("alpha-month-utc", 0.5)]
    assert tick() == []  # remembered across restarts
    build([call_line(datetime(2025, 3, 11, tzinfo=UTC), "alpha", 4 * M)])
    second = tick()
    assert set(second) == {("alpha-month-utc", 1.0), ("alpha-month-ny", 0.8), ("alpha-month-ny", 1.0)}
    lines = [json.loads(x) for x in alerts.read_text().splitlines()]
    assert len(lines) == len(first) + len(second) and all(x["alert"] == "budget_threshold" for x in lines)
    assert not (wh_path / "_state" / "alerts_sent.json").exists()  # delivery state is not in the warehouse


def test_ip_allowlist_v4_and_v6(build, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    t = datetime(2025, 3, 10, 9, tzinfo=UTC)
    rules = build([
        call_line(t, "alpha", 10, ip="203.0.113.50"),
        call_line(t + timedelta(minutes=1), "alpha", 10, ip="2001:db8:10:ffff::1"),
        call_line(t + timedelta(minutes=2), "alpha", 10, ip="2001:db8:11::1"),
        call_line(t + timedelta(minutes=3), "alpha", 10, ip="2001:db8:11::1"),
        call_line(t + timedelta(minutes=4), "alpha", 10, ip="198.51.100.7"),
        call_line(t + timedelta(minutes=5), "beta", 10, ip="198.51.100.7"),  # beta has no allowlist
    ])
    r = cli("audit", "ips", "--rules", rules, "--warehouse", wh_path, "--format", "json")
    assert r.exit_code == 1
    rows = json.loads(r.output[r.output.index("["):])
    assert [(x["client_ip"], x["calls"], x["key_name"]) for x in rows] == [("2001:db8:11::1", 2, "alpha"), ("198.51.100.7", 1, "alpha")]
    assert rows[0]["first_seen"].startswith("2025-03-10T09:02") and rows[0]["last_seen"].startswith("2025-03-10T09:03")
    assert cli("audit", "ips", "--rules", rules, "--warehouse", wh_path, "--until", "2025-03-09").exit_code == 0


def _seasonal(spike_day: date | None, seed: int = 3) -> list[str]:
    """Eight weeks: weekdays ~10k tokens, weekends ~4k, +-10% noise; optionally a x3 day for one key."""
    rnd = random.Random(seed)
    lines = []
    start = date(2025, 1, 6)  # a Monday
    for d in range(56):
        day = start + timedelta(days=d)
        base = 4000 if day.weekday() >= 5 else 10000
        for key in ("alpha", "beta"):
            tokens = int(base * rnd.uniform(0.9, 1.1))
            if spike_day == day and key == "alpha":
                tokens *= 3
            ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            lines.append(call_line(ts, key, tokens, route="/feature-a" if key == "alpha" else "/feature-b"))
            if spike_day == day and key == "alpha":
                lines.append(call_line(ts, key, 1, route="/new-feature", i=1))
    return lines


def test_planted_spike_is_found_and_weekly_rhythm_is_not(build, wh_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    build(_seasonal(spike_day=date(2025, 2, 19)))
    found = find_anomalies(wh_path, by="key_name")
    assert [(a.period, a.value) for a in found] == [("2025-02-19", "alpha")]
    assert found[0].jump == pytest.approx(3.0, rel=0.15) and "feature=/feature-a" in found[0].top_contributors
    quiet_wh = tmp_path / "quiet"
    shutil.copytree(wh_path, quiet_wh)
    shutil.rmtree(wh_path)
    build(_seasonal(spike_day=None))
    assert find_anomalies(wh_path, by="key_name") == []
    assert find_anomalies(wh_path) == []


def test_anomalies_cost_baseline_is_money(build, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A cost metric's observed value and baseline are the exact Decimal sums, written as money is:
    no exponent in CSV or JSON, never 0 in the table or the contributors."""
    first = datetime(2025, 2, 1, 12, tzinfo=UTC)
    build([call_line(first + timedelta(days=d), "beta", 700 if d == 28 else 7, model="gpt-4o-mini-2024-07-18", i=d)
           for d in range(29)])  # 7 tokens a day ($0.00000105), then 700 ($0.000105) on 2025-03-01
    (a,) = find_anomalies(wh_path, by="key_name", metric="cost")
    assert (a.observed, a.baseline) == (Decimal("0.000105"), Decimal("0.00000105"))
    args = ("anomalies", "--warehouse", wh_path, "--by", "key_name", "--metric", "cost", "--format")
    contributors = ("feature=/r ($0.000001 -> $0.000105); end_user=unattributed ($0.000001 -> $0.000105); "
                    "model=gpt-4o-mini-2024-07-18 ($0.000001 -> $0.000105)")
    assert cli(*args, "csv").output.splitlines() == [
        "period,dimension,value,metric,observed,baseline,jump,score,top_contributors",
        f"2025-03-01,key_name,beta,cost,0.000105,0.00000105,100,990,{contributors}"]
    text = cli(*args, "json").output
    assert "e-" not in text and '"observed": 0.000105,\n    "baseline": 0.00000105,' in text
    (row,) = [[c.strip() for c in line.split("│")[5:7]] for line in cli(*args, "table").output.splitlines()
              if line.startswith("│ 2025")]
    assert row == ["0.000105", "0.000001"]


def _costs_page(buckets: dict[str, list[tuple[str, float]]]) -> dict:
    data = []
    for day, items in sorted(buckets.items()):
        start = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
        data.append({"object": "bucket", "start_time": start, "end_time": start + 86400, "results": [
            {"object": "organization.costs.result", "amount": {"value": v, "currency": "usd"}, "line_item": li,
             "project_id": "proj_abc"} for li, v in items]})
    return {"object": "page", "data": data, "has_more": False, "next_page": None}


def test_reconcile_finds_planted_mismatches_exactly(build, wh_path: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    t = lambda d: datetime(2025, 3, d, 12, tzinfo=UTC)  # noqa: E731
    build([call_line(t(1), "alpha", 2 * M, model="gpt-4o-mini-2024-07-18"),            # $0.30
           call_line(t(2), "alpha", 2 * M, model="gpt-4o-mini-2024-07-18"),            # $0.30
           call_line(t(2), "beta", M, model="gpt-4o-2024-08-06", i=1),                 # $2.50
           call_line(t(3), "alpha", 4 * M, model="gpt-4o-mini-2024-07-18")])           # $0.60
    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps(_costs_page({
        "2025-03-01": [("gpt-4o-mini-2024-07-18, input", 0.30)],                        # matched
        "2025-03-02": [("gpt-4o-mini-2024-07-18, input", 0.30), ("gpt-4o-2024-08-06, input", 3.50)],  # gpt-4o: under by $1
        "2025-03-03": [("gpt-4o-mini-2024-07-18, input", 0.45)],                        # over by $0.15
    })))
    r = reconcile(wh_path, costs)
    got = {(x["day"], x["model"]): (x["status"], x["diff_usd"]) for x in r.rows}
    assert got == {("2025-03-01", "gpt-4o-mini"): ("matched", 0), ("2025-03-02", "gpt-4o-mini"): ("matched", 0),
                   ("2025-03-02", "gpt-4o"): ("under", -1), ("2025-03-03", "gpt-4o-mini"): ("over", Decimal("0.15"))}
    assert (r.matched, r.over, r.under) == (2, 1, 1)
    assert r.provider_usd == Decimal("4.55") and r.unseen_share == pytest.approx(1.0 / 4.55)  # money: exact Decimal
    out = cli("reconcile", "--costs", costs, "--warehouse", wh_path, "--format", "csv")
    assert out.exit_code == 0 and "share of spend tokentrail cannot see: 22.0%" in out.output
    csv_export = tmp_path / "dashboard.csv"
    csv_export.write_text("date,line_item,project,cost\n2025-03-01,\"gpt-4o-mini-2024-07-18, input\",proj_abc,$0.30\n")
    assert reconcile(wh_path, csv_export).rows[0]["status"] == "matched"


def test_reconcile_usage_tokens(build, wh_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    build([call_line(datetime(2025, 3, 1, 12, tzinfo=UTC), "alpha", 1000, 10, model="gpt-4o-mini-2024-07-18")])
    costs = tmp_path / "c.json"
    costs.write_text(json.dumps(_costs_page({"2025-03-01": [("gpt-4o-mini-2024-07-18, input", 0.00016)]})))
    usage = tmp_path / "u.json"
    start = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())
    usage.write_text(json.dumps({"object": "page", "data": [{"object": "bucket", "start_time": start, "end_time": start + 86400,
        "results": [{"object": "organization.usage.completions.result", "input_tokens": 1200, "output_tokens": 10,
                     "input_cached_tokens": 0, "num_model_requests": 2, "project_id": None, "user_id": None,
                     "api_key_id": None, "model": "gpt-4o-mini-2024-07-18", "batch": None}]}], "has_more": False}))
    (row,) = reconcile(wh_path, costs, usage).rows
    assert (row["provider_input_tokens"], row["tokentrail_input_tokens"]) == (1200, 1000)


def test_reconcile_writes_small_money_exactly_in_every_format(build, wh_path: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Cents of a cent: CSV and JSON carry the exact digits with no exponent, the table shows no non-zero as 0."""
    build([call_line(datetime(2025, 3, 1, 12, tzinfo=UTC), "alpha", 260, model="gpt-4o-mini-2024-07-18")])  # $0.000039
    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps(_costs_page({"2025-03-01": [("gpt-4o-mini-2024-07-18, input", 0.000059)],
                                             "2025-03-02": [("gpt-4o-mini-2024-07-18, input", 0.00000005)]})))
    args = ("reconcile", "--costs", costs, "--warehouse", wh_path, "--format")
    out = cli(*args, "csv")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[:3] == [
        "day,model,project_id,provider_usd,tokentrail_usd,diff_usd,unseen_share,status",
        "2025-03-01,gpt-4o-mini,(all projects),0.000059,0.000039,-0.00002,0.339,matched",
        "2025-03-02,gpt-4o-mini,(all projects),0.00000005,0,-0.00000005,1,matched"]
    text = cli(*args, "json").output
    assert "e-" not in text.split("]")[0]
    assert '"provider_usd": 0.000059,\n    "tokentrail_usd": 0.000039,\n    "diff_usd": -0.00002,' in text
    assert '"diff_usd": -0.00000005,' in text
    rows = [[c.strip() for c in line.split("│")[4:7]] for line in cli(*args, "table").output.splitlines() if "│" in line]
    assert rows == [["0.000059", "0.000039", "-0.000020"], ["<0.000001", "0.000000", ">-0.000001"],
                    ["0.000059", "0.000039", "-0.000020"]]  # the total row sums the exact values


def test_reconcile_reads_an_exports_amounts_with_every_digit(build, wh_path: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """No float between the export and the Decimal: 12345678.123456789012 (20 significant digits) stays whole,
    in a Costs API page and in a dashboard CSV."""
    build([call_line(datetime(2025, 3, 1, 12, tzinfo=UTC), "alpha", 260, model="gpt-4o-mini-2024-07-18")])
    page = json.dumps(_costs_page({"2025-03-01": [("gpt-4o-mini-2024-07-18, input", 1.5)]}))
    costs = tmp_path / "costs.json"
    costs.write_text(page.replace('"value": 1.5', '"value": 12345678.123456789012'))
    dashboard = tmp_path / "costs.csv"
    dashboard.write_text("date,model,cost\n2025-03-01,gpt-4o-mini,$12345678.123456789012\n")
    for export in (costs, dashboard):
        out = cli("reconcile", "--costs", export, "--warehouse", wh_path, "--format", "csv")
        assert out.exit_code == 0, out.output
        assert out.output.splitlines()[1].split(",")[3] == "12345678.123456789012", out.output


def _distinct_colours(png: Path) -> int:
    """Distinct RGB colours in a PNG screenshot (8-bit RGB/RGBA, filter-decoded), sampled every 4th row."""
    data = png.read_bytes()
    pos, chunks = 8, b""
    width = height = depth = ctype = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            chunks += body
        pos += n + 12
    assert depth == 8 and ctype in (2, 6), (depth, ctype)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * bpp
    prev = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:
            seen.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp * 4))
        prev = line
    palette = {bytes.fromhex(h) for h in ("4e79a7", "f28e2b", "e15759", "76b7b2", "59a14f", "edc948", "b07aa1")}
    return len(seen & palette)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_html_report_renders_in_a_real_browser(build, wh_path: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    rules = build(_seasonal(spike_day=date(2025, 2, 19)))
    out = tmp_path / "report.html"
    r = cli("report", "--warehouse", wh_path, "--html", out, "--rules", rules)
    assert r.exit_code == 0
    page = out.read_text()
    assert "http://" not in page and "https://" not in page and "<script src" not in page  # self-contained
    assert "Anomalies" in page and "2025-02-19" in page and "alpha-month-utc" in page
    # The period is stated and budgets are evaluated at its end (the last day with data), agreeing with the CLI.
    assert "Period: <b>2025-01-06 to 2025-03-02 (UTC, both days included)</b>" in page
    assert "Budgets at the end of 2025-03-02" in page
    cli_budgets = json.loads(cli("budgets", "--rules", rules, "--warehouse", wh_path, "--at", "2025-03-02",
                                 "--format", "json").output.split("\nbudget exceeded")[0])
    html_row = re.search(r"<td class=\"txt\">alpha-month-utc</td>(.*?)</tr>", page).group(1)  # type: ignore[union-attr]
    spent = next(b for b in cli_budgets if b["budget"] == "alpha-month-utc")["spent_usd"]
    assert spent > 0 and f"{spent:,.6f}" in html_row  # not "spent 0, ok"
    assert "e+0" not in page and "e-0" not in page  # readable axes, no scientific notation
    assert page.count('class="total"') == 2  # the tables with more than one row (key_name, feature) end with a total
    # One colour per value across charts: every legend entry for a value uses the same colour.
    colours: dict[str, set[str]] = {}
    for colour, name in re.findall(r'<i style="background:(#[0-9a-f]{6})"></i>([^<]+)</span>', page):
        colours.setdefault(name, set()).add(colour)
    assert colours and all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for n, c in colours.items() if n != "other"}) == len([n for n in colours if n != "other"])
    browser = _chromium()
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    profile = tmp_path / "chrome-profile"
    dom = subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={profile}", "--dump-dom", out.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = dom.stdout[dom.stdout.index("<body"):].split(">", 1)[0]
    assert 'data-rendered="charts:' in body, body  # the inline check found rendered bars
    assert "data-error" not in body, body  # no script error was raised while loading
    shot = tmp_path / "report.png"
    subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,2400",
                    out.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])
    assert (width, height) == (1200, 2400)
    assert _distinct_colours(shot) >= 3  # the bars were painted in the palette, not a blank page
    artifacts = Path(__file__).parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot, artifacts / "html-report.png")


def test_reconcile_per_project_key_and_line_item_with_todays_api_shapes(build, wh_path: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Costs API results grouped by project_id, line_item and api_key_id, with quantity/quantity_unit;
    Usage API results whose input_tokens include cached ones; key ids mapped through the Admin API key list."""
    t = datetime(2025, 3, 1, 12, tzinfo=UTC)
    build([call_line(t, "alpha", 2 * M, model="gpt-4o-mini-2024-07-18"),   # $0.30 on key …ALFA
           call_line(t, "beta", 2 * M, model="gpt-4o-mini-2024-07-18", i=1)])  # $0.30 on key …BETA
    start = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())

    def result(key_id: str, value: float, qty: int) -> dict:
        return {"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"},
                "line_item": "gpt-4o-mini-2024-07-18, input", "project_id": None, "api_key_id": key_id,
                "quantity": qty, "quantity_unit": "tokens"}

    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps({"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": [
            result("key_alpha", 0.30, 2 * M), result("key_beta", 0.30, 2 * M), result("key_gamma", 0.45, 3 * M)]}]}))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"object": "list", "has_more": False, "data": [
        {"object": "organization.project.api_key", "id": "key_alpha", "name": "alpha", "redacted_value": "sk-proj-****ALFA"},
        {"object": "organization.project.api_key", "id": "key_beta", "name": "beta", "redacted_value": "sk-proj-****BETA"},
        {"object": "organization.project.api_key", "id": "key_gamma", "name": "cron", "redacted_value": "sk-proj-****GMMA"}]}))
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps({"object": "page", "has_more": False, "data": [
        {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": [
            {"object": "organization.usage.completions.result", "input_tokens": 2 * M, "input_cached_tokens": 0,
             "output_tokens": 0, "num_model_requests": 1, "project_id": None, "user_id": None, "api_key_id": "key_alpha",
             "model": "gpt-4o-mini-2024-07-18", "batch": None}]}]}))
    r = reconcile(wh_path, costs, usage, keys_file=keys)
    got = {x["api_key"]: (x["status"], x["unseen_share"]) for x in r.rows}
    assert got == {"sk-…ALFA": ("matched", 0.0), "sk-…BETA": ("matched", 0.0), "sk-…GMMA": ("under", 1.0)}
    alpha = next(x for x in r.rows if x["api_key"] == "sk-…ALFA")
    assert (alpha["provider_input_tokens"], alpha["tokentrail_input_tokens"]) == (2 * M, 2 * M)
    assert r.unseen_share == pytest.approx(0.45 / 1.05)
    out = cli("reconcile", "--costs", costs, "--keys", keys, "--warehouse", wh_path)
    assert out.exit_code == 0 and "sk-…GMMA" in out.output and "│ total" in out.output
    assert "share of spend tokentrail cannot see: 42.9%" in out.output
