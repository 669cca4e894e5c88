"""Apply a compiled ruleset and prices to a whole batch of calls, in DuckDB SQL.

Each dimension becomes one `CASE WHEN … THEN … END` (first match wins) evaluated in a
layer of its own, so later dimensions can match on earlier ones (e.g. team by key_name).
The same engine serves ingest-time attribution and `reattribute`.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from .pricing import Pricer, cost_select, regional_sql
from .rules import NUMERIC_COLUMNS, Combo, CompiledRule, Condition, Leaf, RuleSet

DEFAULT_VALUE = "unattributed"
DEFAULT_RULE = "(default)"


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return sql_str(str(value))


def field_sql(name: str) -> str:
    if name.startswith("metadata."):
        return f"metadata[{sql_str(name[len('metadata.'):])}]"
    return '"' + name.replace('"', '""') + '"'


class _Compiler:
    def __init__(self) -> None:
        self.cidr_functions: dict[tuple[str, ...], str] = {}

    def cond(self, c: Condition | None) -> str:
        if c is None:
            return "true"
        if isinstance(c, Combo):
            parts = [self.cond(p) for p in c.parts]
            if c.kind == "not":
                return f"(NOT {parts[0]})"
            joiner = " AND " if c.kind == "all" else " OR "
            return "(" + joiner.join(parts) + ")"
        return f"coalesce(({self.leaf(c)}), false)"

    def leaf(self, c: Leaf) -> str:
        f = field_sql(c.field)
        text = f"CAST({f} AS VARCHAR)"
        numeric = c.field in NUMERIC_COLUMNS
        op, v = c.op, c.value
        if op == "eq":
            if isinstance(v, bool) or (numeric and isinstance(v, int | float)):
                return f"{f} = {sql_literal(v)}"
            return f"{text} = {sql_str(str(v))}"
        if op == "in":
            if numeric and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
                return f"{f} IN ({', '.join(sql_literal(x) for x in v)})"
            return f"{text} IN ({', '.join(sql_str(str(x)) for x in v)})"
        if op == "glob":
            return f"{text} GLOB {sql_str(v)}"
        if op == "regex":
            return f"regexp_matches({text}, {sql_str(self.regex(v[0]))})"
        if op == "prefix":
            return f"starts_with({text}, {sql_str(v)})"
        if op == "suffix":
            return f"ends_with({text}, {sql_str(v)})"
        if op == "exists":
            present = f"({f} IS NOT NULL AND {text} <> '')"
            return present if v else f"NOT {present}"
        if op in ("gt", "gte", "lt", "lte"):
            sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            return f"TRY_CAST({f} AS DOUBLE) {sym} {sql_literal(v)}"
        if op == "cidr":
            fn = self.cidr_functions.setdefault(tuple(v), f"tt_cidr_{len(self.cidr_functions)}")
            return f"{fn}({text})"
        raise ValueError(f"unknown operator {op}")

    def regex(self, pattern: str) -> str:
        """A rule's RE2 pattern as the target engine needs it (DuckDB takes it as written)."""
        return pattern

    def template(self, rule: CompiledRule) -> str:
        parts = []
        for kind, val in rule.template:
            if kind == "lit":
                parts.append(sql_str(val))
            elif kind == "field":
                parts.append(f"CAST({field_sql(val)} AS VARCHAR)")
            else:
                fld, pattern, idx = rule.captures[val]
                parts.append(f"regexp_extract(CAST({field_sql(fld)} AS VARCHAR), {sql_str(self.regex(pattern))}, {idx})")
        return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def cidr_matcher(networks: Sequence[str]) -> Any:
    nets = [ipaddress.ip_network(n) for n in networks]
    memo: dict[str, bool] = {}

    def match(values: pa.Array) -> pa.Array:
        out: list[bool | None] = []
        for v in values.to_pylist():
            if v is None:
                out.append(None)
                continue
            hit = memo.get(v)
            if hit is None:
                try:
                    ip = ipaddress.ip_address(v.split("%", 1)[0].strip("[]"))
                    hit = any(ip.version == n.version and ip in n for n in nets)
                except ValueError:
                    hit = False
                if len(memo) < 100_000:
                    memo[v] = hit
            out.append(hit)
        return pa.array(out, pa.bool_())

    return match


