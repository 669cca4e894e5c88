"""The warehouse: Delta tables `calls`, `usage`, `quarantine` (+ `_sources`, `_meta`), and how chunks commit.

Exactly once, by the tables themselves: a chunk of lines [start, end) of one source commits its
rows together with an application transaction (app id = source id, version = end). Before
committing, the source's version in the snapshot being committed against is checked: rows
below it are already in the table and are dropped. Two writers racing on the same range both
name the same app id, so Delta rejects the second commit; it re-checks and finds nothing left.
Order per batch: `_sources` rows (identity + tail hashes) -> `quarantine` -> `calls`; `usage`
is derived by attribution afterwards and keeps its own versions (see `commit_usage`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa

from ..copies import Candidate, LiveFiles
from ..errors import NoSuchVersion, WarehouseError, WarehouseNotFound
from ..keys import KeyHasher
from ..sources import FileIdentity, begins_with
from .location import Location, check_writable_location
from .meta import Meta
from .progress import Resolved, SourceIndex, SourceRecord, host_name, new_source_id, record_for, records_table, restart_id
from .rows import ChunkRows, CommitResult, filter_from, with_date
from .table import Table, literal, open_delta, retry_on_conflict, scan

if TYPE_CHECKING:
    from deltalake import DeltaTable


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _has_commit(table_dir: Path) -> bool:
    """A Delta log with a commit (the newest version's JSON is never cleaned up) or a checkpoint."""
    log = table_dir / "_delta_log"
    try:
        return log.is_dir() and any(p.suffix == ".json" or p.name.endswith(".checkpoint.parquet") for p in log.iterdir())
    except OSError as exc:  # e.g. no permission to list it: say so, never take it for a missing warehouse
        raise WarehouseError(f"{log}: cannot be read ({exc.strerror or exc})") from None


class Store:
    """Open with a location (directory or URI). Reading never creates anything."""

    def __init__(self, location: str | Path | Location | None = None) -> None:
        self.loc = location if isinstance(location, Location) else Location.parse(location)
        self.calls = Table(self.loc, "calls", ["date"])
        self.usage = Table(self.loc, "usage", ["date"])
        self.quarantine = Table(self.loc, "quarantine", ["date"])
        self.sources = Table(self.loc, "_sources")
        self.meta = Meta(Table(self.loc, "_meta"))
        self.host = host_name()
        self._index: SourceIndex | None = None
        self._hasher: KeyHasher | None = None

    def __repr__(self) -> str:
        return f"Store({self.loc.uri!r})"

    # -- existence ------------------------------------------------------------------------
    def exists(self) -> bool:
        if self.loc.path is not None:  # a local table exists once its log holds a commit: no delta-rs needed
            return any(_has_commit(self.loc.path / name) for name in ("_meta", "calls"))
        return self.meta.table.exists() or self.calls.exists()  # `_meta` first: every warehouse has it

    def require(self) -> Store:
        """For read commands: a missing warehouse is an error, never an empty 'all clear'."""
        if not self.exists():
            raise WarehouseNotFound(
                f"no warehouse at {self.loc.uri}: ingest logs first (tokentrail ingest LOGS --warehouse {self.loc.uri}) "
                f"or point --warehouse / $TOKENTRAIL_WAREHOUSE at an existing one"
            )
        return self

    def prepare_for_writing(self) -> Store:
        check_writable_location(self.loc)
        if self.loc.path is not None:
            self.loc.path.mkdir(parents=True, exist_ok=True)
        self.hasher  # noqa: B018 - creates the secret (and `_meta`) on first use
        return self

    # -- keys -----------------------------------------------------------------------------
    @property
    def hasher(self) -> KeyHasher:
        """The HMAC fingerprinter, with the warehouse's secret (created on first write)."""
        if self._hasher is None:
            secret = self.meta.secret(create=True)
            if secret is None:
                raise WarehouseError(f"could not create the key-fingerprint secret in {self.loc.uri}/_meta")
            self._hasher = KeyHasher(secret)
        return self._hasher

    # -- sources --------------------------------------------------------------------------
    def source_index(self, refresh: bool = False) -> SourceIndex:
        if self._index is None or refresh:
            self._index = SourceIndex.from_table(self.sources.read(), self.host)
        return self._index

    def resolve(self, ident: FileIdentity, head: bytes, live: Callable[[], LiveFiles] | None = None,
                tail_at: object = None, path: str = "", handle: BinaryIO | None = None) -> Resolved:
        """The source id of a file and the verified offset to resume from.

        `live()`: the files being read on this host now (asked only when needed). A record whose file
        still exists and holds what the record saw is not adopted by another file with the same head
        (identical banners); and a file that only repeats the bytes of another live file (a rotation's
        copy being made) is not read at all while that file holds them (`Resolved.copy_of`).
        `tail_at(offset) -> hash|None`: the hash of the file's bytes before `offset` (`sources.TAIL_BYTES`).
        `handle`: the plain file held open (it may be deleted by now), read instead of `path`.
        """
        index = self.source_index()
        cands = index.candidates(ident, head)
        duplicate: str | None = None
        adopted = False
        chosen = next((r for r in cands if r.host == self.host and (r.dev, r.inode) == (ident.dev, ident.inode)), None)
        if chosen is None:
            peers = live() if live is not None else None
            if peers is not None:  # not a file read before on this host: is it a copy of one being read?
                original = peers.copied(Candidate(Path(path), ident, head, handle),
                                        lambda f: index.source_of(self.host, f.ident.dev, f.ident.inode, f.head) is not None)
                if original is not None:
                    sid = index.source_of(self.host, original.ident.dev, original.ident.inode, original.head)
                    if sid is not None and callable(tail_at):
                        self._link_copy(sid, ident, head, path, tail_at)
                    return Resolved("", 0, copy_of=str(original.path))
            chosen, adopted, duplicate = self._moved_here(cands, ident, head, peers, tail_at)
        if chosen is None:
            sid = new_source_id(ident, self.host)
            # provisional until its first commit, so a file with the same head read in the same batch
            # finds it (and, both being live, gets its own id)
            index.add(record_for(sid, ident, self.host, path, 0, None, _now_us()))
            return Resolved(sid, self.calls.txn_version(sid) or 0, duplicate_of=duplicate)
        sid = chosen.source_id
        remembered = next((r.format for r in sorted(index.by_id.get(sid, ()), key=lambda r: -r.committed_at)
                           if r.format), None)
        offset = self.calls.txn_version(sid) or 0
        if offset and not ident.compressed and not adopted:
            if offset > ident.size:
                return self._restart(sid, offset, "file is shorter than its checkpoint: truncated, reading from 0")
            expected = index.tail_at(sid, offset)
            if expected is not None and callable(tail_at) and tail_at(offset) != expected:
                return self._restart(sid, offset, "bytes before the checkpoint changed: file replaced, reading from 0")
        return Resolved(sid, offset, duplicate_of=duplicate, format=remembered)

    def _moved_here(self, cands: list[SourceRecord], ident: FileIdentity, head: bytes, peers: LiveFiles | None,
                    tail_at: object) -> tuple[SourceRecord | None, bool, str | None]:
        """Rule 2 of `progress`: the source this file (not read before here) continues, if any: (its record,
        whether it is a copy adopted without the offset check, a still-live file with the same head)."""
        copied_from = self._copied_from(ident, head, tail_at)
        duplicate = None
        for r in cands:
            if r.host == self.host and peers is not None and (r.dev, r.inode) != (ident.dev, ident.inode) and \
                    peers.holding(r.dev, r.inode, r.fp, r.fp_len, r.end_offset, r.tail_hash) is not None:
                duplicate = r.path  # its file still holds it: not ours to take (identical banners)
                continue
            if r.source_id == copied_from:
                # seen repeating that source's file byte for byte: it is that source, even where the source
                # was read past this copy's end (copytruncate's window: the log was written and read between
                # the copy and the truncate), so there is nothing to verify or restart
                return r, True, duplicate
            if ident.compressed or r.compressed:
                return r, False, duplicate  # a gzip rotation of a file read before: same decompressed head
            offset = self.calls.txn_version(r.source_id) or 0
            expected = self.source_index().tail_at(r.source_id, offset)
            if offset == 0 or (offset <= ident.size and callable(tail_at) and tail_at(offset) == expected):
                return r, False, duplicate
        return None, False, duplicate

    def _copied_from(self, ident: FileIdentity, head: bytes, tail_at: object) -> str | None:
        """The source this file was seen repeating (a copy link in `_sources`), if it is unchanged since:
        the same head, length and bytes before its end. A copy that went on growing, or another file on
        a reused inode, is not that copy and takes the usual checks."""
        if not callable(tail_at):
            return None
        for r in self.source_index().by_inode.get((self.host, ident.dev, ident.inode), ()):
            if r.copy and r.end_offset == ident.size and begins_with(head, r.fp, r.fp_len) and \
                    tail_at(ident.size) == r.tail_hash:
                return r.source_id
        return None

    def _link_copy(self, sid: str, ident: FileIdentity, head: bytes, path: str, tail_at: Callable[[int], str | None]) -> None:
        """Record in `_sources` that this plain file holds the first `size` bytes of source `sid` (it was
        seen repeating the file read under `sid`), once per state of the copy. When the original lets go
        of those bytes the copy resumes `sid`, in this process or a later one, even where the source was
        read past the copy's end through the original (copytruncate's window: the application wrote
        between the copy and the truncate), which the check at the source's offset cannot see."""
        if ident.compressed or not ident.size or self._copied_from(ident, head, tail_at) == sid:
            return  # a `.gz` copy is matched by its decompressed head alone; or this link exists already
        record = record_for(sid, ident, self.host, path, ident.size, tail_at(ident.size), _now_us(), copy=True)
        self.sources.append(records_table([record]), {})
        self.source_index().add(record)

    def _restart(self, old: str, offset: int, note: str) -> Resolved:
        sid = restart_id(old, offset)
        return Resolved(sid, self.calls.txn_version(sid) or 0, note)

    # -- committing chunks ----------------------------------------------------------------
    def commit_chunks(self, chunks: list[ChunkRows], quarantine_date: str | None = None) -> CommitResult:
        """Commit the chunks of one or more sources: exactly once, whoever else is writing."""
        qdate = quarantine_date or datetime.now(UTC).strftime("%Y-%m-%d")

        def attempt() -> CommitResult:
            dt_calls = self.calls.snapshot(refresh=True) or self.calls.snapshot_or_create(self._empty_calls(chunks))
            todo: list[ChunkRows] = []
            ends: dict[str, int] = {}  # a source twice in one batch: the later chunk starts where the first ended
            for c in chunks:
                v = dt_calls.transaction_version(c.source_id) or 0
                v = max(v, ends.get(c.source_id, 0))
                if v >= c.end:
                    continue  # already committed (by us before a crash, or by another writer)
                ends[c.source_id] = c.end
                todo.append(ChunkRows(c.source_id, c.ident, c.path, max(c.start, v), c.end, c.tail_hash,
                                      filter_from(c.calls, v), filter_from(c.quarantine, v), c.format))
            if not todo:
                return CommitResult()
            now = _now_us()
            records = [record_for(c.source_id, c.ident, self.host, c.path, c.end, c.tail_hash, now, c.format)
                       for c in todo]
            self.sources.append(records_table(records), {})
            self.commit_quarantine(todo, qdate)
            parts = [self._calls_part(c) for c in todo if c.calls is not None and c.calls.num_rows]
            calls = pa.concat_tables(parts, promote_options="default") if parts else None
            data = calls if calls is not None else self._empty_calls(todo)
            self.calls.append(data, {c.source_id: c.end for c in todo}, dt_calls)
            index = self.source_index()
            for r in records:
                index.add(r)
            return CommitResult(todo, calls)

        return retry_on_conflict(attempt, f"committing to {self.calls.uri}")

    def _calls_part(self, c: ChunkRows) -> pa.Table:
        assert c.calls is not None
        t = c.calls
        if "source_id" not in t.column_names:
            t = t.append_column("source_id", pa.array([c.source_id] * t.num_rows, pa.string()))
        return with_date(t)

    def _empty_calls(self, todo: list[ChunkRows]) -> pa.Table:
        dt = self.calls.snapshot(refresh=False)
        if dt is not None:
            return pa.schema(dt.schema().to_arrow()).empty_table()
        for c in todo:
            if c.calls is not None:
                return self._calls_part(ChunkRows(c.source_id, c.ident, c.path, c.start, c.end, c.tail_hash,
                                                  c.calls.slice(0, 0)))
        from ..schema import CALL_SCHEMA

        empty = CALL_SCHEMA.empty_table().append_column("source_id", pa.array([], pa.string()))
        return empty.append_column("date", pa.array([], pa.date32()))

    def commit_quarantine(self, todo: list[ChunkRows], qdate: str) -> None:
        """The quarantine half of `commit_chunks` (it runs first): rows below each source's quarantine
        version are dropped, so a crash between the halves never stores a bad line twice."""
        with_rows = [c for c in todo if c.quarantine is not None and c.quarantine.num_rows]
        if not with_rows:
            return
        first = with_rows[0].quarantine
        assert first is not None  # with_rows holds chunks with quarantine rows only
        dt_q = self.quarantine.snapshot(refresh=True) or self.quarantine.snapshot_or_create(
            self._quarantine_part(with_rows[0], first.slice(0, 0), qdate))
        parts, txns = [], {}
        for c in with_rows:
            v = dt_q.transaction_version(c.source_id) or 0
            if v >= c.end:
                continue
            q = filter_from(c.quarantine, v)
            assert q is not None
            parts.append(self._quarantine_part(c, q, qdate))
            txns[c.source_id] = c.end
        if parts:
            self.quarantine.append(pa.concat_tables(parts, promote_options="default"), txns, dt_q)

    @staticmethod
    def _quarantine_part(c: ChunkRows, q: pa.Table, qdate: str) -> pa.Table:
        q = q.append_column("source_id", pa.array([c.source_id] * q.num_rows, pa.string()))
        return with_date(q, fixed=qdate)

    # -- usage ----------------------------------------------------------------------------
    def commit_usage(self, ranges: dict[str, tuple[int, int]], usage: pa.Table) -> int:
        """Append attributed rows for source ranges {source_id: (start, end)}, once.

        Fast path: the usage table's version for each source is at or below `start`, so none of
        these rows can be there. Otherwise (a retry after a conflict, a repair, a re-attribution
        that ran in between) rows already present are found by (source_id, source_offset, call_id)
        and dropped.
        """
        import pyarrow.compute as pc  # not on the read path: `sql` starts without it

        first = [True]

        def attempt() -> int:
            dt_u = self.usage.snapshot(refresh=True) or self.usage.snapshot_or_create(with_date(usage.slice(0, 0)))
            txns: dict[str, int] = {}
            check: list[str] = []
            for sid, (start, end) in ranges.items():
                v = dt_u.transaction_version(sid) or 0
                if v >= end:
                    continue
                txns[sid] = end
                if v > start or not first[0]:
                    check.append(sid)
            first[0] = False
            if not txns:
                return 0
            rows = usage.filter(pc.is_in(usage["source_id"], pa.array(list(txns), pa.string())))
            if check:
                rows = self._drop_present(rows, check, dt_u)
            rows = with_date(rows)
            self.usage.append(rows, txns, dt_u)
            return int(rows.num_rows)

        return retry_on_conflict(attempt, f"committing to {self.usage.uri}")

    def _drop_present(self, rows: pa.Table, source_ids: list[str], dt_u: DeltaTable) -> pa.Table:
        import duckdb
        import pyarrow.compute as pc  # not on the read path: `sql` starts without it

        dates = pc.unique(pc.cast(pc.cast(rows["ts"], pa.timestamp("us", tz="UTC")), pa.date32())).to_pylist()
        if not dates or not source_ids:
            return rows
        where = (f"source_id IN ({', '.join(literal(x) for x in source_ids)}) "
                 f"AND date IN ({', '.join(literal(d) for d in dates)})")
        present = scan(dt_u, ["source_id", "source_offset", "call_id"], where)
        con = duckdb.connect()
        con.register("new_rows", rows)
        con.register("present", present)
        out = con.sql("SELECT * FROM new_rows n ANTI JOIN present p USING (source_id, source_offset, call_id)").to_arrow_table()
        con.close()
        return out.cast(rows.schema)

    def usage_lag(self) -> list[tuple[str, int, int]]:
        """Sources whose usage trails their calls: (source_id, usage version, calls version)."""
        dt_c, dt_u = self.calls.snapshot(), self.usage.snapshot()
        if dt_c is None:
            return []
        out = []
        for sid in self.source_index(refresh=True).by_id:
            cv = dt_c.transaction_version(sid) or 0
            uv = (dt_u.transaction_version(sid) if dt_u is not None else None) or 0
            if uv < cv:
                out.append((sid, uv, cv))
        return out

    def calls_since(self, lag: Iterable[tuple[str, int, int]]) -> pa.Table:
        """The calls rows of each lagging source from its usage version on."""
        dt = self.calls.snapshot()
        if dt is None:
            return pa.table({})
        terms = [f"(source_id = {literal(sid)} AND source_offset >= {int(uv)} AND source_offset < {int(cv)})"
                 for sid, uv, cv in lag]
        return scan(dt, None, " OR ".join(terms)) if terms else pa.table({})

    # -- files for readers ----------------------------------------------------------------
    def open_snapshot(self, name: str, as_of: int | datetime | None = None) -> DeltaTable | None:
        from deltalake.exceptions import DeltaError, TableNotFoundError

        try:
            dt = open_delta(self.loc.table_uri(name), self.loc.storage_options)
        except TableNotFoundError:
            return None
        if as_of is not None:
            try:
                dt.load_as_version(as_of)
            except (DeltaError, ValueError, OSError) as exc:
                raise NoSuchVersion(f"--as-of {as_of}: {name} has no such version ({exc})") from None
        return dt

    # -- maintenance ----------------------------------------------------------------------
    def prune_sources(self, keep: int = 3) -> int:
        """Keep the newest `keep` records per source in `_sources` (one is appended per chunk, so a watcher
        flushing every 2 s would add 43,000 a day per file), and every copy link (one or a few per rotation).
        Resume needs only the record at the source's committed offset, which is among the newest. One
        overwrite; a concurrent append makes it retry."""
        def attempt() -> int:
            dt = self.sources.snapshot(refresh=True)
            if dt is None:
                return 0
            rows = scan(dt)
            if rows.num_rows == 0:
                return 0
            import duckdb

            con = duckdb.connect()
            con.register("s", rows)
            link = 'coalesce("copy", false)' if "copy" in rows.column_names else "false"  # copy links are all kept
            kept = con.sql(f"""
                SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (
                    PARTITION BY source_id ORDER BY end_offset DESC, committed_at DESC) AS rn FROM s)
                WHERE rn <= {int(keep)} OR {link}""").to_arrow_table()
            con.close()
            if kept.num_rows == rows.num_rows:
                return 0
            self.sources.overwrite(kept.cast(rows.schema), None, {}, dt)
            self._index = None
            return int(rows.num_rows - kept.num_rows)

        return retry_on_conflict(attempt, f"pruning {self.sources.uri}")

    def optimize(self, target_size: int = 256 << 20) -> dict[str, dict[str, int]]:
        """Compact small files (Delta optimize) in every table; safe while others append."""
        self.prune_sources()
        out: dict[str, dict[str, int]] = {}
        for t in (self.calls, self.usage, self.quarantine, self.sources, self.meta.table):
            dt = t.snapshot()
            if dt is None:
                continue

            def run(dt: DeltaTable = dt, t: Table = t) -> dict[str, int]:
                dt.update_incremental()
                m = dt.optimize.compact(target_size=target_size)
                return {"removed": int(m.get("numFilesRemoved", 0)), "added": int(m.get("numFilesAdded", 0))}

            out[t.name] = retry_on_conflict(run, f"optimizing {t.uri}")
        return out

    def vacuum(self, retention_hours: int = 168) -> dict[str, int]:
        """Delete files no longer referenced and older than the retention (default 7 days: `--as-of`
        can reach back that far; readers mid-scan keep working)."""
        out = {}
        for t in (self.calls, self.usage, self.quarantine, self.sources, self.meta.table):
            dt = t.snapshot()
            if dt is None:
                continue
            removed = dt.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
            out[t.name] = len(removed)
        return out

