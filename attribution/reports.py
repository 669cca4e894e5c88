"""`report`: requests, tokens and cost grouped by any dimensions; and the rule tools' queries.

This is the per-key (and per-feature, per-user) breakdown the provider's dashboard lacks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from ingest.errors import ReportError, UnknownDimension

from .engine import DEFAULT_RULE, field_sql
from .output import REPORT_COLUMNS
from .query import WarehouseRef, connect
from .rules import CompiledRule, Condition, Leaf, RuleSet

TIME_DIMENSIONS = {
    "day": "CAST(ts AS DATE)",
    "hour": "date_trunc('hour', ts)",
    "week": "CAST(date_trunc('week', ts) AS DATE)",
    "month": "strftime(ts, '%Y-%m')",
}
ADDITIVE = REPORT_COLUMNS[:-1]  # what a total row sums (estimated_share is a ratio)


def date_params(since: date | None, until: date | None, column: str = "ts") -> tuple[str, list[Any]]:
    """A WHERE fragment with `?` parameters; `until` is inclusive of the whole day (UTC)."""
    if since and until and since > until:
        raise ReportError(f"--since {since} is after --until {until}")
    parts, params = [], []
    if since:
        parts.append(f"{column} >= ?")
        params.append(datetime.combine(since, time(0), UTC))
    if until:
        parts.append(f"{column} < ?")
        params.append(datetime.combine(until + timedelta(days=1), time(0), UTC))
    return " AND ".join(parts) or "true", params


def _dimension_sql(dim: str, columns: set[str]) -> str:
    if dim in TIME_DIMENSIONS:
        return f"{TIME_DIMENSIONS[dim]} AS {dim}"
    if dim.startswith("metadata."):
        return f"{field_sql(dim)} AS " + '"' + dim.replace('"', '""') + '"'
    if dim not in columns:
        known = sorted(c for c in columns if not c.endswith(("_rule", "_tokens", "_usd")))
        raise UnknownDimension(f"unknown dimension {dim!r}; use one of: {', '.join(list(TIME_DIMENSIONS) + known)}")
    return field_sql(dim)


def report(root: WarehouseRef, by: list[str], since: date | None = None, until: date | None = None,
           con: duckdb.DuckDBPyConnection | None = None, limit: int | None = None) -> pa.Table:
    con = con or connect(root, tables=("usage",))
    columns = {r[0] for r in con.sql("DESCRIBE usage").fetchall()}
    dims = [_dimension_sql(d, columns) for d in by]
    select_dims = ", ".join(dims) + ", " if dims else ""
    group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(dims)))}" if dims else ""
    positions = ", ".join(f"{i + 1} NULLS LAST" for i in range(len(dims)))
    if any(d in TIME_DIMENSIONS for d in by):
        order = f"ORDER BY {positions}"
    else:  # biggest first; ties broken by the dimension values, so the order never varies between runs
        order = "ORDER BY cost_usd DESC NULLS LAST, requests DESC" + (f", {positions}" if dims else "")
    where, params = date_params(since, until)
    sql = f"""
        SELECT {select_dims}
          count(*) AS requests,
          sum(input_tokens) AS input_tokens,
          sum(cached_input_tokens) AS cached_input_tokens,
          sum(output_tokens) AS output_tokens,
          sum(reasoning_tokens) AS reasoning_tokens,
          sum(cost_usd) AS cost_usd,
          round(coalesce(sum(CASE WHEN token_source <> 'reported' THEN coalesce(input_tokens, 0) + coalesce(output_tokens, 0) END)
                / nullif(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0), 0), 4) AS estimated_share
        FROM usage WHERE {where}
        {group} {order} {f'LIMIT {int(limit)}' if limit else ''}
    """
    return con.sql(sql, params=params).to_arrow_table()


@dataclass
class Coverage:
    dimension: str
    calls_share: float
    tokens_share: float
    cost_share: float
    top_unmatched: list[tuple[str, int]]


_USUAL_FIELD = {"key_name": "api_key_id", "feature": "route", "end_user": "user", "team": "key_alias"}


def _hint_field(rules: list[CompiledRule], dim: str) -> str:
    """The field whose unmatched values say what a dimension's rules miss: the one its rules test or copy into
    their values most (ties: the first written); a key fingerprint is shown as the key's display id. Rules that
    name no field: the usual one for the dimension."""
    used: Counter[str] = Counter()

    def walk(c: Condition) -> None:
        if isinstance(c, Leaf):
            used["api_key_id" if c.field == "api_key_fp" else c.field] += 1
        else:
            for part in c.parts:
                walk(part)

    for rule in rules:
        if rule.condition is not None:
            walk(rule.condition)
        for kind, name in rule.template:
            if kind == "field":
                used[name] += 1  # `value: "{user}"`: the field the value comes from
    return used.most_common(1)[0][0] if used else _USUAL_FIELD.get(dim, "route")


def rules_coverage(root: WarehouseRef, ruleset: RuleSet, engine_apply: Any) -> list[Coverage]:
    """Share of calls, tokens and cost each dimension leaves at its default, with the top unmatched values."""
    con = connect(root)
    calls = con.sql("SELECT * FROM calls").to_arrow_table()
    attributed = engine_apply(calls)
    con.register("tt_cov", attributed)
    out = []
    for dim in ruleset.dimension_names():
        row = con.execute(f"""
            SELECT coalesce(avg(CASE WHEN {dim}_rule = '{DEFAULT_RULE}' THEN 1.0 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN {dim}_rule = '{DEFAULT_RULE}'
                                     THEN coalesce(input_tokens,0)+coalesce(output_tokens,0) END)
                     / nullif(sum(coalesce(input_tokens,0)+coalesce(output_tokens,0)), 0), 0),
                   coalesce(sum(CASE WHEN {dim}_rule = '{DEFAULT_RULE}' THEN cost_usd END) / nullif(sum(cost_usd), 0), 0)
            FROM tt_cov
        """).fetchall()[0]
        assert row is not None
        hint_col = _hint_field(ruleset.dimensions[dim], dim)
        top = con.sql(f"""
            SELECT coalesce(CAST({field_sql(hint_col)} AS VARCHAR), '(null)') AS v, count(*) AS n FROM tt_cov
            WHERE {dim}_rule = '{DEFAULT_RULE}' GROUP BY 1 ORDER BY 2 DESC LIMIT 5
        """).fetchall()
        out.append(Coverage(dim, float(row[0]), float(row[1]), float(row[2]), [(f"{hint_col}={v}", n) for v, n in top]))
    return out


def explain_call(root: WarehouseRef, call_id: str, ruleset: RuleSet, engine_apply: Any) -> dict[str, Any]:
    con = connect(root)
    calls = con.sql("SELECT * FROM calls WHERE call_id = ?", params=[call_id]).to_arrow_table()
    if calls is None or calls.num_rows == 0:
        raise ReportError(f"no call with call_id {call_id!r} in the warehouse")
    row = engine_apply(calls).to_pylist()[0]
    dims = {}
    for dim, rules in ruleset.dimensions.items():
        rid = row[f"{dim}_rule"]
        rule = next((r for r in rules if r.id == rid), None)
        dims[dim] = {
            "value": row[dim],
            "rule": rid,
            "rule_line": rule.line if rule else None,
            "why": "first rule whose condition matched" if rule else "no rule matched: default value",
        }
    fields = {k: row[k] for k in ("ts", "model", "api_key_id", "user", "route", "client_ip", "endpoint",
                                  "input_tokens", "output_tokens", "token_source", "cost_usd", "price_source")}
    return {"call_id": call_id, "dimensions": dims, "call": fields, "ruleset_hash": ruleset.hash}
