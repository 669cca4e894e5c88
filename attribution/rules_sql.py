"""`rules sql --dialect …`: the compiled rules and prices as one SQL view over the `calls` table.

For teams whose usage outgrew one machine: the same first-match-wins attribution and the same
cost formula as `usage`, run inside Spark/Databricks, Trino, BigQuery or Snowflake. The SQL is
written once in DuckDB's dialect and transpiled with sqlglot; what does not transpile by itself
is rewritten first: globs become anchored regexes, named regex groups become plain groups (the
capture index is positional anyway), CIDR matches become IPv4 integer ranges, and map lookups
become `try_element_at` (Spark) / `element_at` (Trino) so a missing metadata key is NULL, not an
error. Prices are inlined as a VALUES table of date ranges over the (model, tier, batch) keys the
warehouse has seen; the last known price stays in force for later days.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp

from ingest.errors import ConfigError
from ingest.schema import CALL_SCHEMA

from .engine import DEFAULT_RULE, DEFAULT_VALUE, _Compiler, field_sql, sql_str
from .pricing import COST_COLUMNS, Pricer, cost_select, regional_sql
from .query import WarehouseRef, connect
from .rules import Leaf, RuleSet

DIALECTS = ("duckdb", "spark", "trino", "bigquery", "snowflake")
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")
def glob_regex(pattern: str) -> str:
    """DuckDB GLOB (`*`, `?`, `[...]`, `[!...]`) as an anchored regex."""
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            body = pattern[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + "$"


def portable_regex(pattern: str) -> str:
    return _NAMED_GROUP.sub("(", pattern)


class PortableCompiler(_Compiler):
    """The engine's compiler, minus what only DuckDB (or a Python UDF) can run."""

    def __init__(self, rule_id: str = "") -> None:
        super().__init__()
        self.rule_id = rule_id

    def leaf(self, c: Leaf) -> str:
        text = f"CAST({field_sql(c.field)} AS VARCHAR)"
        if c.op == "glob":
            return f"regexp_matches({text}, {sql_str(glob_regex(c.value))})"
        if c.op == "cidr":
            return "(" + " OR ".join(self._cidr(text, n) for n in c.value) + ")"
        return super().leaf(c)

    def _cidr(self, text: str, network: str) -> str:
        net = ipaddress.ip_network(network)
        if net.version != 4:
            raise ConfigError(f"rule {self.rule_id}: IPv6 network {network} cannot be matched in portable SQL yet; "
                              f"attribute those calls with another condition, or keep using tokentrail's own usage")
        octets = [f"TRY_CAST(split_part({text}, '.', {k}) AS BIGINT)" for k in range(1, 5)]
        number = f"(({octets[0]} * 16777216) + ({octets[1]} * 65536) + ({octets[2]} * 256) + {octets[3]})"
        lo, hi = int(net.network_address), int(net.broadcast_address)
        return f"(regexp_matches({text}, '^[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}$') AND {number} BETWEEN {lo} AND {hi})"

    def regex(self, pattern: str) -> str:
        return portable_regex(pattern)


def _layers(ruleset: RuleSet) -> list[str]:
    layers = []
    for dim, rules in ruleset.dimensions.items():
        default = sql_str(ruleset.defaults.get(dim, DEFAULT_VALUE))
        if not rules:
            layers.append(f"{default} AS {dim}, {sql_str(DEFAULT_RULE)} AS {dim}_rule")
            continue
        values, ids = [], []
        for r in rules:
            c = PortableCompiler(r.id)
            tmpl = c.template(r)
            cond = f"{c.cond(r.condition)} AND nullif({tmpl}, '') IS NOT NULL"
            values.append(f"WHEN {cond} THEN {tmpl}")
            ids.append(f"WHEN {cond} THEN {sql_str(r.id)}")
        layers.append(f"coalesce(CASE {' '.join(values)} END, {default}) AS {dim}, "
                      f"coalesce(CASE {' '.join(ids)} END, {sql_str(DEFAULT_RULE)}) AS {dim}_rule")
    return layers


