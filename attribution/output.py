"""Rendering Arrow tables as a terminal table, CSV (one header row) or JSON, for finance.

How a number is written follows its type, not its column's name: a Decimal (every cost, and any
DECIMAL a query returns) is money. One cost precision everywhere a person reads a number
(tables, the HTML report): six decimals, thousands separators, a non-zero value never shown as
zero (`<0.000001`). Machine formats (CSV, JSON) carry the exact value in positional notation,
never an exponent (`0.000039`, not `3.9e-05`); JSON money is a number with every digit; whole
numbers (token sums, counts) are integers there, never `123.0`. Numeric table columns are
right-aligned; callers name the additive columns to get a total row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

FORMATS = ("table", "csv", "json")
COST_DECIMALS = 6
_TINY = Decimal(1).scaleb(-COST_DECIMALS)
COST_NAMES = frozenset({"spent_usd", "limit_usd", "projected_usd", "cost", "BilledCost"})


_COSTLIKE = re.compile(r"usd|cost", re.IGNORECASE)


def is_cost_column(name: str) -> bool:
    """Cost columns by name: `cost_usd`, `*_usd`, FOCUS `*Cost`, and user SQL like `sum(cost_usd)`."""
    return name in COST_NAMES or bool(_COSTLIKE.search(name))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _integral(v: Any) -> bool:
    if isinstance(v, Decimal):
        return v.is_finite() and v == v.to_integral_value()
    if isinstance(v, float):
        return math.isfinite(v) and v.is_integer() and abs(v) < 1e15
    return isinstance(v, int)


def format_cost(v: Any) -> str:
    """A cost for people: 6 decimals with separators; tiny non-zero values are not shown as 0."""
    if v is None:
        return ""
    d = v if isinstance(v, Decimal) else Decimal(repr(float(v)))
    if d != 0 and abs(d) < _TINY / 2:
        return "<0.000001" if d > 0 else ">-0.000001"
    return f"{d:,.{COST_DECIMALS}f}"


def plain_number(v: float | Decimal) -> str:
    """Every digit the value has, in positional notation: spreadsheets and finance tools take
    `0.000039` as written, `3.9e-05` is not what README promises. Floats give their shortest
    round-trip digits; no trailing zeros; `-0` is `0`; inf/nan stay as Python writes them."""
    d = v if isinstance(v, Decimal) else Decimal(repr(float(v)))
    if not d.is_finite():
        return str(v)
    s = f"{d:f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def exact_cost(v: Any) -> str:
    """A cost for machines: the exact value, no exponent; a float cost loses its float artefacts
    (`0.1 + 0.2` is `0.3`) by rounding to the stored cost precision, 12 decimals."""
    return plain_number(v if isinstance(v, Decimal) else round(float(v), 12))


def _plain(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        if v.as_tuple().exponent >= 0:  # type: ignore[operator]
            return int(v)
        return float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


_EXACT = "\x00exact:"
_EXACT_RE = re.compile(r'"\\u0000exact:(-?[0-9.]+)"')


def _exact_numbers(v: Any, cost: bool = False) -> Any:
    """Decimals (money) and floats json would write with an exponent, as markers that `to_json`
    turns into JSON numbers in positional notation: a float would keep only ~16 significant digits
    of a DECIMAL(38,12) sum, and `1e-06` is not the plain number README promises."""
    if isinstance(v, Decimal) and v.is_finite() and v.as_tuple().exponent < 0:  # type: ignore[operator]
        return _EXACT + exact_cost(v)
    if isinstance(v, float) and math.isfinite(v):
        v = round(v, 12) if cost else v  # a float cost keeps no float artefacts
        return _EXACT + plain_number(v) if "e" in repr(v) else v
    if isinstance(v, list | tuple):
        return [_exact_numbers(x) for x in v]
    if isinstance(v, dict):
        return {k: _exact_numbers(x, is_cost_column(str(k))) for k, x in v.items()}
    return v


def to_json(rows: list[dict[str, Any]] | Any) -> str:
    text = json.dumps(_plain(_exact_numbers(rows)), indent=2, ensure_ascii=False, default=str)
    return _EXACT_RE.sub(lambda m: m.group(1), text)


REPORT_COLUMNS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
                  "cost_usd", "estimated_share")


def render(table: pa.Table, fmt: str, title: str | None = None, totals: Sequence[str] | None = None,
           align_right: Sequence[str] = ()) -> str:
    """`totals`: additive columns summed into a total row (tables only; CSV/JSON stay pure data).
    None: a `report`-shaped table totals its counts, tokens and cost; any other table has no total."""
    if totals is None:
        totals = REPORT_COLUMNS[:-1] if tuple(table.column_names[-len(REPORT_COLUMNS):]) == REPORT_COLUMNS else ()
    rows = table.to_pylist()
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(table.column_names)
        for r in rows:
            w.writerow([_csv_cell(k, v) for k, v in r.items()])
        return buf.getvalue().rstrip("\n")
    return render_rich(table.column_names, [list(r.values()) for r in rows], title, totals, align_right)


def _csv_cell(name: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, Decimal) or (is_cost_column(name) and isinstance(v, float)):
        return exact_cost(v)
    v = _plain(v)
    if isinstance(v, float):
        return str(int(v)) if _integral(v) else plain_number(v)
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _is_money(v: Any) -> bool:
    """A Decimal with a fractional scale: every cost column, and any DECIMAL a query returns."""
    return isinstance(v, Decimal) and v.is_finite() and v.as_tuple().exponent < 0  # type: ignore[operator]


def _column_formatter(name: str, values: list[Any]) -> tuple[bool, Any]:
    """(right-aligned?, value -> text) for one column, decided on all its values (their type; the
    name only marks a float column as a cost)."""
    present = [v for v in values if v is not None]
    if not present or not all(_is_number(v) for v in present):
        return False, lambda v: "" if v is None else (json.dumps(v) if isinstance(v, dict | list) else str(_plain(v)))
    if any(_is_money(v) for v in present) or (
            is_cost_column(name) and not all(isinstance(v, int) for v in present)):  # `cost_rank` stays an integer
        return True, format_cost
    if all(_integral(v) for v in present):
        return True, lambda v: "" if v is None else f"{int(v):,}"
    if any(v != 0 and round(float(v), 4) == 0 for v in present):
        return True, format_cost  # 4 places would show a non-zero value as 0: the cost precision, `<0.000001`
    # As many decimals (up to 4) as the column's values need, the same for every row so they line up.
    places = max(next(d for d in range(5) if d == 4 or round(float(v), d) == round(float(v), 4)) for v in present)
    return True, lambda v: "" if v is None else f"{float(v):,.{places}f}"


def total_row(columns: list[str], rows: list[list[Any]], totals: Sequence[str]) -> list[Any]:
    """Sums of the additive columns (exact for Decimal and int); `total` in the first text column."""
    out: list[Any] = [None] * len(columns)
    for i, c in enumerate(columns):
        if c in totals:
            vals = [r[i] for r in rows if r[i] is not None]
            if not vals:
                continue  # nothing to add up: blank, not a made-up 0
            if any(isinstance(v, float) for v in vals):
                out[i] = math.fsum(float(v) for v in vals)
            else:
                out[i] = sum(vals, Decimal(0)) if any(isinstance(v, Decimal) for v in vals) else sum(vals)
    label = next((i for i, c in enumerate(columns)
                  if c not in totals and not any(_is_number(r[i]) for r in rows)), None)
    if label is not None:
        out[label] = "total"
    return out


TABLE_WIDTH = 200  # characters: wider tables are folded by rich


def render_rich(columns: list[str], rows: list[list[Any]], title: str | None = None, totals: Sequence[str] = (),
                align_right: Sequence[str] = ()) -> str:
    """`align_right`: text columns that hold pre-formatted numbers.

    Tables that fit (ASCII, one line per cell, at most TABLE_WIDTH wide: nearly every report) are
    drawn directly, character for character as rich draws them, at a fraction of the cost (rich
    takes over a second for a few thousand rows); anything else goes through rich.
    """
    with_total = bool(totals) and len(rows) > 1
    all_rows = rows + [total_row(columns, rows, totals)] if with_total else rows
    justify = []
    formatters = []
    for i, c in enumerate(columns):
        right, fmt = _column_formatter(c, [r[i] for r in rows])
        justify.append("right" if right or c in align_right else "left")
        formatters.append(fmt)
    cells = [[formatters[i](v) if v is not None else "" for i, v in enumerate(r)] for r in all_rows]
    section_at = len(rows) if with_total else None
    drawn = draw_box(columns, cells, justify, title, section_at)
    return drawn if drawn is not None else draw_rich(columns, cells, justify, title, section_at)


def draw_rich(columns: list[str], cells: list[list[str]], justify: list[str], title: str | None,
              section_at: int | None) -> str:
    """The table laid out by rich: folding, wide characters, anything `draw_box` declines."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(title) if title else None, show_lines=False, header_style="bold")
    for c, j in zip(columns, justify, strict=True):
        t.add_column(Text(c), justify=j, overflow="fold")  # type: ignore[arg-type]
    for n, r in enumerate(cells):
        if n == section_at:
            t.add_section()
        t.add_row(*(Text(v) for v in r))  # literal text: a `[tag]` in a value is not rich markup
    console = Console(width=TABLE_WIDTH, record=True, file=io.StringIO(), color_system=None)
    console.print(t)
    return console.export_text().rstrip("\n")


