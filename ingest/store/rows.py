"""What a commit carries: one source's range of rows (`ChunkRows`), what a commit took (`CommitResult`),
and the two row helpers commits use (the `date` partition column, rows past an offset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from ..sources import FileIdentity


@dataclass
class ChunkRows:
    """What one source contributes to a commit: its range, its rows, and its identity."""

    source_id: str
    ident: FileIdentity
    path: str
    start: int
    end: int
    tail_hash: str | None
    calls: pa.Table | None = None
    quarantine: pa.Table | None = None
    format: str | None = None  # the format spec it was read with (remembered for later runs)


@dataclass
class CommitResult:
    chunks: list[ChunkRows] = field(default_factory=list)  # what was committed (rows filtered to what was new)
    calls: pa.Table | None = None  # the committed calls rows, with source_id and date


def with_date(table: pa.Table, fixed: str | None = None) -> pa.Table:
    """Add the partition column `date` (from `ts`, or the fixed quarantine date)."""
    import pyarrow.compute as pc  # not on the read path: `sql` starts without it

    if "date" in table.column_names:
        return table
    if fixed is not None:
        dates = pa.array([datetime.fromisoformat(fixed).date()] * table.num_rows, pa.date32())
    else:
        dates = pc.cast(pc.cast(table["ts"], pa.timestamp("us", tz="UTC")), pa.date32())
    return table.append_column("date", dates)


def filter_from(table: pa.Table | None, offset: int) -> pa.Table | None:
    """The rows at or past `offset` (what a commit adds beyond the source's committed version)."""
    import pyarrow.compute as pc  # not on the read path: `sql` starts without it

    if table is None or offset <= 0:
        return table
    return table.filter(pc.greater_equal(table["source_offset"], offset))
