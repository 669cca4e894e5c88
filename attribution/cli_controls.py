"""CLI for spend controls and finance views: budgets, audit ips, anomalies, reconcile, export, rules sql.

Read commands here never create warehouse state: the rule file is loaded with the
warehouse's existing key secret, or with a throwaway one when there is none yet.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .cli import DAY, _day, _fail_cleanly, date_range_options, main, rules, warehouse_option
from .output import FORMATS

FORMAT = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                      help="Output format (CSV has one header row).")
RULES_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _root(warehouse: str | None) -> Any:
    """The warehouse for a read command: it must exist (a typo must not read as an empty warehouse)."""
    from .cli import _store

    return _store(warehouse)


def load_rules_read_only(root: Any, rules_path: Path):  # type: ignore[no-untyped-def]
    from .budgets import read_only_ruleset

    return read_only_ruleset(root, rules_path)


@main.command()
@warehouse_option
@click.option("--rules", type=RULES_FILE, required=True, help="Rule file with `budgets:`.")
@click.option("--at", type=DAY, default=None, help="Evaluate as of the end of this day [default: now].")
@FORMAT
@_fail_cleanly
def budgets(warehouse: str | None, rules: Path, at: Any, fmt: str) -> None:
    """Spend against each budget, with projected end-of-period spend. Exit 1 if any is exceeded.

    Example: tokentrail budgets --rules rules.yaml --at 2025-03-28
    """
    import pyarrow as pa

    from .budgets import as_rows, evaluate
    from .output import render

    root = _root(warehouse)
    rs = load_rules_read_only(root, rules)
    statuses = evaluate(root, rs, _day(at))
    if not statuses:
        click.echo(f"{rules} defines no budgets")
        return
    rows = as_rows(statuses)
    if fmt == "table":  # compact: amounts with their unit, the period by its first day
        from .output import format_cost

        def amount(s: Any, v: Any) -> str:
            return f"${format_cost(v)}" if s.unit == "usd" else f"{int(v):,} tokens"

        rows = [{"budget": s.id, "scope": s.scope, "period": s.period, "from": s.period_start[:10],
                 "limit": amount(s, s.limit), "spent": amount(s, s.spent), "projected": amount(s, s.projected),
                 "share": f"{s.share:.1%}", "status": s.status,
                 "crossed": ", ".join(f"{t:.0%}" for t in s.thresholds_crossed)} for s in statuses]
    click.echo(render(pa.Table.from_pylist(rows), fmt, "budgets", align_right=("limit", "spent", "projected", "share")))
    if any(s.status == "exceeded" for s in statuses):
        click.echo("budget exceeded: " + ", ".join(s.id for s in statuses if s.status == "exceeded"), err=True)
        sys.exit(1)


@main.group()
def audit() -> None:
    """Audits over the warehouse."""


@audit.command("ips")
@warehouse_option
@click.option("--rules", type=RULES_FILE, required=True, help="Rule file with `allowlists:`.")
@date_range_options
@FORMAT
@_fail_cleanly
def audit_ips(warehouse: str | None, rules: Path, since: Any, until: Any, fmt: str) -> None:
    """Calls from outside their key's IP allowlist, by key and IP, with first/last seen and cost. Exit 1 on violations.

    Example: tokentrail audit ips --rules rules.yaml --since 2025-03-01
    """
    import pyarrow as pa

    from .audit import audit_ips as run
    from .output import render

    root = _root(warehouse)
    rs = load_rules_read_only(root, rules)
    result = run(root, rs, _day(since), _day(until))
    click.echo(f"checked {result.checked_calls:,} calls against {len(rs.allowlists)} allowlists; "
               f"{result.unknown_ip_calls:,} had no client IP", err=True)
    if not result.violations:
        click.echo("no calls from outside their allowlist")
        return
    click.echo(render(pa.Table.from_pylist(result.violations), fmt, "calls from outside the allowlist",
                      totals=("calls", "cost_usd")))
    sys.exit(1)


@main.command()
@warehouse_option
@click.option("--by", default=None, help="Dimension to watch per value: key_name, feature, end_user, team, model, …")
@click.option("--since", type=DAY, default=None, help="Only report periods from this day.")
@click.option("--metric", type=click.Choice(["tokens", "cost"]), default="tokens", show_default=True)
@click.option("--granularity", type=click.Choice(["day", "hour"]), default="day", show_default=True)
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="Robust z-score (scales of 1.4826 MAD) to flag.")
@click.option("--min-ratio", type=click.FloatRange(min=1), default=2.0, show_default=True,
              help="Also require observed >= this x baseline.")
@FORMAT
@_fail_cleanly
def anomalies(warehouse: str | None, by: str | None, since: Any, metric: str, granularity: str, threshold: float,
              min_ratio: float, fmt: str) -> None:
    """Days (or hours) whose tokens or cost jump far above the same weekday's recent baseline.

    Example: tokentrail anomalies --by key_name --since 2025-03-20
    """
    import pyarrow as pa

    from .anomalies import as_rows, find_anomalies, history
    from .output import render

    root = _root(warehouse)
    have, need = history(root, granularity)
    if have < need:
        click.echo(f"not enough history: {have} day(s) of data; spikes can be flagged once there are {need} days "
                   f"(three earlier {'same weekdays' if granularity == 'day' else 'days'} as a baseline)")
        return
    found = find_anomalies(root, by, _day(since), metric, granularity, threshold, min_ratio)
    if not found:
        click.echo(f"no anomalies in {have} days of data")
        return
    click.echo(render(pa.Table.from_pylist(as_rows(found)), fmt, f"anomalies ({metric} per {granularity})"))


@main.command()
@warehouse_option
@click.option("--costs", type=RULES_FILE, required=True, help="Costs API pages (JSON) or the dashboard's cost CSV export.")
@click.option("--usage", "usage_file", type=RULES_FILE, help="Usage API pages (JSON) to compare token counts too.")
@click.option("--by-project", is_flag=True, help="Compare per project as well as per day and model.")
@click.option("--keys", "keys_file", type=RULES_FILE,
              help="Admin API key list (JSON pages with id, redacted_value) to compare per API key too.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Relative difference still called matched.")
@FORMAT
@_fail_cleanly
def reconcile(warehouse: str | None, costs: Path, usage_file: Path | None, by_project: bool, keys_file: Path | None,
              tolerance: float, fmt: str) -> None:
    """Compare the provider's own cost (and usage) exports with what tokentrail attributed.

    Example: tokentrail reconcile --costs costs-2025-03.json --usage usage-2025-03.json
    """
    import pyarrow as pa

    from .output import format_cost, render
    from .reconcile import reconcile as run

    r = run(_root(warehouse), costs, usage_file, by_project, tolerance, keys_file=keys_file)
    click.echo(render(pa.Table.from_pylist(r.rows), fmt, "provider vs tokentrail",
                      totals=("provider_usd", "tokentrail_usd", "diff_usd")))
    click.echo(f"provider ${format_cost(r.provider_usd)}, tokentrail ${format_cost(r.tokentrail_usd)}; "
               f"{r.matched} matched, {r.over} over, {r.under} under; "
               f"share of spend tokentrail cannot see: {r.unseen_share:.1%}", err=True)


@main.group()
def export() -> None:
    """Export usage to other tools' formats."""


