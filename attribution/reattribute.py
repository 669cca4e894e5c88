"""Rebuild `usage` from `calls` after rules or prices change: one atomic Delta commit.

The whole date range is recomputed day by day (streamed, so memory holds one day) and written
as one predicate overwrite: readers see the old numbers or the new ones, never a mix, and a
crash leaves the old ones. It rewrites only the rows `usage` already accounts for (below each
source's usage version; rows past it are in flight and added by their own usage commit or the
next repair) and carries those versions unchanged, so a watcher whose `usage` commit races with
it conflicts, re-checks by content and adds only what is missing.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable

from ingest.store import Store, with_date
from ingest.store.table import literal, retry_on_conflict, scan

from .derive import repair_usage
from .engine import Engine


@dataclass
class ReattributeResult:
    partitions: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    moves: list[dict[str, Any]] = field(default_factory=list)  # by dimension: what changes
    cost_before: float = 0.0
    cost_after: float = 0.0
    ruleset_hash: str = ""
    version: int | None = None  # the usage table version written


def _days(dt: DeltaTable, since: date | None, until: date | None) -> list[str]:
    days = set()
    for part in dt.partitions():
        d = part.get("date")
        if d is None or (since and d < since.isoformat()) or (until and d > until.isoformat()):
            continue
        days.add(d)
    return sorted(days)


def _read_day(dt: DeltaTable, day: str) -> pa.Table:
    t = scan(dt, None, f"date = {literal(date.fromisoformat(day))}")
    return t.drop_columns(["date"]) if "date" in t.column_names else t


def _predicate(days: list[str], since: date | None, until: date | None) -> str | None:
    if since is None and until is None:
        return None  # the whole table
    lo = (since.isoformat() if since else days[0]) if (since or days) else None
    hi = (until.isoformat() if until else days[-1]) if (until or days) else None
    parts = []
    if lo:
        parts.append(f"date >= '{date.fromisoformat(lo).isoformat()}'")  # validated dates only
    if hi:
        parts.append(f"date <= '{date.fromisoformat(hi).isoformat()}'")
    return " AND ".join(parts)


def reattribute(
    store: Store,
    engine: Engine,
    since: date | None = None,
    until: date | None = None,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ReattributeResult:
    t0 = time.perf_counter()
    result = ReattributeResult(ruleset_hash=engine.ruleset.hash)
    con = engine.connect()
    if not dry_run:
        repair_usage(store, engine)

    def attempt() -> ReattributeResult:
        with contextlib.ExitStack() as stack:
            return _attempt(stack)

    def _attempt(stack: contextlib.ExitStack) -> ReattributeResult:
        res = ReattributeResult(ruleset_hash=engine.ruleset.hash)
        dt_c = store.calls.snapshot(refresh=True)
        dt_u = store.usage.snapshot(refresh=True)
        if dt_c is None:
            return res
        days = _days(dt_c, since, until)
        res.partitions = days
        if dry_run:
            for day in days:
                new = engine.apply(_read_day(dt_c, day), con)
                res.rows += new.num_rows
                res.moves.extend(_moves(dt_u, day, new, engine, con))
                if progress:
                    progress(day, new.num_rows)
            res.moves = _aggregate_moves(res.moves)
            return res
        if not days:
            return res
        # Usage claims each source up to its version: rows at or past it are in flight (their writer's
        # usage commit, or the next repair, adds them, whatever their day). So the overwrite holds only
        # claimed rows and carries the versions unchanged: a racing usage commit for the same source
        # conflicts with it (same application id) and re-checks; none is told "already done" for rows
        # this overwrite did not write (with --since/--until it rewrites only some days).
        claimed = {}
        for sid in store.source_index(refresh=True).by_id:
            cv = dt_c.transaction_version(sid) or 0
            uv = (dt_u.transaction_version(sid) if dt_u is not None else None) or 0
            if max(cv, uv):
                claimed[sid] = uv
        # Days are read in groups of about BATCH_ROWS rows and attributed once per group (memory holds
        # one group), spooled locally, then committed as one stream. delta-rs cannot be called back
        # while it consumes the stream, so the stream only reads the spool.
        spool = tempfile.TemporaryDirectory(prefix="tokentrail-reattribute-")
        stack.callback(spool.cleanup)
        schema: pa.Schema | None = None
        files: list[str] = []
        first: pa.Table | None = None  # one group (the common case) is committed from memory, unspooled
        for group_days, calls in _day_groups(dt_c, days, claimed):
            table = with_date(engine.apply(calls, con))
            schema = schema or table.schema
            res.rows += table.num_rows
            if first is None and not files:
                first = table
            else:
                for t in ([first] if first is not None else []) + [table]:
                    path = f"{spool.name}/{len(files)}.parquet"
                    pq.write_table(t.cast(schema), path)
                    files.append(path)
                first = None
            if progress:
                for day, n in group_days:
                    progress(day, n)
        assert schema is not None
        data: pa.Table | pa.RecordBatchReader = (
            first if first is not None else ds.dataset(files, schema=schema, format="parquet").scanner().to_reader())
        store.usage.overwrite(data, _predicate(days, since, until), claimed, dt_u)
        written = store.usage.snapshot(refresh=True)
        assert written is not None  # just committed
        res.version = written.version()
        return res

    result = retry_on_conflict(attempt, f"re-attributing {store.usage.uri}")
    result.seconds = time.perf_counter() - t0
    return result


BATCH_ROWS = 200_000  # rows attributed in one pass: fewer engine passes, memory still bounded


def _day_groups(dt: DeltaTable, days: list[str],
                claimed: dict[str, int]) -> Iterator[tuple[list[tuple[str, int]], pa.Table]]:
    """Consecutive days' claimed calls, grouped until a group holds about BATCH_ROWS rows; with each
    group, its (day, rows) for progress."""
    group: list[tuple[str, int]] = []
    tables: list[pa.Table] = []
    rows = 0
    for day in days:
        t = _claimed_rows(_read_day(dt, day), claimed)
        group.append((day, t.num_rows))
        tables.append(t)
        rows += t.num_rows
        if rows >= BATCH_ROWS:
            yield group, pa.concat_tables(tables, promote_options="default")
            group, tables, rows = [], [], 0
    if group:
        yield group, pa.concat_tables(tables, promote_options="default")


def _claimed_rows(calls: pa.Table, claimed: dict[str, int]) -> pa.Table:
    """The calls rows below their source's `usage` version."""
    if calls.num_rows == 0:
        return calls
    idx = pc.index_in(calls["source_id"], value_set=pa.array(list(claimed), pa.string()))
    limit = pc.take(pa.array(list(claimed.values()), pa.int64()), idx)
    return calls.filter(pc.fill_null(pc.less(calls["source_offset"], limit), False))


