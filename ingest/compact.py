"""Small-file compaction of closed partitions, without breaking exactly-once.

A watcher commits a file per flush, so busy days collect many small files. Compaction merges
a closed partition (older than yesterday) into one file:
  * `calls/` and `quarantine/`: the merged file is written to `_tmp/`, the replacement is
    journaled (new name + old names), the merged file is renamed in, then the old files are
    removed. A crash in between is finished by `recover()` (old files deleted if the merged
    file is in place, else the journal entry dropped). Readers of the `calls` view never see a
    call twice even in that instant: the view folds rows by call_id.
  * `usage/`: a new generation is swapped in atomically (`Warehouse.replace_usage_partition`).
The caller holds the writer lock.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from .warehouse import Warehouse, fsync_dir, write_parquet_durably

MIN_FILES = 4

_JOURNAL = """CREATE TABLE IF NOT EXISTS compact_journal (
    partition_dir TEXT PRIMARY KEY, new_file TEXT NOT NULL, tmp_file TEXT NOT NULL, old_files TEXT NOT NULL)"""


@dataclass
class CompactResult:
    partitions: list[str] = field(default_factory=list)
    files_before: int = 0
    files_after: int = 0


def _read(files: list[Path]) -> duckdb.DuckDBPyRelation:
    listing = ", ".join(f"'{f}'" for f in files)
    rel = duckdb.sql(f"SELECT * FROM read_parquet([{listing}], union_by_name = true)")
    assert rel is not None
    return rel


def recover_compactions(wh: Warehouse) -> int:
    db = wh.checkpoints.db
    db.execute(_JOURNAL)
    n = 0
    for part, new_file, tmp_file, old in db.execute("SELECT * FROM compact_journal").fetchall():
        if Path(new_file).exists():
            for f in json.loads(old):
                Path(f).unlink(missing_ok=True)
            fsync_dir(Path(part))
        else:
            Path(tmp_file).unlink(missing_ok=True)
        db.execute("DELETE FROM compact_journal WHERE partition_dir=?", (part,))
        n += 1
    return n


def compact_partition(wh: Warehouse, table: str, day: str, min_files: int = MIN_FILES) -> tuple[int, int]:
    """Merge one partition's files; returns (files before, files after)."""
    part = wh.table_dir(table) / f"date={day}"
    files = sorted(part.glob("*.parquet"))
    if len(files) < min_files:
        return len(files), len(files)
    merged = _read(files).to_arrow_table()
    if table == "usage":
        wh.replace_usage_partition(day, merged, "compact")
        return len(files), 1
    digest = hashlib.sha256("\n".join(f.name for f in files).encode()).hexdigest()[:16]
    name = f"compact-{digest}.parquet"
    tmp = wh.tmp_dir / f"{table}-{day}-{name}"
    write_parquet_durably(merged, tmp)
    db = wh.checkpoints.db
    db.execute(_JOURNAL)
    db.execute("INSERT OR REPLACE INTO compact_journal VALUES (?,?,?,?)",
               (str(part), str(part / name), str(tmp), json.dumps([str(f) for f in files])))
    os.replace(tmp, part / name)
    fsync_dir(part)
    for f in files:
        f.unlink(missing_ok=True)
    fsync_dir(part)
    db.execute("DELETE FROM compact_journal WHERE partition_dir=?", (str(part),))
    return len(files), 1


def compact_closed_partitions(wh: Warehouse, before: date | None = None, min_files: int = MIN_FILES,
                              tables: tuple[str, ...] = ("calls", "usage", "quarantine")) -> CompactResult:
    """Compact every partition dated before `before` (default: yesterday, UTC) that has many files."""
    cutoff = (before or (datetime.now(UTC).date() - timedelta(days=1))).isoformat()
    result = CompactResult()
    recover_compactions(wh)
    for table in tables:
        base = wh.table_dir(table)
        if not base.is_dir():
            continue
        for part in sorted(base.glob("date=*")):
            day = part.name.removeprefix("date=")
            if day >= cutoff:
                continue
            before_n, after_n = compact_partition(wh, table, day, min_files)
            if after_n < before_n:
                result.partitions.append(f"{table}/{part.name}")
                result.files_before += before_n
                result.files_after += after_n
    return result
