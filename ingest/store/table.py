"""One Delta table: cached snapshot, application-transaction versions, retried commits.

Every write goes through here. A commit is made against the snapshot its caller checked
(so a concurrent commit carrying the same application id is a conflict, not a duplicate),
and conflicts are handed back to the caller, which re-checks and retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa

from ..errors import ConflictError, WarehouseError, WarehouseWriteError
from .location import Location

if TYPE_CHECKING:  # delta-rs's table and writer load on first use: `sql "select 1"` needs neither
    from deltalake import DeltaTable

T = TypeVar("T")
MAX_ATTEMPTS = 12


def open_delta(uri: str, storage_options: dict[str, str] | None) -> DeltaTable:
    """A Delta table; `TableNotFoundError` if there is none. A log that exists but cannot be read is a
    clear `WarehouseError`, never taken for a missing (empty) table and never a traceback."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    try:
        return DeltaTable(uri, storage_options=storage_options or None)
    except TableNotFoundError:
        raise
    except DeltaError as exc:
        raise WarehouseError(f"{uri}: the table's Delta log cannot be read: {_reason(exc)}") from None


class Table:
    def __init__(self, loc: Location, name: str, partition_by: list[str] | None = None) -> None:
        self.loc = loc
        self.name = name
        self.uri = loc.table_uri(name)
        self.partition_by = partition_by
        self._dt: DeltaTable | None = None

    # -- reading --------------------------------------------------------------------------
    def snapshot(self, refresh: bool = True) -> DeltaTable | None:
        """The latest snapshot (None if the table does not exist yet)."""
        if self._dt is None:
            from deltalake.exceptions import TableNotFoundError

            try:
                self._dt = open_delta(self.uri, self.loc.storage_options)
            except TableNotFoundError:
                return None
        elif refresh:
            self._dt.update_incremental()
        return self._dt

    def snapshot_or_create(self, empty: pa.Table) -> DeltaTable:
        """The latest snapshot, creating the table (with `empty`'s schema, no rows) if it does not exist
        yet: a commit must be made against the snapshot its caller checked, also the table's first one,
        or two writers racing on a new table would both append. A lost creation race is a conflict."""
        dt = self.snapshot(refresh=True)
        if dt is None:
            self._write(empty, "append", {}, None)
            dt = self.snapshot(refresh=True)
            assert dt is not None
        return dt

    def exists(self) -> bool:
        return self.snapshot(refresh=False) is not None

    def txn_version(self, app_id: str, refresh: bool = False) -> int | None:
        dt = self.snapshot(refresh=refresh)
        return dt.transaction_version(app_id) if dt is not None else None

    def read(self, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
        """Rows of the latest snapshot (an empty table if it does not exist yet)."""
        dt = self.snapshot()
        return scan(dt, columns, where) if dt is not None else pa.table({})

    # -- writing --------------------------------------------------------------------------
    def append(self, data: pa.Table, txns: dict[str, int], dt: DeltaTable | None = None) -> None:
        """Append `data` and set the given application-transaction versions, in one commit."""
        self._write(data, "append", txns, dt)

    def overwrite(self, data: pa.Table | pa.RecordBatchReader, predicate: str | None, txns: dict[str, int],
                  dt: DeltaTable | None) -> None:
        self._write(data, "overwrite", txns, dt, predicate)

    def _write(self, data: pa.Table, mode: str, txns: dict[str, int], dt: DeltaTable | None,
               predicate: str | None = None) -> None:
        from deltalake import write_deltalake
        from deltalake.exceptions import CommitFailedError, DeltaError
        from deltalake.transaction import CommitProperties, Transaction

        props = CommitProperties(
            app_transactions=[Transaction(app_id, version) for app_id, version in txns.items()] or None,
            max_commit_retries=25,
        )
        target: DeltaTable | str = dt if dt is not None else self.uri
        try:
            write_deltalake(  # type: ignore[call-overload]
                target, data, mode=mode,
                partition_by=self.partition_by, predicate=predicate, schema_mode="merge",
                storage_options=(self.loc.storage_options or None) if dt is None else None,
                commit_properties=props,
            )
        except CommitFailedError:
            raise
        except OSError as exc:
            raise WarehouseWriteError(
                f"{exc.strerror or exc} while writing {self.uri}; nothing partial was committed. "
                f"Fix the cause and run the command again: it resumes where it stopped."
            ) from exc
        except DeltaError as exc:
            raise WarehouseWriteError(
                f"{_reason(exc)} while writing {self.uri}; nothing partial was committed. "
                f"Fix the cause (space, quota, permissions, credentials) and run the command again: "
                f"it resumes where it stopped."
            ) from exc
        self._dt = None  # the next read loads the new version


def literal(value: object) -> str:
    """A SQL literal for our own values (source ids, offsets, days): never a user's text."""
    import datetime as _dt

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, _dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def scan(dt: DeltaTable, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
    """Read a snapshot with delta-rs's own engine. (Reading through `to_pyarrow_dataset()` routes file
    access through a Python filesystem handler; after a write in the same process that made the
    interpreter abort at exit, "terminate called without an active exception".)"""
    from deltalake import QueryBuilder

    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns) if columns else "*"
    sql = f"SELECT {cols} FROM t" + (f" WHERE {where}" if where else "")
    table = pa.table(QueryBuilder().register("t", dt).execute(sql).read_all())
    return table.cast(pa.schema([_plain(f) for f in table.schema]))


def _plain(f: pa.Field) -> pa.Field:
    """The engine answers with view types (string_view); the rest of the code and the tables use plain ones."""
    if f.type == pa.string_view():
        return f.with_type(pa.string())
    if f.type == pa.binary_view():
        return f.with_type(pa.binary())
    return f


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a delta-rs error (e.g. 'File too large (os error 27)')."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for marker in ("error: ", "Error: "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text[:300]


def retry_on_conflict(attempt: Callable[[], T], what: str) -> T:
    """Run `attempt` until it commits; it re-reads and re-checks its preconditions each time."""
    from deltalake.exceptions import CommitFailedError

    delay = 0.05
    for i in range(MAX_ATTEMPTS):
        try:
            return attempt()
        except CommitFailedError:
            if i == MAX_ATTEMPTS - 1:
                break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise ConflictError(f"{what}: other writers kept committing conflicting changes; run the command again")
