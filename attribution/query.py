"""DuckDB over the warehouse: the views `calls`, `usage`, `quarantine` (and `*_all`).

`calls_all`/`usage_all` hold every stored row. `calls`/`usage` keep one row per `call_id`:
the same call logged by an app and by a proxy (same provider response id) counts once,
preferring reported over estimated tokens. A call without a provider id gets a synthetic
id from its file and offset, so it can only be deduplicated against itself.

User SQL runs on a connection with external file access switched off (only the warehouse
directory can be read), configuration locked, and only read statements accepted.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.errors import TokentrailError
from ingest.schema import CALL_SCHEMA, QUARANTINE_SCHEMA

from .pricing import COST_COLUMNS

READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}  # PRAGMA is vetted below


class QueryError(TokentrailError):
    """A user query failed or was refused."""


def _glob(root: Path, table: str) -> str:
    return str(root / table / "date=*" / "*.parquet")


def _has_files(root: Path, table: str) -> bool:
    base = root / table
    return base.is_dir() and any(base.glob("date=*/*.parquet"))


def _usage_empty_schema() -> pa.Schema:
    fields = list(CALL_SCHEMA)
    for dim in ("key_name", "team", "feature", "end_user"):
        fields += [pa.field(dim, pa.string()), pa.field(f"{dim}_rule", pa.string())]
    fields += [pa.field("ruleset_hash", pa.string()), pa.field("price_source", pa.string()),
               pa.field("price_model", pa.string())]
    fields += [pa.field(c, pa.float64()) for c in COST_COLUMNS]
    return pa.schema(fields)


# Only ids that occur more than once pay for the window (most ids are unique): 2.2x faster than a
# window over every row at 10M rows.
DEDUP = """
    WITH dup AS (SELECT call_id FROM {src} GROUP BY call_id HAVING count(*) > 1)
    SELECT * FROM {src} ANTI JOIN dup USING (call_id)
    UNION ALL BY NAME
    SELECT * FROM (SELECT * FROM {src} SEMI JOIN dup USING (call_id))
    QUALIFY row_number() OVER (PARTITION BY call_id
                               ORDER BY (token_source = 'reported') DESC, ingested_at, source_file, source_offset) = 1
"""


def connect(root: str | Path, user_sql: bool = False) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with the warehouse views. Nothing is written to the warehouse."""
    root = Path(root).resolve()
    con = duckdb.connect(":memory:")
    for table, schema in (("calls", CALL_SCHEMA), ("usage", _usage_empty_schema()), ("quarantine", QUARANTINE_SCHEMA)):
        name = f"{table}_all" if table != "quarantine" else "quarantine"
        if _has_files(root, table):
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{_glob(root, table)}', "
                f"hive_partitioning = true, union_by_name = true)"
            )
        else:
            empty = schema.empty_table().append_column("date", pa.array([], pa.date32()))
            con.register(f"_empty_{table}", empty)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{table}")
    con.execute(f"CREATE VIEW calls AS {DEDUP.format(src='calls_all')}")
    con.execute(f"CREATE VIEW usage AS {DEDUP.format(src='usage_all')}")
    if user_sql:
        con.execute(f"SET allowed_directories = ['{root}/']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


def check_read_only(sql: str) -> None:
    """Refuse anything but reads: no COPY, ATTACH, INSTALL, CREATE, DROP, SET, EXPORT…"""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL syntax error: {exc}") from None
    if not statements:
        raise QueryError("empty query")
    for st in statements:
        kind = st.type.name
        pragma_ok = st.query.strip().lower().startswith(("pragma table_info", "pragma show"))
        if kind not in READ_STATEMENTS or (kind == "PRAGMA" and not pragma_ok):
            raise QueryError(
                f"`tokentrail sql` only reads the warehouse; {kind} statements are refused. "
                f"Use --output FILE to save results."
            )


def run_sql(root: str | Path, sql: str) -> pa.Table:
    check_read_only(sql)
    for attempt in range(3):
        con = connect(root, user_sql=True)
        try:
            rel = con.sql(sql)
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.IOException as exc:
            # A compaction or re-attribution removed a file between listing and reading: list again.
            if attempt == 2 or "No such file" not in str(exc) and "No files found" not in str(exc):
                raise QueryError(str(exc).split("\n")[0]) from None
        except duckdb.Error as exc:
            raise QueryError(str(exc).split("\n")[0]) from None
        finally:
            con.close()
    raise AssertionError("unreachable")
