"""Deriving `usage` from committed `calls`: after each commit, and repairing after a crash."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ingest.store import CommitResult, Store

from .engine import Engine


def attribute_committed(store: Store, engine: Engine, committed: CommitResult, con: Any = None) -> int:
    """Derive `usage` rows for what was just committed to `calls`, and commit them once."""
    if not committed.chunks:
        return 0
    ranges = {c.source_id: (c.start, c.end) for c in committed.chunks}
    if committed.calls is None or committed.calls.num_rows == 0:
        return store.commit_usage(ranges, _empty_usage(store, engine, con))
    usage = engine.apply(committed.calls.drop_columns(["date"]), con)
    return store.commit_usage(ranges, usage)


def _empty_usage(store: Store, engine: Engine, con: Any) -> pa.Table:
    dt = store.usage.snapshot(refresh=False)
    if dt is not None:
        return pa.schema(dt.schema().to_arrow()).empty_table()
    calls_dt = store.calls.snapshot(refresh=False)
    assert calls_dt is not None
    empty_calls = pa.schema(calls_dt.schema().to_arrow()).empty_table()
    return engine.apply(empty_calls.drop_columns(["date"]), con)


def repair_usage(store: Store, engine: Engine) -> int:
    """After a crash between a `calls` commit and its `usage` commit: attribute the missing range.

    Rows already present (e.g. re-attributed in between) are recognised and not added again.
    """
    lag = store.usage_lag()
    if not lag:
        return 0
    calls = store.calls_since(lag)
    ranges = {sid: (uv, cv) for sid, uv, cv in lag}
    if calls.num_rows == 0:
        return store.commit_usage(ranges, _empty_usage(store, engine, None))
    usage = engine.apply(calls.drop_columns(["date"]))
    return store.commit_usage(ranges, usage)
