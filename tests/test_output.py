"""Table output: the direct drawing is character for character what rich draws, and far cheaper."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.output import TABLE_WIDTH, draw_box, draw_rich, render_rich

CELL = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


@st.composite
def tables(draw):  # type: ignore[no-untyped-def]
    n_cols = draw(st.integers(1, 6))
    columns = draw(st.lists(CELL, min_size=n_cols, max_size=n_cols))
    cells = draw(st.lists(st.lists(CELL, min_size=n_cols, max_size=n_cols), max_size=6))
    justify = draw(st.lists(st.sampled_from(["left", "right"]), min_size=n_cols, max_size=n_cols))
    title = draw(st.none() | CELL)
    section_at = draw(st.none() | st.integers(0, max(len(cells) - 1, 0)))
    return columns, cells, justify, title, section_at if cells else None


@settings(max_examples=400, deadline=None)
@given(tables())
def test_direct_drawing_matches_rich(table) -> None:  # type: ignore[no-untyped-def]
    drawn = draw_box(*table)
    columns, cells, _, title, _ = table
    if title is not None and title != title.strip():
        assert drawn is None  # rich trims a padded title: it lays that out itself
        return
    if title is not None and len(title) > sum(max([len(c)] + [len(r[i]) for r in cells]) + 3
                                              for i, c in enumerate(columns)) + 1:
        assert drawn is None  # a title wider than the table: rich wraps it
        return
    assert drawn is not None  # other small ASCII tables are always drawn directly
    assert drawn == draw_rich(*table)


def test_tables_rich_must_lay_out_are_declined() -> None:
    wide = [["x" * (TABLE_WIDTH // 2)] * 3]
    assert draw_box(["a", "b", "c"], wide, ["left"] * 3, None, None) is None
    assert draw_box(["name"], [["Zoë 🙂"]], ["left"], None, None) is None  # wide characters
    assert draw_box(["name"], [["two\nlines"]], ["left"], None, None) is None
    assert draw_box(["a"], [["x"]], ["left"], "a title longer than the table", None) is None
    folded = render_rich(["a", "b", "c"], wide)
    assert "x" * 20 in folded and max(len(line) for line in folded.splitlines()) <= TABLE_WIDTH


def test_report_table_with_totals_is_drawn_directly() -> None:
    out = render_rich(["key", "requests", "cost_usd"], [["a", 1, 0.5], ["b", 2, 0.25]],
                      totals=["requests", "cost_usd"])
    lines = out.splitlines()
    assert lines[0].startswith("┏") and lines[-2].startswith("│ total") and lines[-3].startswith("├")
    assert "│        3 │" in lines[-2] or lines[-2].split("│")[2].strip() == "3"


def test_the_width_limit_is_rich_s_own() -> None:
    for width in (TABLE_WIDTH - 1, TABLE_WIDTH):
        cell = "x" * (width - 4)  # one column: `│ ` + cell + ` │`
        table = (["a"], [[cell]], ["left"], None, None)
        assert draw_box(*table) == draw_rich(*table)
    assert draw_box(["a"], [["x" * (TABLE_WIDTH - 3)]], ["left"], None, None) is None
