"""CLI commands beyond ingest/query/attribution: formats (and, as they land, watch and controls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import _fail_cleanly, main, warehouse_option
from .output import render_rich, to_json


@main.group()
def formats() -> None:
    """List, detect and try log formats and mapping profiles."""


@formats.command("list")
def formats_list() -> None:
    """Name, what each format reads, and how it is detected.

    Example: tokentrail formats list
    """
    from ingest.formats import all_formats

    rows = [[f.name, f.description, f.detection] for f in all_formats()]
    rows.append(["profile:FILE", "Custom app logs through a YAML mapping profile", "never auto-detected: --format profile:FILE"])
    click.echo(render_rich(["name", "reads", "detected by"], rows))
    from ingest.wrappers import WRAPPERS

    click.echo("Wrappers taken off each line before the formats above read it (detected per line):")
    click.echo(render_rich(["wrapper", "what it is"], [list(w) for w in WRAPPERS]))


@formats.command("detect")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_fail_cleanly
def formats_detect(files: tuple[Path, ...]) -> None:
    """Which format each file (or each file in a directory) is read as, and the wrapper around its lines.

    Example: tokentrail formats detect sample_logs/
    """
    from ingest.formats.trial import detect_file
    from ingest.sources import discover

    for path in discover(list(files)):
        d, wrapper = detect_file(path)
        name = d.format.name if d.format else ("not a log" if d.not_a_log else "unknown")
        inside = f"\tinside {wrapper}" if wrapper else ""
        click.echo(f"{path}\t{name}\t({d.matched} of {d.sampled} sampled records matched){inside}")


@formats.command("test")
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("logfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lines", "n", default=5, show_default=True, help="How many records to show.")
@_fail_cleanly
def formats_test(profile: Path, logfile: Path, n: int) -> None:
    """Show how the first records of LOGFILE parse with a mapping PROFILE (nothing is written).

    Container and cloud wrappers (Docker, CRI, journald, Cloud Logging, CloudWatch, OTLP) are taken
    off first. Timestamps are shown in ISO 8601 (UTC); profile fields that matched nothing in the
    first 200 records are listed at the end.

    Example: tokentrail formats test my-profile.yaml /var/log/app/calls.log
    """
    from ingest.formats.trial import try_profile

    trial = try_profile(profile, logfile, show=n)
    for line in trial.lines:
        if line.outcome == "call":
            click.echo(f"record {line.index}: " + to_json(line.detail))
        else:
            click.echo(f"record {line.index}: {'would be quarantined' if line.outcome == 'quarantined' else 'skipped'}: "
                       f"{line.reason}")
    if trial.unmatched:
        click.echo(f"fields that matched nothing in {trial.records} records: {', '.join(trial.unmatched)}")
    else:
        click.echo(f"every profile field matched in {trial.records} records")


@formats.command("suggest")
@click.argument("logfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the profile here (default: print it).")
@click.option("--name", default=None, help="Profile name [default: the log file's stem].")
@click.option("--lines", "n", default=200, show_default=True, help="How many lines to sample.")
@_fail_cleanly
def formats_suggest(logfile: Path, output: Path | None, name: str | None, n: int) -> None:
    """Write a starter mapping profile from a sample of LOGFILE: where the key, user, route,
    timestamp and bodies are, with candidate paths and example values (keys shown redacted).

    Example: tokentrail formats suggest app.log -o app-profile.yaml && tokentrail formats test app-profile.yaml app.log
    """
    from ingest.formats.suggest import suggest
    from ingest.formats.trial import read_sample

    records, _ = read_sample(logfile, n)
    s = suggest(records)
    if s.calls == 0:
        raise click.ClickException(f"{logfile}: no OpenAI request or response body found in the first {n} lines; "
                                   "a profile needs at least one call in the sample")
    text = s.profile_yaml(name or logfile.stem)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output} ({s.calls} calls in {s.records} records sampled)", err=True)


# -- watch and compact ---------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@warehouse_option
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Rule file.")
@click.option("--prices", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Price override file.")
@click.option("--format", "log_format", default=None, help="Force a log format or profile:FILE.yaml.")
@click.option("--glob", "pattern", default=None, help="Only files whose name matches, e.g. '*.log'.")
@click.option("--flush-seconds", default=2.0, show_default=True, help="Commit new lines at least this often.")
@click.option("--flush-rows", default=10_000, show_default=True, help="Commit after this many lines.")
@click.option("--read-from", type=click.Choice(["beginning", "end"]), default="beginning", show_default=True,
              help="For files already there at start-up and never seen before: read them whole, or only new lines.")
@click.option("--poll", is_flag=True, help="Poll instead of inotify (network filesystems); automatic if inotify fails.")
@click.option("--once", is_flag=True, help="Process what is there and exit (cron, tests).")
@click.option("--status-seconds", default=10.0, show_default=True, help="Status line interval on a terminal.")
@click.option("--alerts", type=click.Path(dir_okay=False, path_type=Path),
              help="Append a JSON line per budget threshold crossing (needs budgets in --rules).")
@click.option("--max-line-bytes", default=16 << 20, show_default=True, help="Longer lines are quarantined by reference.")
@click.option("--no-system-prompt", is_flag=True, help="Do not store the first 256 characters of system prompts.")
@_fail_cleanly
def watch(paths: tuple[Path, ...], warehouse: Path | None, rules: Path | None, prices: Path | None,
          log_format: str | None, pattern: str | None, flush_seconds: float, flush_rows: int, read_from: str,
          poll: bool, once: bool, status_seconds: float, alerts: Path | None, max_line_bytes: int,
          no_system_prompt: bool) -> None:
    """Tail log directories and commit new calls continuously, exactly once.

    Survives rotation (rename+create, copytruncate, gzip), restarts and SIGKILL. Stops cleanly
    (flush, commit, exit 0) on SIGINT/SIGTERM. Only one writer per warehouse.

    Example: tokentrail watch /var/log/myapp --rules /etc/tokentrail/rules.yaml --glob '*.log'
    """
    import sys

    from ingest.pipeline import IngestOptions
    from ingest.warehouse import Warehouse, default_warehouse
    from ingest.watch import Watcher, WatchOptions

    from .store import attributor, build_engine

    wh = Warehouse(warehouse or default_warehouse())
    with wh.writing("watch"):
        engine = build_engine(wh, rules, prices, remember=True)
        on_commit: Any = None
        if alerts is not None:
            from .budgets import AlertWriter

            writer = AlertWriter(wh.root, engine.ruleset, alerts)
            def on_commit(_result: Any) -> None:
                writer.check()
        ingest_options = IngestOptions(format=log_format, attribute=attributor(engine), glob=pattern,
                                       max_line=max_line_bytes, store_system_prompt=not no_system_prompt)
        options = WatchOptions(glob=pattern, flush_seconds=flush_seconds, flush_rows=flush_rows, read_from=read_from,
                               poll=poll, once=once, status_seconds=status_seconds)
        status = (lambda s: click.echo("\r" + s, err=True)) if sys.stderr.isatty() else None
        watcher = Watcher(wh, list(paths), ingest_options, options, on_commit=on_commit, status=status)
        try:
            stats = watcher.run()
        finally:
            watcher.close()
    click.echo(f"stopped: {stats.calls:,} calls from {stats.lines:,} lines committed, "
               f"{stats.quarantined:,} quarantined", err=True)


@main.command()
@warehouse_option
@click.option("--before", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Compact partitions dated before this day [default: yesterday, UTC].")
@click.option("--min-files", default=4, show_default=True, help="Only partitions with at least this many files.")
@_fail_cleanly
def compact(warehouse: Path | None, before: Any, min_files: int) -> None:
    """Merge the small files of closed partitions into one file each (exactly-once is kept).

    Example: tokentrail compact --before 2025-04-01
    """
    from ingest.compact import compact_closed_partitions
    from ingest.warehouse import Warehouse, default_warehouse

    wh = Warehouse(warehouse or default_warehouse())
    with wh.writing("compact"):
        r = compact_closed_partitions(wh, before.date() if before else None, min_files)
    click.echo(f"compacted {len(r.partitions)} partitions: {r.files_before} files -> {r.files_after}")


# -- spend controls and finance views ------------------------------------------------------------


def _ruleset(warehouse: Path | None, rules: Path):  # type: ignore[no-untyped-def]
    from ingest.warehouse import Warehouse, default_warehouse

    from .rules import load_rules

    wh = Warehouse(warehouse or default_warehouse())
    return wh, load_rules(rules, wh.hasher)


@main.command()
@warehouse_option
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Rule file with `budgets:`.")
@click.option("--at", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Evaluate as of the end of this day [default: now].")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_fail_cleanly
def budgets(warehouse: Path | None, rules: Path, at: Any, fmt: str) -> None:
    """Spend against each budget, with projected end-of-period spend. Exit 1 if any is exceeded.

    Example: tokentrail budgets --rules rules.yaml --at 2025-03-28
    """
    import sys

    import pyarrow as pa

    from .budgets import as_rows, evaluate
    from .output import render

    wh, rs = _ruleset(warehouse, rules)
    statuses = evaluate(wh.root, rs, at.date() if at else None)
    if not statuses:
        click.echo(f"{rules} defines no budgets")
        return
    rows = as_rows(statuses)
    for r in rows:
        r["thresholds_crossed"] = ",".join(str(t) for t in r["thresholds_crossed"])
    click.echo(render(pa.Table.from_pylist(rows), fmt, "budgets"))
    if any(s.status == "exceeded" for s in statuses):
        click.echo("budget exceeded: " + ", ".join(s.id for s in statuses if s.status == "exceeded"), err=True)
        sys.exit(1)


@main.group()
def audit() -> None:
    """Audits over the warehouse."""


@audit.command("ips")
@warehouse_option
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Rule file with `allowlists:`.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day included (UTC).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day included (UTC).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_fail_cleanly
def audit_ips(warehouse: Path | None, rules: Path, since: Any, until: Any, fmt: str) -> None:
    """Calls from outside their key's IP allowlist, by key and IP, with first/last seen and cost. Exit 1 on violations.

    Example: tokentrail audit ips --rules rules.yaml --since 2025-03-01
    """
    import sys

    import pyarrow as pa

    from .audit import audit_ips as run
    from .output import render

    wh, rs = _ruleset(warehouse, rules)
    result = run(wh.root, rs, since.date() if since else None, until.date() if until else None)
    click.echo(f"checked {result.checked_calls:,} calls against {len(rs.allowlists)} allowlists; "
               f"{result.unknown_ip_calls:,} had no client IP", err=True)
    if not result.violations:
        click.echo("no calls from outside their allowlist")
        return
    click.echo(render(pa.Table.from_pylist(result.violations), fmt, "calls from outside the allowlist"))
    sys.exit(1)


@main.command()
@warehouse_option
@click.option("--by", default=None, help="Dimension to watch per value: key_name, feature, end_user, team, model, …")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only report periods from this day.")
@click.option("--metric", type=click.Choice(["tokens", "cost"]), default="tokens", show_default=True)
@click.option("--granularity", type=click.Choice(["day", "hour"]), default="day", show_default=True)
@click.option("--threshold", default=4.0, show_default=True, help="Robust z-score (scales of 1.4826 MAD) to flag.")
@click.option("--min-ratio", default=2.0, show_default=True, help="Also require observed >= this x baseline.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_fail_cleanly
def anomalies(warehouse: Path | None, by: str | None, since: Any, metric: str, granularity: str, threshold: float,
              min_ratio: float, fmt: str) -> None:
    """Days (or hours) whose tokens or cost jump far above the same weekday's recent baseline.

    Example: tokentrail anomalies --by key_name --since 2025-03-20
    """
    import pyarrow as pa

    from ingest.warehouse import default_warehouse

    from .anomalies import as_rows, find_anomalies
    from .output import render

    found = find_anomalies(warehouse or default_warehouse(), by, since.date() if since else None, metric, granularity,
                           threshold, min_ratio)
    if not found:
        click.echo("no anomalies")
        return
    click.echo(render(pa.Table.from_pylist(as_rows(found)), fmt, f"anomalies ({metric} per {granularity})"))


@main.command()
@warehouse_option
@click.option("--costs", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Costs API pages (JSON) or the dashboard's cost CSV export.")
@click.option("--usage", "usage_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Usage API pages (JSON) to compare token counts too.")
@click.option("--by-project", is_flag=True, help="Compare per project as well as per day and model.")
@click.option("--tolerance", default=0.02, show_default=True, help="Relative difference still called matched.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_fail_cleanly
def reconcile(warehouse: Path | None, costs: Path, usage_file: Path | None, by_project: bool, tolerance: float,
              fmt: str) -> None:
    """Compare the provider's own cost (and usage) exports with what tokentrail attributed.

    Example: tokentrail reconcile --costs costs-2025-03.json --usage usage-2025-03.json
    """
    import pyarrow as pa

    from ingest.warehouse import default_warehouse

    from .output import render
    from .reconcile import reconcile as run

    r = run(warehouse or default_warehouse(), costs, usage_file, by_project, tolerance)
    click.echo(render(pa.Table.from_pylist(r.rows), fmt, "provider vs tokentrail"))
    click.echo(f"provider ${r.provider_usd:,.4f}, tokentrail ${r.tokentrail_usd:,.4f}; {r.matched} matched, {r.over} over, "
               f"{r.under} under; share of spend tokentrail cannot see: {r.unseen_share:.1%}", err=True)
