"""`report --html FILE`: one self-contained page (inline SVG and CSS, no network at view time).

Charts of daily cost and tokens by key, feature and end user (top 6 each plus "other"), the
top tables, budgets and anomalies. A tiny inline script marks the page as rendered (or
records any error) so a headless browser test can check it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .anomalies import find_anomalies
from .budgets import as_rows, evaluate, read_only_ruleset
from .engine import field_sql
from .output import _column_formatter, format_cost, total_row
from .query import WarehouseRef, connect
from .reports import ADDITIVE, date_params, report

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#17becf", "#bcbd22", "#1f77b4")
OTHER_COLOUR = "#bab0ac"
TOP = 6


class Colours:
    """One colour per value across every chart of a page ("other" is always grey)."""

    def __init__(self) -> None:
        self._given: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name == "other":
            return OTHER_COLOUR
        if name not in self._given:
            self._given[name] = PALETTE[len(self._given) % len(PALETTE)]
        return self._given[name]


def _series(con: Any, dim: str, measure: str, where: str, params: list[Any]) -> tuple[list[str], dict[str, list[float]]]:
    rows = con.sql(f"""
        WITH t AS (SELECT CAST(ts AS DATE) AS d, CAST({field_sql(dim)} AS VARCHAR) AS g, {measure} AS v
                   FROM usage WHERE {where} GROUP BY ALL),
             top AS (SELECT g FROM t GROUP BY g ORDER BY sum(v) DESC, g LIMIT {TOP})
        SELECT CAST(d AS VARCHAR), CASE WHEN g IN (SELECT g FROM top) THEN coalesce(g, '(none)') ELSE 'other' END, sum(v)
        FROM t GROUP BY ALL ORDER BY 1, 2
    """, params=params).fetchall()
    days = sorted({r[0] for r in rows})
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[float]] = {}
    for d, g, v in rows:
        series.setdefault(g, [0.0] * len(days))[index[d]] += float(v or 0)
    return days, series


def nice_ticks(top: float, n: int = 4) -> list[float]:
    """Round axis steps (1, 2, 2.5 or 5 x 10^k) from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [step * i for i in range(math.ceil(top / step - 1e-9) + 1)]


def axis_label(v: float, unit: str, step: float) -> str:
    """35,000 not 3.5e+04; $0.002 not 2e-03: as many decimals as the step needs, all ticks alike."""
    decimals = 0
    while decimals < 8 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-9:
        decimals += 1
    if unit == "USD":
        return f"${v:,.{max(decimals, 2) if step < 1 else decimals}f}"
    return f"{v:,.{decimals}f}"