def _moves(dt_u: DeltaTable | None, day: str, new: pa.Table, engine: Engine,
           con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per dimension: calls, tokens and cost moving from each old value to each new value."""
    if dt_u is None:
        return []
    old = _read_day(dt_u, day)
    if old.num_rows == 0:
        return []
    con.register("tt_old", old)
    con.register("tt_new", new)
    out: list[dict[str, Any]] = []
    old_cols = set(old.column_names)
    for dim in [*engine.ruleset.dimension_names(), "cost_usd"]:
        if dim == "cost_usd":
            rows = con.execute("""
                SELECT 'cost_usd' AS dimension, sum(o.cost_usd) AS old_value,
                       sum(n.cost_usd) AS new_value, count(*) AS calls,
                       sum(coalesce(n.input_tokens, 0) + coalesce(n.output_tokens, 0)) AS tokens,
                       sum(n.cost_usd) - sum(o.cost_usd) AS cost_usd
                FROM tt_new n JOIN tt_old o USING (call_id, source_offset)
                WHERE o.cost_usd IS DISTINCT FROM n.cost_usd
            """).fetchall()
            # prices changed: old and new totals of the calls whose cost moves
            rows = [("cost_usd", r[1], r[2], r[3], r[4], r[5]) for r in rows if r[3]]
        else:
            quoted = '"' + dim.replace('"', '""') + '"'
            old_expr = f"o.{quoted}" if dim in old_cols else "'(none)'"
            rows = con.execute(f"""
                SELECT ? AS dimension, {old_expr} AS old_value, n.{quoted} AS new_value, count(*) AS calls,
                       sum(coalesce(n.input_tokens, 0) + coalesce(n.output_tokens, 0)) AS tokens,
                       sum(n.cost_usd) AS cost_usd
                FROM tt_new n LEFT JOIN tt_old o USING (call_id, source_offset)
                WHERE {old_expr} IS DISTINCT FROM n.{quoted}
                GROUP BY ALL
            """, [dim]).fetchall()
        out += [dict(zip(("dimension", "old_value", "new_value", "calls", "tokens", "cost_usd"), r, strict=True))
                for r in rows]
    con.unregister("tt_old")
    con.unregister("tt_new")
    return out


def _aggregate_moves(moves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in moves:
        if m["dimension"] == "cost_usd":  # prices changed: old and new totals of the calls whose cost moves
            a = acc.setdefault(("cost_usd", "", ""), {"dimension": "cost_usd", "old_value": 0, "new_value": 0,
                                                      "calls": 0, "tokens": 0, "cost_usd": 0})
            a["old_value"] += m["old_value"] or 0
            a["new_value"] += m["new_value"] or 0
            a["calls"] += m["calls"]
            a["tokens"] += m["tokens"] or 0
            a["cost_usd"] += m["cost_usd"] or 0
            continue
        key = (m["dimension"], str(m["old_value"]), str(m["new_value"]))
        a = acc.setdefault(key, {"dimension": key[0], "old_value": key[1], "new_value": key[2],
                                 "calls": 0, "tokens": 0, "cost_usd": 0})
        a["calls"] += m["calls"]
        a["tokens"] += m["tokens"] or 0
        a["cost_usd"] += m["cost_usd"] or 0
    out = sorted(acc.values(), key=lambda a: (a["dimension"], -a["calls"], str(a["old_value"]), str(a["new_value"])))
    for a in out:
        if a["dimension"] == "cost_usd":
            a["old_value"], a["new_value"] = str(a["old_value"]), str(a["new_value"])
    return out
