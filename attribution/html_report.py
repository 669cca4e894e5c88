"""`report --html FILE`: one self-contained page (inline SVG and CSS, no network at view time).

Charts of daily cost and tokens by key, feature and end user (top 6 each plus "other"), the
top tables, budgets and anomalies. A tiny inline script marks the page as rendered (or
records any error) so a headless browser test can check it.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .anomalies import find_anomalies
from .budgets import evaluate
from .query import WarehouseRef, connect
from .reports import date_filter, report
from .rules import load_rules

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1")
TOP = 6


def _series(con: Any, dim: str, measure: str, where: str) -> tuple[list[str], dict[str, list[float]]]:
    rows = con.sql(f"""
        WITH t AS (SELECT CAST(ts AS DATE) AS d, CAST("{dim}" AS VARCHAR) AS g, {measure} AS v
                   FROM usage WHERE {where} GROUP BY ALL),
             top AS (SELECT g FROM t GROUP BY g ORDER BY sum(v) DESC LIMIT {TOP})
        SELECT CAST(d AS VARCHAR), CASE WHEN g IN (SELECT g FROM top) THEN coalesce(g, '(none)') ELSE 'other' END, sum(v)
        FROM t GROUP BY ALL ORDER BY 1
    """).fetchall()
    days = sorted({r[0] for r in rows})
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[float]] = {}
    for d, g, v in rows:
        series.setdefault(g, [0.0] * len(days))[index[d]] += float(v or 0)
    return days, series


def stacked_bars(title: str, days: list[str], series: dict[str, list[float]], unit: str) -> str:
    w, h, left, bottom = 860, 260, 70, 40
    if not days:
        return f"<section><h3>{html.escape(title)}</h3><p>No data.</p></section>"
    totals = [sum(s[i] for s in series.values()) for i in range(len(days))]
    top = max(totals) or 1.0
    bw = (w - left - 10) / len(days)
    bars = []
    for i, _d in enumerate(days):
        y = float(h - bottom)
        for k, (name, vals) in enumerate(sorted(series.items(), key=lambda kv: -sum(kv[1]))):
            bh = vals[i] / top * (h - bottom - 20)
            if bh <= 0:
                continue
            y -= bh
            tip = f"{html.escape(name)} {days[i]}: {vals[i]:,.4g} {unit}"
            bars.append(f'<rect class="bar" x="{left + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" '
                        f'fill="{PALETTE[k % len(PALETTE)]}"><title>{tip}</title></rect>')
    ticks = "".join(f'<text x="{left - 6}" y="{h - bottom - f * (h - bottom - 20):.0f}" text-anchor="end" class="tick">'
                    f"{top * f:,.3g}</text>" for f in (0, 0.5, 1))
    every = max(1, len(days) // 10)
    labels = "".join(f'<text x="{left + i * bw + bw / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle" class="tick">'
                     f"{d[5:]}</text>" for i, d in enumerate(days) if i % every == 0)
    legend = "".join(f'<span class="key"><i style="background:{PALETTE[k % len(PALETTE)]}"></i>{html.escape(n)}</span>'
                     for k, (n, _) in enumerate(sorted(series.items(), key=lambda kv: -sum(kv[1]))))
    return (f'<section><h3>{html.escape(title)}</h3><svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img">'
            f"{ticks}{labels}{''.join(bars)}</svg><div class=\"legend\">{legend}</div></section>")


def table(title: str, rows: list[dict[str, Any]], limit: int = 15) -> str:
    if not rows:
        return f"<section><h3>{html.escape(title)}</h3><p>None.</p></section>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>" for r in rows[:limit])
    return f"<section><h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table></section>"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.6g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{margin:0 0 4px}section{margin:24px 0}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}.tick{font-size:10px;fill:#666}.legend{font-size:12px}
.key{margin-right:12px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
.exceeded{color:#b00;font-weight:bold}.meta{color:#666}"""

CHECK = """<script>
window.addEventListener('error', function (e) { document.body.setAttribute('data-error', String(e.message)); });
document.addEventListener('DOMContentLoaded', function () {
  var n = document.querySelectorAll('svg.chart rect.bar').length;
  document.body.setAttribute('data-rendered', n > 0 ? 'charts:' + n : 'empty');
});
</script>"""


def render_html(root: WarehouseRef, since: date | None = None, until: date | None = None,
                rules: Path | None = None) -> str:
    con = connect(root)
    where = date_filter(since, until)
    parts = [f"<h1>tokentrail usage report</h1><p class=meta>warehouse {html.escape(str(root))}; generated "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"]
    totals = report(root, [], since, until, con).to_pylist()
    parts.append(table("Totals", totals))
    cost = "sum(coalesce(cost_usd, 0))"
    tokens = "sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))"
    for dim in ("key_name", "feature", "end_user"):
        parts.append(stacked_bars(f"Daily cost by {dim} (USD)", *_series(con, dim, cost, where), "USD"))
    parts.append(stacked_bars("Daily tokens by feature", *_series(con, "feature", tokens, where), "tokens"))
    for dim in ("key_name", "feature", "end_user", "model"):
        parts.append(table(f"Top {dim}", report(root, [dim], since, until, con).to_pylist()))
    if rules is not None:
        from ingest.store import Store

        statuses = evaluate(root, load_rules(rules, (root if isinstance(root, Store) else Store(root)).hasher), until)
        rows = [{"budget": s.id, "scope": s.scope, "period": s.period, "spent": s.spent, "limit": s.limit, "unit": s.unit,
                 "projected": s.projected, "status": s.status} for s in statuses]
        parts.append(table("Budgets", rows).replace("<td>exceeded</td>", '<td class="exceeded">exceeded</td>'))
    found = find_anomalies(root, "key_name", since, con=con)
    parts.append(table("Anomalies (daily tokens by key)", [
        {"day": a.period, "key_name": a.value, "tokens": a.observed, "baseline": a.baseline, "jump": a.jump,
         "top contributors": a.top_contributors} for a in found]))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>tokentrail report</title>"
            f"<style>{CSS}</style>{CHECK}</head><body>{''.join(parts)}</body></html>")


def write_html_report(root: WarehouseRef, out: Path, since: date | None = None, until: date | None = None,
                      rules: Path | None = None) -> None:
    out.write_text(render_html(root, since, until, rules))