class Engine:
    """Compiled SQL for one ruleset; `apply` attributes and prices an Arrow table of calls."""

    def __init__(self, ruleset: RuleSet, pricer: Pricer | None = None) -> None:
        self.ruleset = ruleset
        self.pricer = pricer or Pricer()
        self._c = _Compiler()
        self.layers = self._build_layers()

    def _build_layers(self) -> list[str]:
        layers = []
        for dim, rules in self.ruleset.dimensions.items():
            default = sql_str(self.ruleset.defaults.get(dim, DEFAULT_VALUE))
            if not rules:
                layers.append(f"{default} AS {dim}, {sql_str(DEFAULT_RULE)} AS {dim}_rule")
                continue
            value_cases, rule_cases = [], []
            for r in rules:
                tmpl = self._c.template(r)
                cond = f"{self._c.cond(r.condition)} AND nullif({tmpl}, '') IS NOT NULL"
                value_cases.append(f"WHEN {cond} THEN {tmpl}")
                rule_cases.append(f"WHEN {cond} THEN {sql_str(r.id)}")
            layers.append(
                f"coalesce(CASE {' '.join(value_cases)} END, {default}) AS {dim}, "
                f"coalesce(CASE {' '.join(rule_cases)} END, {sql_str(DEFAULT_RULE)}) AS {dim}_rule"
            )
        return layers

    def attribution_sql(self, source: str) -> str:
        ctes = [f"a0 AS (SELECT * FROM {source})"]
        for i, layer in enumerate(self.layers, start=1):
            ctes.append(f"a{i} AS (SELECT *, {layer} FROM a{i - 1})")
        last = f"a{len(self.layers)}"
        return f"WITH {', '.join(ctes)} SELECT *, {sql_str(self.ruleset.hash)} AS ruleset_hash FROM {last}"

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        self.register(con)
        return con

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for nets, name in self._c.cidr_functions.items():
            with contextlib.suppress(duckdb.CatalogException):  # already registered on this connection
                con.create_function(name, cidr_matcher(nets), ["VARCHAR"], "BOOLEAN", type="arrow",  # type: ignore[call-overload]
                                    null_handling="special")

    def apply(self, calls: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
        """`calls` with the attribution and cost columns added. Two statements per batch: the price
        keys (rates depend only on the calls' own columns), then attribution and cost in one query (the
        result columns are bound once per run, `_result_columns`). Each statement has a fixed cost of
        ~20 ms for this SQL; a batch used to run five (two binds, attribution, keys, cost)."""
        con = con or self.connect()
        con.register("tt_batch", _numbered(calls))
        keys = con.sql(
            "SELECT DISTINCT model, CAST(ts AS DATE), service_tier, coalesce(batch, false), "
            f"{regional_sql('metadata')} FROM tt_batch"
        ).fetchall()
        con.register("tt_rates", self.pricer.rates_table(keys))
        attributed = f"({self.attribution_sql('tt_batch')})"
        out = _with_new_columns(con, calls, cost_select(attributed, "tt_rates", calls.column_names))
        con.unregister("tt_batch")
        con.unregister("tt_rates")
        return out


ROW = "__tt_row"  # a row number carried through a query, so its new columns can be put back in order


def _numbered(table: pa.Table) -> pa.Table:
    return table.append_column(ROW, pa.array(range(table.num_rows), pa.int64()))


_COLUMNS: dict[tuple[str, pa.Schema], list[str]] = {}  # (sql, input schema) -> result columns


def _result_columns(con: duckdb.DuckDBPyConnection, schema: pa.Schema, sql: str) -> list[str]:
    """The columns `sql` returns over a table of `schema`. Binding the attribution SQL costs ~11 ms and
    every batch of a run asks the same question: it is asked once per SQL and input schema."""
    key = (sql, schema)
    names = _COLUMNS.get(key)
    if names is None:
        names = [c for c in con.sql(f"SELECT * FROM ({sql}) LIMIT 0").columns if c != ROW]
        if len(_COLUMNS) >= 64:  # bounded: a long-lived watcher sees few distinct schemas and rule sets
            _COLUMNS.clear()
        _COLUMNS[key] = names
    return names


def _with_new_columns(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str) -> pa.Table:
    """`table` plus the columns `sql` (which selects everything of the numbered `table` and more) adds.

    Only the row number and the new columns leave DuckDB (the unchanged ones would only be
    copied back): a batch's wide columns (metadata, prompts) make most of the conversion cost."""
    names = _result_columns(con, table.schema, sql)
    new = [c for c in names if c not in table.column_names]
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in new)
    added = con.sql(f"SELECT {quoted} FROM ({sql}) ORDER BY {ROW}").to_arrow_table()
    out = table
    for name in new:
        out = out.append_column(added.schema.field(name), added.column(name))
    return out.select(names)
