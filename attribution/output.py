"""Rendering Arrow tables as a terminal table, CSV (one header row) or JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

FORMATS = ("table", "csv", "json")


def _plain(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def to_json(rows: list[dict[str, Any]] | Any) -> str:
    return json.dumps(_plain(rows), indent=2, ensure_ascii=False, default=str)


def render(table: pa.Table, fmt: str, title: str | None = None) -> str:
    rows = table.to_pylist()
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(table.column_names)
        for r in rows:
            w.writerow(["" if v is None else _cell(v) for v in r.values()])
        return buf.getvalue().rstrip("\n")
    return render_rich(table.column_names, [list(r.values()) for r in rows], title)


def _cell(v: Any) -> str:
    v = _plain(v)
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0").rstrip(".") if abs(v) < 1e15 else str(v)
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def render_rich(columns: list[str], rows: list[list[Any]], title: str | None = None) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        numeric = bool(rows) and all(isinstance(r[columns.index(c)], int | float) or r[columns.index(c)] is None for r in rows)
        t.add_column(c, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else _cell(v) for v in r])
    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(t)
    return console.export_text().rstrip("\n")
