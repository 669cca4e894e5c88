"""Commands about rule files and applying them: rules check/explain/coverage/sql, reattribute."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from . import FILE, date_range_options, day, main, output_format_option, warehouse_option


@main.command()
@warehouse_option
@click.option("--rules", type=FILE, required=True, help="The new rule file.")
@click.option("--prices", type=FILE, help="Price override file.")
@date_range_options
@click.option("--dry-run", is_flag=True, help="Show what would move (attribution and cost); write nothing.")
@output_format_option
def reattribute(warehouse: str | None, rules: Path, prices: Path | None, since: datetime | None,
                until: datetime | None, dry_run: bool, fmt: str) -> None:
    """Recompute usage from calls with new rules (and prices): one atomic commit for the whole range.

    Readers see the old numbers or the new ones, never a mix; `sql --as-of VERSION` still shows
    the old ones. Safe while `watch` runs.

    Example: tokentrail reattribute --rules rules.yaml --since 2025-01-01 --dry-run
    """
    from .. import api

    if dry_run:
        result = api.reattribute(rules, warehouse, prices, day(since), day(until), dry_run=True)
        click.echo(f"dry run: {len(result.partitions)} partitions, {result.rows:,} calls; "
                   f"ruleset {result.ruleset_hash}; nothing written", err=True)
        if result.moves:
            import pyarrow as pa

            from ..output import render

            click.echo(render(pa.Table.from_pylist(result.moves), fmt, "what would move"))
        else:
            click.echo("no attribution would change")
        return
    result = api.reattribute(rules, warehouse, prices, day(since), day(until),
                             progress=lambda d, n: click.echo(f"  {d}: {n:,} calls", err=True))
    rate = result.rows / result.seconds if result.seconds else 0
    click.echo(f"re-attributed {result.rows:,} calls over {len(result.partitions)} days in one commit "
               f"(usage version {result.version}) in {result.seconds:.2f}s ({rate:,.0f} rows/s); "
               f"ruleset {result.ruleset_hash}")


@main.group()
def rules() -> None:
    """Check, explain and measure rule files."""


@rules.command("check")
@click.argument("file", type=FILE)
@warehouse_option
def rules_check(file: Path, warehouse: str | None) -> None:
    """Validate a rule file and list its rules in evaluation order.

    Example: tokentrail rules check sample_logs/rules.yaml
    """
    from .. import api

    rs = api.check_rules(file, warehouse)
    click.echo(f"{file}: valid; ruleset {rs.hash}; {rs.rule_count} rules, "
               f"{len(rs.budgets)} budgets, {len(rs.allowlists)} allowlists")
    for dim, items in rs.dimensions.items():
        default = rs.defaults.get(dim, "unattributed")
        click.echo(f"  {dim} (default {default!r}): " + (", ".join(r.id for r in items) or "no rules"))


@rules.command("explain")
@click.argument("file", type=FILE)
@click.option("--call", "call_id", required=True, help="The call_id to explain.")
@warehouse_option
def rules_explain(file: Path, call_id: str, warehouse: str | None) -> None:
    """Show which rule decided each dimension of one call, and why.

    Example: tokentrail rules explain rules.yaml --call chatcmpl-abc123
    """
    from .. import api
    from ..output import to_json

    click.echo(to_json(api.explain_call(file, call_id, warehouse)))


@rules.command("coverage")
@click.argument("file", type=FILE)
@warehouse_option
def rules_coverage(file: Path, warehouse: str | None) -> None:
    """Share of calls, tokens and cost each dimension leaves at its default, and the top unmatched values.

    Example: tokentrail rules coverage sample_logs/rules.yaml
    """
    from .. import api
    from ..output import render_rich

    rows = [[c.dimension, f"{c.calls_share:.1%}", f"{c.tokens_share:.1%}", f"{c.cost_share:.1%}",
             ", ".join(f"{v} ({n})" for v, n in c.top_unmatched)] for c in api.rules_coverage(file, warehouse)]
    click.echo(render_rich(["dimension", "calls at default", "tokens", "cost", "top unmatched"], rows,
                           "left at defaults"))


@rules.command("sql")
@click.argument("file", type=FILE)
@warehouse_option
@click.option("--dialect", type=click.Choice(["duckdb", "spark", "trino", "bigquery", "snowflake"]), required=True,
              help="SQL dialect of the engine that will run the view.")
@click.option("--prices", type=FILE, help="Price override file.")
@click.option("--view", "view_name", default="tokentrail_usage", show_default=True, help="Name of the view to create.")
@click.option("--source", "source_table", default="calls", show_default=True,
              help="Table (or Delta path expression) holding the calls.")
def rules_sql(file: Path, warehouse: str | None, dialect: str, prices: Path | None, view_name: str,
              source_table: str) -> None:
    """Emit the rules and prices as one SQL view over the calls table, for Spark, Databricks, Trino, …

    Prices are inlined for the models and days the warehouse has seen (the last known price
    stays in force for later days).

    Example: tokentrail rules sql rules.yaml --dialect spark > tokentrail_usage.sql
    """
    from .. import api

    click.echo(api.rules_sql(file, dialect, warehouse, prices, view_name, source_table))
