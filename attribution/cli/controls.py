"""Spend controls and finance views: budgets, audit ips, anomalies, reconcile, export focus.

Read commands here never create warehouse state (see `attribution.api_read`). `budgets` and
`audit ips` exit 1 when a budget is exceeded or an allowlist broken (for cron and CI).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from . import DAY, FILE, date_range_options, day, main, output_format_option, warehouse_option


@main.command()
@warehouse_option
@click.option("--rules", type=FILE, required=True, help="Rule file with `budgets:`.")
@click.option("--at", type=DAY, default=None, help="Evaluate as of the end of this day [default: now].")
@output_format_option
@click.pass_context
def budgets(ctx: click.Context, warehouse: str | None, rules: Path, at: datetime | None, fmt: str) -> None:
    """Spend against each budget, with projected end-of-period spend. Exit 1 if any is exceeded.

    Example: tokentrail budgets --rules rules.yaml --at 2025-03-28
    """
    import pyarrow as pa

    from .. import api
    from ..budgets import as_rows
    from ..output import format_cost, render

    statuses = api.budgets(rules, warehouse, day(at))
    if not statuses:
        click.echo(f"{rules} defines no budgets")
        return
    rows = as_rows(statuses)
    if fmt == "table":  # compact: amounts with their unit, the period by its first day
        def amount(s: Any, v: Any) -> str:
            return f"${format_cost(v)}" if s.unit == "usd" else f"{int(v):,} tokens"

        rows = [{"budget": s.id, "scope": s.scope, "period": s.period, "from": s.period_start[:10],
                 "limit": amount(s, s.limit), "spent": amount(s, s.spent), "projected": amount(s, s.projected),
                 "share": f"{s.share:.1%}", "status": s.status,
                 "crossed": ", ".join(f"{t:.0%}" for t in s.thresholds_crossed)} for s in statuses]
    click.echo(render(pa.Table.from_pylist(rows), fmt, "budgets", align_right=("limit", "spent", "projected", "share")))
    if any(s.status == "exceeded" for s in statuses):
        click.echo("budget exceeded: " + ", ".join(s.id for s in statuses if s.status == "exceeded"), err=True)
        ctx.exit(1)


@main.group()
def audit() -> None:
    """Audits over the warehouse."""


@audit.command("ips")
@warehouse_option
@click.option("--rules", type=FILE, required=True, help="Rule file with `allowlists:`.")
@date_range_options
@output_format_option
@click.pass_context
def audit_ips(ctx: click.Context, warehouse: str | None, rules: Path, since: datetime | None, until: datetime | None,
              fmt: str) -> None:
    """Calls from outside their key's IP allowlist, by key and IP, with first/last seen and cost. Exit 1 on violations.

    Example: tokentrail audit ips --rules rules.yaml --since 2025-03-01
    """
    import pyarrow as pa

    from .. import api
    from ..output import render

    audited = api.audit_ips(rules, warehouse, day(since), day(until))
    result = audited.result
    click.echo(f"checked {result.checked_calls:,} calls against {audited.allowlists} allowlists; "
               f"{result.unknown_ip_calls:,} had no client IP", err=True)
    if not result.violations:
        click.echo("no calls from outside their allowlist")
        return
    click.echo(render(pa.Table.from_pylist(result.violations), fmt, "calls from outside the allowlist",
                      totals=("calls", "cost_usd")))
    ctx.exit(1)


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
@output_format_option
def anomalies(warehouse: str | None, by: str | None, since: datetime | None, metric: str, granularity: str,
              threshold: float, min_ratio: float, fmt: str) -> None:
    """Days (or hours) whose tokens or cost jump far above the same weekday's recent baseline.

    Example: tokentrail anomalies --by key_name --since 2025-03-20
    """
    from .. import api

    found = api.anomalies(warehouse, by, day(since), metric, granularity, threshold, min_ratio)
    if found.history_days < found.needed_days:
        click.echo(f"not enough history: {found.history_days} day(s) of data; spikes can be flagged once there are "
                   f"{found.needed_days} days (three earlier {'same weekdays' if granularity == 'day' else 'days'} "
                   f"as a baseline)")
        return
    if not found.found:
        click.echo(f"no anomalies in {found.history_days} days of data")
        return
    import pyarrow as pa

    from ..anomalies import as_rows
    from ..output import render

    click.echo(render(pa.Table.from_pylist(as_rows(found.found)), fmt, f"anomalies ({metric} per {granularity})"))


@main.command()
@warehouse_option
@click.option("--costs", type=FILE, required=True, help="Costs API pages (JSON) or the dashboard's cost CSV export.")
@click.option("--usage", "usage_file", type=FILE, help="Usage API pages (JSON) to compare token counts too.")
@click.option("--by-project", is_flag=True, help="Compare per project as well as per day and model.")
@click.option("--keys", "keys_file", type=FILE,
              help="Admin API key list (JSON pages with id, redacted_value) to compare per API key too.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Relative difference still called matched.")
@output_format_option
def reconcile(warehouse: str | None, costs: Path, usage_file: Path | None, by_project: bool, keys_file: Path | None,
              tolerance: float, fmt: str) -> None:
    """Compare the provider's own cost (and usage) exports with what tokentrail attributed.

    Example: tokentrail reconcile --costs costs-2025-03.json --usage usage-2025-03.json
    """
    import pyarrow as pa

    from .. import api
    from ..output import format_cost, render

    r = api.reconcile(costs, warehouse, usage_file, by_project, tolerance, keys_file)
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
def export_focus(warehouse: str | None, since: datetime | None, until: datetime | None, output: Path,
                 file_format: str | None) -> None:
    """Write usage as a FinOps FOCUS 1.2 cost and usage dataset (one row per day, model, meter and attribution).

    Example: tokentrail export focus --since 2025-03-01 --until 2025-03-31 --output focus-2025-03.parquet
    """
    from .. import api

    suffix = output.suffix.lower()
    fmt = file_format or ("parquet" if suffix == ".parquet" else "csv" if suffix == ".csv" else None)
    if fmt is None:
        raise click.BadParameter(f"cannot tell the format of {output.name!r}: name it .csv or .parquet, or pass "
                                 f"--file-format", param_hint="--output")
    n = api.export_focus(output, fmt, warehouse, day(since), day(until))
    click.echo(f"wrote {n:,} FOCUS rows to {output}", err=True)