def rate_ranges(pricer: Pricer, keys: Sequence[tuple[Any, ...]]) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    """(model, day, tier, batch, regional) keys -> (columns with SQL types, rows): runs of days with
    equal per-token rates become one row valid over [r_from, r_until); the last run stays in force."""
    full = [(k[0], k[1], k[2], bool(k[3]), bool(k[4]) if len(k) > 4 else False) for k in keys]
    table = pricer.rates_table(sorted(full, key=lambda k: tuple(str(x) for x in k)))
    names = table.column_names
    rate_names = names[5:]  # after r_model, r_day, r_tier, r_batch, r_regional
    sql_types = {"price_source": "VARCHAR", "price_model": "VARCHAR", "tier_start": "BIGINT"}
    columns = [("r_model", "VARCHAR"), ("r_from", "DATE"), ("r_until", "DATE"), ("r_tier", "VARCHAR"),
               ("r_batch", "BOOLEAN"), ("r_regional", "BOOLEAN")]
    columns += [(n, sql_types.get(n, "DECIMAL(38,18)")) for n in rate_names]
    groups: dict[tuple[Any, ...], list[tuple[date, tuple[Any, ...]]]] = {}
    for row in table.to_pylist():
        key = (row["r_model"], row["r_tier"], row["r_batch"], row["r_regional"])
        groups.setdefault(key, []).append((row["r_day"], tuple(row[n] for n in rate_names)))
    rows = []
    for (model, tier, batch, regional), days in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        runs: list[tuple[date, tuple[Any, ...]]] = []
        for day, rates in sorted(days, key=lambda d: d[0]):
            if not runs or runs[-1][1] != rates:
                runs.append((day, rates))
        for i, (start, rates) in enumerate(runs):
            until = runs[i + 1][0] if i + 1 < len(runs) else None
            rows.append((model, start if i else None, until, tier, batch, regional, *rates))
    return columns, rows


def _literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, Decimal):
        return f"CAST('{v}' AS DECIMAL(38,18))"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    return sql_str(str(v))


def usage_select(ruleset: RuleSet, rates: tuple[list[tuple[str, str]], list[tuple[Any, ...]]],
                 source: str = "calls") -> str:
    """The view's SELECT in DuckDB's dialect (the source of every transpiled dialect)."""
    calls_cols = [f.name for f in CALL_SCHEMA]
    cols = ", ".join(field_sql(c) for c in calls_cols)
    rate_cols, rate_rows = rates
    if not rate_rows:  # a VALUES table cannot be empty: one row that matches nothing (r_batch NULL)
        rate_rows = [tuple([""] + [None] * (len(rate_cols) - 1))]
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rate_rows)
    typed = ", ".join(f"CAST(v.c{i} AS {t}) AS {n}" for i, (n, t) in enumerate(rate_cols))
    ctes = [
        f"dedup AS (SELECT {cols}, row_number() OVER (PARTITION BY call_id ORDER BY CASE WHEN token_source = 'reported' "
        f"THEN 0 ELSE 1 END, ingested_at, source_file, source_offset) AS tt_rn FROM {source})",
        f"a0 AS (SELECT {cols} FROM dedup WHERE tt_rn = 1)",
    ]
    layers = _layers(ruleset)
    for i, layer in enumerate(layers, start=1):
        ctes.append(f"a{i} AS (SELECT *, {layer} FROM a{i - 1})")
    ctes.append(f"rates AS (SELECT {typed} FROM (VALUES {values}) AS v({', '.join(f'c{i}' for i in range(len(rate_cols)))}))")
    priced = cost_select(f"a{len(layers)}", "rates", calls_cols, ranged=True).strip()
    assert priced.startswith("WITH ") and COST_COLUMNS[-1] == "cost_usd"
    # cost_select's own CTEs join this list (one WITH: every dialect accepts it), and the ruleset hash is added
    head, tail = priced[len("WITH "):].rsplit("AS cost_usd", 1)
    return f"WITH {', '.join(ctes)}, {head}AS cost_usd, {sql_str(ruleset.hash)} AS ruleset_hash{tail}"


def _map_lookups(dialect: str, node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.Column) and node.this.name == "metadata":
        fn = {"spark": "TRY_ELEMENT_AT", "trino": "ELEMENT_AT"}.get(dialect)
        if fn:
            return exp.Anonymous(this=fn, expressions=[node.this, *node.expressions])
    return node


def transpile(sql: str, dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ConfigError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    if dialect == "duckdb":
        return sql
    tree = sqlglot.parse_one(sql, read="duckdb").transform(lambda n: _map_lookups(dialect, n))
    return tree.sql(dialect=dialect)


def warehouse_rate_keys(root: WarehouseRef) -> list[tuple[Any, ...]]:
    con = connect(root)
    try:
        return con.sql(f"SELECT DISTINCT model, CAST(ts AS DATE), service_tier, coalesce(batch, false), "
                       f"{regional_sql('metadata')} FROM calls ORDER BY ALL").fetchall()
    finally:
        con.close()


def view_select(root: WarehouseRef, ruleset: RuleSet, pricer: Pricer, dialect: str, source: str = "calls") -> str:
    return transpile(usage_select(ruleset, rate_ranges(pricer, warehouse_rate_keys(root)), source), dialect)


def create_view_sql(root: WarehouseRef, ruleset: RuleSet, pricer: Pricer, dialect: str, view: str = "tokentrail_usage",
                    source: str = "calls") -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", view):
        raise ConfigError(f"--view {view!r}: use a plain (optionally dotted) SQL identifier")
    body = view_select(root, ruleset, pricer, dialect, source)
    return (f"-- tokentrail rules sql --dialect {dialect}: ruleset {ruleset.hash}; prices for the models and days seen\n"
            f"CREATE OR REPLACE VIEW {view} AS\n{body};")
