"""Budgets: spend (USD or tokens) against a limit per scope and calendar period, with projection.

Periods are calendar-aligned in the budget's time zone (UTC unless `timezone:` is set): a day
from local midnight, a week from Monday, a month from the 1st. `--at DATE` evaluates as of the
end of that day. The projection is linear: spent so far / elapsed share of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from ingest.errors import ConfigError

from .engine import field_sql
from .query import WarehouseRef, connect
from .rules import Budget, RuleSet


@dataclass
class BudgetStatus:
    id: str
    scope: str
    period: str
    period_start: str
    period_end: str
    unit: str  # usd | tokens
    limit: Decimal | int
    spent: Decimal | int
    share: float
    projected: Decimal | int
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


def scope_filter(scope: dict[str, Any], columns: set[str]) -> tuple[str, list[Any]]:
    """A WHERE fragment and its parameters: scope values never reach the SQL text."""
    parts, params = [], []
    for dim, value in scope.items():
        if dim not in columns:
            raise ConfigError(f"budget scope names {dim!r}, which the usage table lacks; run "
                              f"`tokentrail reattribute --rules FILE` so usage has that dimension")
        parts.append(f"CAST({field_sql(dim)} AS VARCHAR) = ?")
        params.append(str(value))
    return " AND ".join(parts) or "true", params


def _tz(b: Budget) -> ZoneInfo:
    try:
        return ZoneInfo(b.timezone)
    except ZoneInfoNotFoundError:
        raise ConfigError(f"budget {b.id}: unknown time zone {b.timezone!r} (use an IANA name like Europe/Berlin)") from None


def _exact(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(repr(float(v or 0)))


def evaluate(root: WarehouseRef, ruleset: RuleSet, at: date | datetime | None = None,
             con: duckdb.DuckDBPyConnection | None = None) -> list[BudgetStatus]:
    """Each budget's period containing `at` (a day: its end; a datetime: that instant; None: now)."""
    con = con or connect(root)
    columns = {r[0] for r in con.sql("DESCRIBE usage").fetchall()}
    out = []
    for b in ruleset.budgets:
        tz = _tz(b)
        if isinstance(at, datetime):
            at_local = at.astimezone(tz)
        elif at is not None:
            at_local = datetime.combine(at, datetime.max.time(), tz)
        else:
            at_local = datetime.now(tz)
        start, end = period_bounds(b.period, at_local)
        upto = min(at_local, end)
        where, params = scope_filter(b.scope, columns)
        limit: Decimal | int
        if b.limit_usd is not None:
            unit, limit = "usd", _exact(b.limit_usd)
            measure = "coalesce(sum(cost_usd), 0)"
        else:
            unit, limit = "tokens", int(b.limit_tokens or 0)
            measure = "coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0)"
        (raw,), = con.execute(f"SELECT {measure} FROM usage WHERE ts >= ? AND ts < ? AND {where}",
                              [start.astimezone(UTC), upto.astimezone(UTC), *params]).fetchall()
        spent: Decimal | int = _exact(raw) if unit == "usd" else int(raw)
        elapsed = max((upto - start).total_seconds(), 1.0)
        ratio = Decimal(repr((end - start).total_seconds() / elapsed))
        projected: Decimal | int = (spent * ratio).quantize(Decimal("1e-12")) if unit == "usd" else int(spent * ratio)
        share = float(Decimal(spent) / Decimal(limit)) if limit else 0.0
        crossed = [t for t in b.warn_at if share >= t] + ([1.0] if share >= 1.0 else [])
        status = "exceeded" if share >= 1.0 else ("warn" if crossed else "ok")
        out.append(BudgetStatus(b.id, ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "all", b.period,
                                start.isoformat(), end.isoformat(), unit, limit, spent, round(share, 4),
                                projected, status, crossed))
    return out


def as_rows(statuses: list[BudgetStatus]) -> list[dict[str, Any]]:
    """Table rows with unit-named amount columns (`spent_usd` or `spent_tokens`)."""
    rows = []
    for s in statuses:
        rows.append({"budget": s.id, "scope": s.scope, "period": s.period, "period_start": s.period_start,
                     "period_end": s.period_end, "unit": s.unit,
                     "limit_usd": s.limit if s.unit == "usd" else None,
                     "spent_usd": s.spent if s.unit == "usd" else None,
                     "projected_usd": s.projected if s.unit == "usd" else None,
                     "limit_tokens": s.limit if s.unit == "tokens" else None,
                     "spent_tokens": s.spent if s.unit == "tokens" else None,
                     "projected_tokens": s.projected if s.unit == "tokens" else None,
                     "share": s.share, "status": s.status,
                     "thresholds_crossed": ",".join(str(t) for t in s.thresholds_crossed)})
    return rows


def read_only_ruleset(root: WarehouseRef, rules_path: str | Path) -> RuleSet:
    """The ruleset for a read command, fingerprinting `api_key:` rules with the warehouse's secret if
    it has one. Without a secret no stored call carries a fingerprint, so a random one changes nothing,
    and nothing is written: a typo'd warehouse path must not turn into a new warehouse."""
    import secrets

    from ingest.keys import KeyHasher
    from ingest.store import Store

    from .rules import load_rules

    store = root if isinstance(root, Store) else Store(root)
    secret = store.meta.secret(create=False) if store.meta.table.exists() else None
    return load_rules(rules_path, KeyHasher(secret or secrets.token_bytes(32)))