def stacked_bars(title: str, days: list[str], series: dict[str, list[float]], unit: str, colour: Colours) -> str:
    w, h, left, bottom = 860, 260, 80, 40
    if not days:
        return f"<section><h3>{html.escape(title)}</h3><p>No data.</p></section>"
    totals = [sum(s[i] for s in series.values()) for i in range(len(days))]
    ticks = nice_ticks(max(totals))
    top = ticks[-1]
    plot = h - bottom - 20
    bw = (w - left - 10) / len(days)
    ordered = sorted(series.items(), key=lambda kv: (kv[0] == "other", -sum(kv[1]), kv[0]))
    bars = []
    for i, _d in enumerate(days):
        y = float(h - bottom)
        for name, vals in ordered:
            bh = vals[i] / top * plot
            if bh <= 0:
                continue
            y -= bh
            shown = f"${format_cost(vals[i])}" if unit == "USD" else f"{vals[i]:,.0f} tokens"
            tip = f"{html.escape(name)} {days[i]}: {shown}"
            bars.append(f'<rect class="bar" x="{left + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" '
                        f'fill="{colour(name)}"><title>{tip}</title></rect>')
    axis = "".join(f'<text x="{left - 6}" y="{h - bottom - t / top * plot + 3:.0f}" text-anchor="end" class="tick">'
                   f"{axis_label(t, unit, ticks[1])}</text>"
                   f'<line x1="{left}" x2="{w - 10}" y1="{h - bottom - t / top * plot:.1f}" '
                   f'y2="{h - bottom - t / top * plot:.1f}" class="grid"/>' for t in ticks)
    every = max(1, len(days) // 10)
    labels = "".join(f'<text x="{left + i * bw + bw / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle" class="tick">'
                     f"{d[5:]}</text>" for i, d in enumerate(days) if i % every == 0)
    legend = "".join(f'<span class="key"><i style="background:{colour(n)}"></i>{html.escape(n)}</span>' for n, _ in ordered)
    return (f'<section><h3>{html.escape(title)}</h3><svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img">'
            f"{axis}{labels}{''.join(bars)}</svg><div class=\"legend\">{legend}</div></section>")


def table(title: str, rows: list[dict[str, Any]], limit: int = 15, totals: Sequence[str] = ()) -> str:
    """Numbers right-aligned with separators, costs at the one cost precision, and a total row over all rows."""
    if not rows:
        return f"<section><h3>{html.escape(title)}</h3><p>None.</p></section>"
    cols = list(rows[0])
    shown = rows[:limit]
    body_rows = [[r[c] for c in cols] for r in shown]
    formatters = [_column_formatter(c, [r[c] for r in rows]) for c in cols]

    def tr(values: list[Any], cls: str = "") -> str:
        cells = "".join(f'<td class="{"num" if right else "txt"}">{html.escape(fmt(v) if v is not None else "")}</td>'
                        for (right, fmt), v in zip(formatters, values, strict=True))
        return f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>"

    head = "".join(f'<th class="{"num" if right else "txt"}">{html.escape(c)}</th>'
                   for c, (right, _) in zip(cols, formatters, strict=True))
    body = "".join(tr(v) for v in body_rows)
    if len(rows) > limit:
        body += f'<tr class="more"><td colspan="{len(cols)}">… {len(rows) - limit:,} more rows (in the total)</td></tr>'
    if totals and len(rows) > 1:
        body += tr(total_row(cols, [[r[c] for c in cols] for r in rows], totals), "total")
    return f"<section><h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table></section>"


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{margin:0 0 4px}section{margin:24px 0}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 10px}
.num{text-align:right;font-variant-numeric:tabular-nums}.txt{text-align:left}
tr.total td{font-weight:bold;border-top:2px solid #444}
tr.more td{color:#666;font-style:italic}.tick{font-size:10px;fill:#666}.grid{stroke:#eee}.legend{font-size:12px}
.key{margin-right:12px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
.exceeded{color:#b00;font-weight:bold}.meta{color:#666}"""

CHECK = """<script>
window.addEventListener('error', function (e) { document.body.setAttribute('data-error', String(e.message)); });
document.addEventListener('DOMContentLoaded', function () {
  var n = document.querySelectorAll('svg.chart rect.bar').length;
  document.body.setAttribute('data-rendered', n > 0 ? 'charts:' + n : 'empty');
});
</script>"""


def last_day(con: Any, since: date | None, until: date | None) -> date | None:
    """The last day with data inside the shown period (what "the end of the period" means by default)."""
    where, params = date_params(since, until)
    (newest,), = con.sql(f"SELECT max(ts) FROM usage WHERE {where}", params=params).fetchall()
    if newest is None:
        return until
    day: date = (newest if newest.tzinfo else newest.replace(tzinfo=UTC)).astimezone(UTC).date()
    return day


def render_html(root: WarehouseRef, since: date | None = None, until: date | None = None,
                rules: Path | None = None, at: date | None = None) -> str:
    """`at`: the day budgets are evaluated at (its end) [default: the last day with data in the period]."""
    con = connect(root)
    where, params = date_params(since, until)
    (first,), = con.sql(f"SELECT min(ts) FROM usage WHERE {where}", params=params).fetchall()
    end = last_day(con, since, until)
    at = at or end
    start = since or (first.astimezone(UTC).date() if first is not None else None)
    period = f"{start} to {end} (UTC, both days included)" if start and end else "no data"
    colour = Colours()
    parts = [f"<h1>tokentrail usage report</h1><p class=period>Period: <b>{html.escape(period)}</b>"
             + (f"; budgets evaluated at the end of <b>{at}</b>" if rules is not None and at else "")
             + f"</p><p class=meta>warehouse {html.escape(str(root))}; generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"]
    totals = report(root, [], since, until, con).to_pylist()
    parts.append(table("Totals", totals))
    cost = "sum(coalesce(cost_usd, 0))"
    tokens = "sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))"
    for dim in ("key_name", "feature", "end_user"):
        parts.append(stacked_bars(f"Daily cost by {dim} (USD)", *_series(con, dim, cost, where, params), "USD", colour))
    parts.append(stacked_bars("Daily tokens by feature", *_series(con, "feature", tokens, where, params), "tokens", colour))
    for dim in ("key_name", "feature", "end_user", "model"):
        parts.append(table(f"Top {dim}", report(root, [dim], since, until, con).to_pylist(), totals=ADDITIVE))
    if rules is not None:
        statuses = evaluate(root, read_only_ruleset(root, rules), at, con)
        rows = as_rows(statuses)
        used = [c for c in (rows[0] if rows else {}) if any(r[c] is not None for r in rows)]
        rows = [{c: r[c] for c in used if c not in ("period_end", "unit")} for r in rows]
        parts.append(table(f"Budgets at the end of {at}", rows).replace(
            '<td class="txt">exceeded</td>', '<td class="txt exceeded">exceeded</td>'))
    found = find_anomalies(root, "key_name", since, con=con)
    parts.append(table("Anomalies (daily tokens by key)", [
        {"day": a.period, "key_name": a.value, "tokens": a.observed, "baseline": a.baseline, "jump": a.jump,
         "top contributors": a.top_contributors} for a in found]))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>tokentrail report</title>"
            f"<style>{CSS}</style>{CHECK}</head><body>{''.join(parts)}</body></html>")


def write_html_report(root: WarehouseRef, out: Path, since: date | None = None, until: date | None = None,
                      rules: Path | None = None, at: date | None = None) -> None:
    out.write_text(render_html(root, since, until, rules, at), encoding="utf-8")
