"""Spike detection: days (or hours) whose tokens or cost jump far above a robust baseline.

Method (documented in README.md): for each day and each value of the `--by` dimension, the
baseline is the median of the same weekday over the previous `weeks` weeks (so a weekday /
weekend rhythm is expected, not alarming); the scale is 1.4826 x the median absolute deviation
of those values, floored at 10% of the baseline. A day is flagged when it is at least
`threshold` scales above the baseline AND at least `min_ratio` times it (default 2: "usage
doubled"), and only once at least three earlier points exist. Hours use the same hour of day
over the previous 14 days. Each finding names the dimension values that grew most.

The observed value and the baseline are exact (token counts as integers, cost as the Decimal
sums and their median), so they are written as money is; only the jump and the score are floats.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from ingest.errors import ReportError, UnknownDimension

from .engine import field_sql
from .output import format_cost
from .query import WarehouseRef, connect

METRICS = {  # per-row expression; summed per bucket
    "tokens": "coalesce(input_tokens, 0) + coalesce(output_tokens, 0)",
    "cost": "coalesce(cost_usd, 0)",
}
MIN_HISTORY = 3
CONTRIBUTOR_DIMS = ("key_name", "feature", "end_user", "model")


@dataclass
class Anomaly:
    period: str
    dimension: str
    value: str
    metric: str
    observed: Decimal | int  # Decimal for cost
    baseline: Decimal | int
    jump: float  # observed / baseline
    score: float
    top_contributors: str


def _robust(values: list[float]) -> tuple[float, float]:
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    return med, max(1.4826 * mad, 0.1 * med)


def check_dimension(con: duckdb.DuckDBPyConnection, by: str | None) -> None:
    """`--by` names a column of `usage` (checked before anything else, so a typo is said as such)."""
    if by is not None and by not in {r[0] for r in con.sql("DESCRIBE usage").fetchall()}:
        raise UnknownDimension(f"unknown dimension {by!r} for --by")


def find_anomalies(root: WarehouseRef, by: str | None = None, since: date | None = None, metric: str = "tokens",
                   granularity: str = "day", threshold: float = 4.0, min_ratio: float = 2.0, weeks: int = 4,
                   con: duckdb.DuckDBPyConnection | None = None) -> list[Anomaly]:
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; use tokens or cost")
    con = con or connect(root)
    check_dimension(con, by)
    group = f"CAST({field_sql(by)} AS VARCHAR)" if by else "'all'"
    bucket = "CAST(ts AS DATE)" if granularity == "day" else "date_trunc('hour', ts)"
    rows = con.sql(f"SELECT {bucket} AS b, {group} AS g, sum({METRICS[metric]}) AS v FROM usage GROUP BY ALL").fetchall()
    zero = Decimal(0) if metric == "cost" else 0
    series: dict[str, dict[Any, Decimal | int]] = {}
    for b, g, v in rows:
        series.setdefault(g, {})[b] = _exact(v, metric)
    found: list[Anomaly] = []
    for g, points in series.items():
        if not points:
            continue
        first, last = min(points), max(points)
        step = timedelta(days=1) if granularity == "day" else timedelta(hours=1)
        lags = [timedelta(days=7 * k) for k in range(1, weeks + 1)] if granularity == "day" else \
            [timedelta(days=k) for k in range(1, 15)]
        t = first
        while t <= last:
            if since is None or (t if isinstance(t, date) and not isinstance(t, datetime) else t.date()) >= since:
                history = [points.get(t - lag, zero) for lag in lags if t - lag >= first]
                if len(history) >= MIN_HISTORY:
                    x = float(points.get(t, zero))
                    med, scale = _robust([float(h) for h in history])
                    if scale > 0 and x >= min_ratio * med and (x - med) / scale >= threshold and x > 0:
                        # exact: the middle sum, or the mean of the two middle ones
                        baseline = (round(statistics.median([int(h) for h in history])) if metric == "tokens"
                                    else statistics.median([Decimal(h) for h in history]))
                        found.append(Anomaly(str(t), by or "all", g, metric, points.get(t, zero), baseline,
                                             round(x / med, 2) if med else float("inf"), round((x - med) / scale, 1),
                                             _contributors(con, bucket, group, g, t, lags, first, metric, by)))
            t += step
    return sorted(found, key=lambda a: (a.period, -a.score, a.value))


def _exact(v: Any, metric: str) -> Decimal | int:
    """A bucket's sum as it is: tokens an int, cost the Decimal (a DOUBLE cost column's float by its digits)."""
    if metric == "tokens":
        return int(v or 0)
    return v if isinstance(v, Decimal) else Decimal(repr(float(v or 0)))


def history(root: WarehouseRef, granularity: str = "day", weeks: int = 4,
            con: duckdb.DuckDBPyConnection | None = None) -> tuple[int, int]:
    """(days of data, days needed before anything can be flagged): "not enough history" is not "no anomalies"."""
    con = con or connect(root)
    (first, last), = con.sql("SELECT min(ts), max(ts) FROM usage").fetchall()
    have = (last.date() - first.date()).days + 1 if first is not None else 0
    need = 7 * MIN_HISTORY + 1 if granularity == "day" else MIN_HISTORY + 1
    return have, need


def _contributors(con: duckdb.DuckDBPyConnection, bucket: str, group: str, g: str, t: Any, lags: list[timedelta],
                  first: Any, metric: str, by: str | None) -> str:
    """The values of other dimensions whose growth over their own baseline explains the jump."""
    base_points = [t - lag for lag in lags if t - lag >= first]
    parts = []
    for dim in CONTRIBUTOR_DIMS:
        if dim == by:
            continue
        rows = con.execute(f"""
            SELECT CAST({field_sql(dim)} AS VARCHAR) AS d,
                   sum(CASE WHEN b = $1 THEN {METRICS[metric]} END) AS now,
                   sum(CASE WHEN b <> $1 THEN {METRICS[metric]} END) / $2 AS before
            FROM (SELECT *, {bucket} AS b FROM usage) WHERE {group} = $3 AND (b = $1 OR list_contains($4, b))
            GROUP BY 1 ORDER BY coalesce(now, 0) - coalesce(before, 0) DESC LIMIT 1
        """, [t, max(len(base_points), 1), g, base_points]).fetchall()
        if rows and rows[0][1]:
            d, now, before = rows[0]
            parts.append(f"{dim}={d} ({before or 0:,.0f} -> {now:,.0f})" if metric == "tokens"
                         else f"{dim}={d} (${format_cost(before or 0)} -> ${format_cost(now)})")
    return "; ".join(parts)


def as_rows(found: list[Anomaly]) -> list[dict[str, Any]]:
    return [asdict(a) for a in found]