@export.command("focus")
@warehouse_option
@date_range_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write: .csv or .parquet.")
@click.option("--file-format", type=click.Choice(["csv", "parquet"]), default=None,
              help="Override the format chosen by the --output suffix.")
@_fail_cleanly
def export_focus(warehouse: str | None, since: Any, until: Any, output: Path, file_format: str | None) -> None:
    """Write usage as a FinOps FOCUS 1.2 cost and usage dataset (one row per day, model, meter and attribution).

    Example: tokentrail export focus --since 2025-03-01 --until 2025-03-31 --output focus-2025-03.parquet
    """
    from .export import export_focus as run

    fmt = file_format or ("parquet" if output.suffix.lower() == ".parquet" else "csv" if output.suffix.lower() == ".csv"
                          else None)
    if fmt is None:
        raise click.BadParameter(f"cannot tell the format of {output.name!r}: name it .csv or .parquet, or pass "
                                 f"--file-format", param_hint="--output")
    n = run(_root(warehouse), output, fmt, _day(since), _day(until))
    click.echo(f"wrote {n:,} FOCUS rows to {output}", err=True)


@rules.command("sql")
@click.argument("file", type=RULES_FILE)
@warehouse_option
@click.option("--dialect", type=click.Choice(["duckdb", "spark", "trino", "bigquery", "snowflake"]), required=True,
              help="SQL dialect of the engine that will run the view.")
@click.option("--prices", type=RULES_FILE, help="Price override file.")
@click.option("--view", "view_name", default="tokentrail_usage", show_default=True, help="Name of the view to create.")
@click.option("--source", "source_table", default="calls", show_default=True,
              help="Table (or Delta path expression) holding the calls.")
@_fail_cleanly
def rules_sql(file: Path, warehouse: str | None, dialect: str, prices: Path | None, view_name: str,
              source_table: str) -> None:
    """Emit the rules and prices as one SQL view over the calls table, for Spark, Databricks, Trino, …

    Prices are inlined for the models and days the warehouse has seen (the last known price
    stays in force for later days).

    Example: tokentrail rules sql rules.yaml --dialect spark > tokentrail_usage.sql
    """
    from .pricing import Pricer, load_price_file
    from .rules_sql import create_view_sql

    root = _root(warehouse)
    rs = load_rules_read_only(root, file)
    pricer = Pricer(*load_price_file(prices)) if prices else Pricer()
    click.echo(create_view_sql(root, rs, pricer, dialect, view_name, source_table))
