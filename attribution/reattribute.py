"""Rebuild `usage/` partitions from `calls/` after rules or prices change.

Per date partition: read its calls, attribute and price them, write a new generation
directory durably, journal it, then swap the partition's symlink in one rename. A reader
sees the old partition or the new one, never a mix; a crash between partitions leaves each
partition entirely old or entirely new, and the next writer finishes a journaled swap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa

from ingest.warehouse import Warehouse

from .engine import Engine

CRASH_ENV = "TOKENTRAIL_TEST_CRASH_AFTER_PARTITIONS"  # fault injection for the crash test only


@dataclass
class ReattributeResult:
    partitions: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    moves: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would change
    ruleset_hash: str = ""


def calls_partitions(wh: Warehouse, since: date | None, until: date | None) -> list[str]:
    base = wh.table_dir("calls")
    if not base.is_dir():
        return []
    out = []
    for d in sorted(base.iterdir()):
        if not d.name.startswith("date=") or not any(d.glob("*.parquet")):
            continue
        day = d.name.removeprefix("date=")
        if since and day < since.isoformat() or until and day > until.isoformat():
            continue
        out.append(day)
    return out


def _read_calls(wh: Warehouse, day: str, con: duckdb.DuckDBPyConnection) -> pa.Table:
    glob = str(wh.table_dir("calls") / f"date={day}" / "*.parquet")
    return con.sql(f"SELECT * FROM read_parquet('{glob}', union_by_name = true)").to_arrow_table()


def reattribute(
    wh: Warehouse,
    engine: Engine,
    since: date | None = None,
    until: date | None = None,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ReattributeResult:
    """The caller holds the writer lock (unless dry_run: then nothing is written)."""
    t0 = time.perf_counter()
    result = ReattributeResult(ruleset_hash=engine.ruleset.hash)
    con = engine.connect()
    crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
    for i, day in enumerate(calls_partitions(wh, since, until), start=1):
        calls = _read_calls(wh, day, con)
        usage = engine.apply(calls, con)
        result.partitions.append(day)
        result.rows += usage.num_rows
        if dry_run:
            result.moves.extend(_moves(wh, day, usage, engine, con))
        else:
            wh.replace_usage_partition(day, usage, f"r{usage.num_rows}")
        if progress:
            progress(day, usage.num_rows)
        if crash_after and i >= crash_after:
            os._exit(137)
    result.seconds = time.perf_counter() - t0
    if dry_run:
        result.moves = _aggregate_moves(result.moves)
    return result


def _moves(wh: Warehouse, day: str, new: pa.Table, engine: Engine, con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per dimension: calls, tokens and cost moving from each old value to each new value."""
    part = wh.table_dir("usage") / f"date={day}"
    if not part.exists() or not any(part.glob("*.parquet")):
        return []
    old = con.sql(f"SELECT * FROM read_parquet('{part}/*.parquet', union_by_name = true)").to_arrow_table()
    con.register("tt_old", old)
    con.register("tt_new", new)
    out: list[dict[str, Any]] = []
    old_cols = set(old.column_names)
    for dim in engine.ruleset.dimension_names():
        old_expr = f'o."{dim}"' if dim in old_cols else "'(none)'"
        rows = con.sql(f"""
            SELECT '{dim}' AS dimension, {old_expr} AS old_value, n."{dim}" AS new_value, count(*) AS calls,
                   sum(coalesce(n.input_tokens, 0) + coalesce(n.output_tokens, 0)) AS tokens,
                   sum(n.cost_usd) AS cost_usd
            FROM tt_new n LEFT JOIN tt_old o USING (call_id)
            WHERE {old_expr} IS DISTINCT FROM n."{dim}"
            GROUP BY ALL
        """).fetchall()
        out += [dict(zip(("dimension", "old_value", "new_value", "calls", "tokens", "cost_usd"), r, strict=True)) for r in rows]
    con.unregister("tt_old")
    con.unregister("tt_new")
    return out


def _aggregate_moves(moves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in moves:
        key = (m["dimension"], str(m["old_value"]), str(m["new_value"]))
        a = acc.setdefault(key, {"dimension": key[0], "old_value": key[1], "new_value": key[2],
                                 "calls": 0, "tokens": 0, "cost_usd": 0.0})
        a["calls"] += m["calls"]
        a["tokens"] += m["tokens"] or 0
        a["cost_usd"] += m["cost_usd"] or 0.0
    return sorted(acc.values(), key=lambda a: (a["dimension"], -a["calls"]))
