"""`tokentrail sql` is a sandbox by construction: it reads the snapshot's data files and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FIXTURES, run, tree_digest

from attribution.query import TABLES, QueryError, run_sql, tables_named
from ingest.errors import MissingDataFile, WarehouseError


@pytest.mark.parametrize("sql", [
    "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{wh}/calls/date=2025-03-03/evil.parquet' (FORMAT parquet)",
    "EXPLAIN COPY (SELECT 1) TO '{wh}/x.csv'",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
])
def test_explain_of_anything_but_a_read_is_refused(loaded: Path, sql: str) -> None:
    before = tree_digest(loaded)
    with pytest.raises(QueryError, match="only reads the warehouse"):
        run_sql(loaded, sql.format(wh=loaded))
    assert tree_digest(loaded) == before


def test_explain_analyze_of_a_read_works(loaded: Path) -> None:
    assert run_sql(loaded, "EXPLAIN ANALYZE SELECT count(*) FROM calls").num_rows >= 1


def test_the_key_secret_and_other_warehouse_files_are_not_readable(loaded: Path) -> None:
    meta_files = [str(p) for p in (loaded / "_meta").rglob("*.parquet")]
    log = next((loaded / "calls" / "_delta_log").glob("*.json"))
    assert meta_files
    for target in [*meta_files, str(log)]:
        for fn in ("read_blob", "read_text", "read_parquet"):
            with pytest.raises(QueryError, match="Permission|disabled|access"):
                run_sql(loaded, f"SELECT * FROM {fn}('{target}')")


def test_the_callers_directory_is_neither_read_nor_written(loaded: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    caller = tmp_path / "caller"
    (caller / ".tmp").mkdir(parents=True)
    (caller / ".tmp" / "note.txt").write_text("private")
    monkeypatch.chdir(caller)
    with pytest.raises(QueryError, match="Permission|disabled|access"):
        run_sql(loaded, "SELECT * FROM read_text('.tmp/note.txt')")
    before = sorted(os.listdir(caller))
    run_sql(loaded, "SELECT call_id, count(*) FROM calls, range(2000) GROUP BY ALL ORDER BY 1")
    assert sorted(os.listdir(caller)) == before


@pytest.mark.parametrize("root", ["/", "/etc"])
def test_a_directory_that_is_not_a_warehouse_is_refused(root: str, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("sql", "select * from read_text('/etc/shadow')", "--warehouse", root)
    assert r.exit_code == 1 and f"no warehouse at {root}" in r.output
    r = cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", root)
    assert r.exit_code == 1 and "refusing" in r.output


def test_quotes_spaces_and_percent_signs_in_the_warehouse_path_work(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    odd = tmp_path / "it's a 100% warehouse"
    assert cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", odd).exit_code == 0
    r = cli("sql", "select count(*) as n from calls", "--warehouse", odd, "--format", "csv")
    assert r.exit_code == 0 and r.output.split() == ["n", "13"]
    r = cli("report", "--by", "model", "--warehouse", odd, "--format", "csv")
    assert r.exit_code == 0, r.output


def test_brackets_in_the_warehouse_path_are_a_clear_error(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", tmp_path / "wh [1]")
    assert r.exit_code == 1 and "cannot use a path containing '[' or ']'" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(("sql", "tables"), [
    ("select 1", ()),
    ("select count(*) from usage where model = 'gpt-4o'", ("usage",)),
    ("SELECT * FROM Calls_All c JOIN quarantine q ON true", ("calls", "quarantine")),
    ("select * from information_schema.tables", TABLES),
    ("select * from duckdb_views()", TABLES),
    ("pragma show_tables", TABLES),
    ("describe usage", TABLES),
    ("select name from sqlite_schema", TABLES),
    ("select viewname from pg_views where schemaname = 'main'", TABLES),
    ("from query('SH' || 'OW TABLES')", TABLES),
])
def test_a_query_opens_only_the_tables_it_names(sql: str, tables: tuple[str, ...]) -> None:
    assert tables_named(sql) == tables


def test_the_catalog_still_lists_every_view(loaded: Path) -> None:
    names = run_sql(loaded, "select table_name from information_schema.tables order by 1").column(0).to_pylist()
    assert names == ["calls", "calls_all", "quarantine", "usage", "usage_all"]


def test_a_query_naming_one_table_does_not_open_the_others(loaded: Path) -> None:
    """A `usage` query does not even read the `calls` table's log (here: corrupted)."""
    before = run_sql(loaded, "select count(*) from usage").column(0)[0].as_py()
    for log in (loaded / "calls" / "_delta_log").glob("*.json"):
        log.write_text("not a delta log\n")
    assert run_sql(loaded, "select count(*) from usage").column(0)[0].as_py() == before > 0
    with pytest.raises(WarehouseError, match=r"calls: the table's Delta log cannot be read: .*literal"):
        run_sql(loaded, "select count(*) from calls")
    result = run("sql", "select count(*) from calls", "--warehouse", loaded)
    assert result.exit_code == 1
    assert "calls: the table's Delta log cannot be read" in result.output


def test_a_data_file_deleted_outside_tokentrail_is_named_not_a_traceback(loaded: Path) -> None:
    from attribution import api

    next((loaded / "calls").rglob("*.parquet")).unlink()
    with pytest.raises(MissingDataFile, match=r"calls/?: a data file of version \d+ cannot be read .*restore"):
        run_sql(loaded, "select count(*) from calls")
    result = run("sql", "select count(*) from calls", "--warehouse", loaded)
    assert result.exit_code == 1
    assert "a data file of version" in result.output
    assert api.report(["model"], loaded).num_rows > 0  # a report reads `usage` only: unaffected


def test_an_unreadable_delta_log_is_named_not_taken_for_a_missing_warehouse(
        loaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self.name == "_delta_log":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = run("sql", "select 1", "--warehouse", loaded)
    assert result.exit_code == 1
    assert "_delta_log: cannot be read (Permission denied)" in result.output
