"""Commands that read the warehouse as tables: sql, report."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from . import (
    DAY,
    FILE,
    as_of_option,
    date_range_options,
    day,
    emit,
    main,
    output_file_option,
    output_format_option,
    warehouse_option,
)


@main.command()
@click.argument("query")
@warehouse_option
@output_format_option
@output_file_option
@as_of_option
def sql(query: str, warehouse: str | None, fmt: str, output: Path | None, as_of: str | None) -> None:
    """Run a read-only SQL query over the views `calls`, `usage` and `quarantine`.

    `calls_all`/`usage_all` keep duplicates that `calls`/`usage` fold by call_id.

    Example: tokentrail sql "select endpoint, count(*), sum(input_tokens) from calls group by 1"
    """
    from .. import api
    from ..output import render

    emit(render(api.sql(query, warehouse, as_of), fmt), output)


@main.command()
@warehouse_option
@click.option("--by", "by", multiple=True,
              help="Group by a dimension: key_name, team, feature, end_user, model, day, hour, week, month, "
                   "any custom dimension or column, metadata.NAME. Repeatable.")
@date_range_options
@output_format_option
@output_file_option
@click.option("--html", type=click.Path(dir_okay=False, path_type=Path), help="Write a self-contained HTML report.")
@click.option("--rules", type=FILE, help="Rule file for the budgets section of --html.")
@click.option("--at", type=DAY, default=None,
              help="With --html: evaluate budgets at the end of this day [default: the last day with data shown].")
@as_of_option
def report(warehouse: str | None, by: tuple[str, ...], since: datetime | None, until: datetime | None, fmt: str,
           output: Path | None, html: Path | None, rules: Path | None, at: datetime | None, as_of: str | None) -> None:
    """Requests, tokens, cost and the share of estimated tokens, grouped by dimensions.

    Example: tokentrail report --by key_name --by feature --since 2025-03-01
    """
    from .. import api
    from ..output import render

    if html is not None:
        api.html_report(html, warehouse, day(since), day(until), rules, day(at))
        click.echo(f"wrote {html}", err=True)
        if not by:
            return
    table = api.report(by, warehouse, day(since), day(until), as_of)
    title = "usage by " + ", ".join(by) if by else "usage"
    emit(render(table, fmt, title), output)
