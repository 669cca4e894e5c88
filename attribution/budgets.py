"""Budgets: spend (USD or tokens) against a limit per scope and calendar period, with projection.

Periods are calendar-aligned in the budget's time zone (UTC unless `timezone:` is set): a day
from local midnight, a week from Monday, a month from the 1st. `--at DATE` evaluates as of the
end of that day. The projection is linear: spent so far / elapsed share of the period.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from ingest.errors import ConfigError

from .engine import sql_literal
from .query import WarehouseRef, connect
from .rules import Budget, RuleSet


@dataclass
class BudgetStatus:
    id: str
    scope: str
    period: str
    period_start: str
    period_end: str
    unit: str
    limit: float
    spent: float
    share: float
    projected: float
    status: str  # ok | warn | exceeded
    thresholds_crossed: list[float]


def period_bounds(period: str, at_local: datetime) -> tuple[datetime, datetime]:
    day = at_local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    nxt = (start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1))
    return start, nxt


def scope_sql(scope: dict[str, Any], columns: set[str]) -> str:
    parts = []
    for dim, value in scope.items():
        if dim not in columns:
            raise ConfigError(f"budget scope names {dim!r}, which the usage table lacks; run "
                              f"`tokentrail reattribute --rules FILE` so usage has that dimension")
        parts.append(f'CAST("{dim}" AS VARCHAR) = {sql_literal(str(value))}')
    return " AND ".join(parts) or "true"


def _tz(b: Budget) -> ZoneInfo:
    try:
        return ZoneInfo(b.timezone)
    except ZoneInfoNotFoundError:
        raise ConfigError(f"budget {b.id}: unknown time zone {b.timezone!r} (use an IANA name like Europe/Berlin)") from None


def evaluate(root: WarehouseRef, ruleset: RuleSet, at: date | None = None,
             con: duckdb.DuckDBPyConnection | None = None) -> list[BudgetStatus]:
    con = con or connect(root)
    columns = {r[0] for r in con.sql("DESCRIBE usage").fetchall()}
    out = []
    for b in ruleset.budgets:
        tz = _tz(b)
        at_local = (datetime.combine(at, datetime.max.time(), tz) if at else datetime.now(tz))
        start, end = period_bounds(b.period, at_local)
        upto = min(at_local, end)
        unit, limit = ("usd", float(b.limit_usd)) if b.limit_usd is not None else ("tokens", float(b.limit_tokens or 0))
        measure = "coalesce(sum(cost_usd), 0)" if unit == "usd" else \
            "coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0)"
        (spent,), = con.execute(
            f"SELECT {measure} FROM usage WHERE ts >= ? AND ts < ? AND {scope_sql(b.scope, columns)}",
            [start.astimezone(UTC), upto.astimezone(UTC)],
        ).fetchall()
        spent = float(spent)
        elapsed = max((upto - start).total_seconds(), 1.0)
        projected = spent * (end - start).total_seconds() / elapsed
        share = spent / limit if limit else 0.0
        crossed = [t for t in b.warn_at if share >= t] + ([1.0] if share >= 1.0 else [])
        status = "exceeded" if share >= 1.0 else ("warn" if crossed else "ok")
        out.append(BudgetStatus(b.id, ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "all", b.period,
                                start.isoformat(), end.isoformat(), unit, limit, round(spent, 6), round(share, 4),
                                round(projected, 6), status, crossed))
    return out


class AlertWriter:
    """For `watch --alerts FILE`: a JSON line per (budget, threshold, period) crossing, once.

    Evaluated at the date of the newest committed call (logs may be replayed from the past),
    at most every few seconds; crossings already announced are remembered in the warehouse's `_meta` table.
    """

    MIN_INTERVAL = 5.0
    SEEN_KEY = "alerts_sent"

    def __init__(self, store: Any, ruleset: RuleSet, path: Path) -> None:
        self.root, self.ruleset, self.path = store, ruleset, path
        self._last = 0.0
        raw = store.meta.get(self.SEEN_KEY)
        self._seen: set[str] = set(json.loads(raw)) if raw else set()

    def check(self, _result: Any = None, force: bool = False) -> list[dict[str, Any]]:
        if not self.ruleset.budgets or (not force and time.monotonic() - self._last < self.MIN_INTERVAL):
            return []
        self._last = time.monotonic()
        con = connect(self.root)
        (newest,), = con.sql("SELECT max(ts) FROM usage").fetchall()
        if newest is None:
            return []
        sent = []
        for st in evaluate(self.root, self.ruleset, newest.date(), con):
            for t in st.thresholds_crossed:
                key = f"{st.id}|{t}|{st.period_start}"
                if key in self._seen:
                    continue
                event = {"alert": "budget_threshold", "budget": st.id, "threshold": t, "status": st.status,
                         "scope": st.scope, "period_start": st.period_start, "spent": st.spent, "limit": st.limit,
                         "unit": st.unit, "projected": st.projected, "at": datetime.now(UTC).isoformat()}
                with self.path.open("a") as fh:
                    fh.write(json.dumps(event) + "\n")
                self._seen.add(key)
                sent.append(event)
        if sent:
            self.root.meta.put(self.SEEN_KEY, json.dumps(sorted(self._seen)))
        return sent


def as_rows(statuses: list[BudgetStatus]) -> list[dict[str, Any]]:
    return [asdict(s) for s in statuses]