def draw_box(columns: list[str], cells: list[list[str]], justify: list[str], title: str | None,
              section_at: int | None) -> str | None:
    """rich's default (heavy-head) table for the simple case; None when rich must lay it out."""
    texts = [*columns, *(c for r in cells for c in r), title or ""]
    if not all(t.isascii() and t.isprintable() for t in texts):
        return None  # wide or combining characters, line breaks: rich measures those
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    total = sum(widths) + 3 * len(widths) + 1
    if total > TABLE_WIDTH or not columns or len(title or "") > total or (title or "") != (title or "").strip():
        return None  # rich folds wide tables, wraps long titles and trims padded ones

    def line(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row(values: list[str], edge: str) -> str:
        # rich measures a cell with its trailing spaces but drops them when it right-justifies
        parts = [v.rstrip().rjust(w) if j == "right" else v.ljust(w)
                 for v, w, j in zip(values, widths, justify, strict=True)]
        return edge + edge.join(f" {p} " for p in parts) + edge

    out = []
    if title:
        pad = total - len(title)
        out.append(" " * (pad // 2) + title + " " * (pad - pad // 2))
    out += [line("┏", "━", "┳", "┓"), row(columns, "┃"), line("┡", "━", "╇", "┩")]
    for n, r in enumerate(cells):
        if n == section_at and n > 0:  # as rich: a section before the first row draws nothing
            out.append(line("├", "─", "┼", "┤"))
        out.append(row(r, "│"))
    out.append(line("└", "─", "┴", "┘"))
    return "\n".join(out)
