"""The library API: one function per command. The CLI and the tests call these.

Composition (ARCHITECTURE.md): ingest reads logs into chunks and commits `calls` (and
`quarantine`) through `ingest.store`; attribution then derives `usage` from the committed calls
with rules and prices and commits it with its own per-source versions. Ingest never calls back
into attribution: it yields what it committed, and this module consumes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.pipeline import IngestOptions, IngestSummary
from ingest.run import ingest_batches
from ingest.store import CommitResult, Location, Store
from ingest.watch import Tick, Watcher, WatchOptions

from .current import build_engine
from .derive import attribute_committed, repair_usage
from .engine import Engine


@dataclass
class IngestReport:
    summary: IngestSummary
    unpriced_models: list[str] = field(default_factory=list)
    usage_rows: int = 0
    repaired_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = self.summary.as_dict()
        data["unpriced_models"] = self.unpriced_models
        data["usage_rows"] = self.usage_rows
        if self.repaired_rows:
            data["usage_repaired"] = self.repaired_rows
        return data


def open_store(warehouse: str | Path | Location | None, *, write: bool = False) -> Store:
    """A store for reading (must exist) or writing (validated, created on first use)."""
    store = Store(warehouse)
    return store.prepare_for_writing() if write else store.require()


def ingest(paths: list[str | Path], warehouse: str | Path | None = None, rules: str | Path | None = None,
           prices: str | Path | None = None, options: IngestOptions | None = None,
           progress: Callable[[int], None] | None = None) -> IngestReport:
    """Ingest files and directories; attribute and price what was committed."""
    store = open_store(warehouse, write=True)
    engine = build_engine(store, rules, prices, remember=True)
    options = options or IngestOptions(jobs=os.cpu_count() or 1)
    report = IngestReport(IngestSummary())
    report.repaired_rows = repair_usage(store, engine)
    con = engine.connect()
    for committed in ingest_batches(store, list(paths), options, report.summary, progress):
        report.usage_rows += attribute_committed(store, engine, committed, con)
    report.unpriced_models = sorted(engine.pricer.unpriced)
    return report


def make_watcher(paths: list[Path], warehouse: str | Path | None = None, rules: str | Path | None = None,
                 prices: str | Path | None = None, ingest_options: IngestOptions | None = None,
                 options: WatchOptions | None = None) -> tuple[Watcher, Engine, Store]:
    """What `watch` runs: a watcher over `paths` and the engine that attributes what it commits.
    Drive it with `run_watcher` (a `Tick` per pass); stop it with `watcher.stop.set()`."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        from ingest.errors import TokentrailError

        raise TokentrailError(f"{missing[0]}: no such file or directory (watch needs paths that exist)")
    store = open_store(warehouse, write=True)
    engine = build_engine(store, rules, prices, remember=True)
    repair_usage(store, engine)
    watcher = Watcher(store, list(paths), ingest_options or IngestOptions(), options or WatchOptions())
    return watcher, engine, store


def run_watcher(watcher: Watcher, engine: Engine, store: Store) -> Iterator[Tick]:
    con = engine.connect()
    try:
        for event in watcher.events():
            if isinstance(event, CommitResult):
                attribute_committed(store, engine, event, con)
            else:
                yield event
    finally:
        watcher.close()


def parse_as_of(value: str | None) -> int | datetime | None:
    """`--as-of`: a table version (integer, of `usage`) or an ISO timestamp."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        from ingest.errors import TokentrailError

        raise TokentrailError(f"--as-of {value!r}: expected a version number or an ISO timestamp "
                              f"such as 2025-03-01T12:00:00Z") from None
    if ts.tzinfo is None:
        from datetime import UTC

        ts = ts.replace(tzinfo=UTC)
    return ts

