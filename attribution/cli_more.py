"""CLI commands beyond ingest/query/attribution: formats (and, as they land, watch and controls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import _fail_cleanly, main, sources_option, warehouse_option
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

    skipped: list[tuple[Path, str]] = []
    for path in discover(list(files), skipped=skipped):
        try:
            d, wrapper = detect_file(path)
        except OSError as exc:  # e.g. replaced by a FIFO since discovery
            click.echo(f"{path}\tskipped\t({exc.strerror or exc})")
            continue
        name = d.format.name if d.format else ("not a log" if d.not_a_log else "unknown")
        inside = f"\tinside {wrapper}" if wrapper else ""
        click.echo(f"{path}\t{name}\t({d.matched} of {d.sampled} sampled records matched){inside}")
    for path, why in skipped:
        click.echo(f"{path}\tskipped\t({why})")


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
    from ingest.keys import scrub_text

    trial = try_profile(profile, logfile, show=n)
    for line in trial.lines:
        if line.outcome == "call":
            click.echo(f"record {line.index}: " + scrub_text(to_json(line.detail)))
        else:
            click.echo(f"record {line.index}: {'would be quarantined' if line.outcome == 'quarantined' else 'skipped'}: "
                       f"{scrub_text(str(line.reason))}")
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
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@warehouse_option
@sources_option
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
def watch(paths: tuple[Path, ...], warehouse: str | None, sources_file: Path | None, rules: Path | None,
          prices: Path | None,
          log_format: str | None, pattern: str | None, flush_seconds: float, flush_rows: int, read_from: str,
          poll: bool, once: bool, status_seconds: float, alerts: Path | None, max_line_bytes: int,
          no_system_prompt: bool) -> None:
    """Tail log directories and commit new calls continuously, exactly once.

    Survives rotation (rename+create, copytruncate, gzip), restarts and SIGKILL. Stops cleanly
    (flush, commit, exit 0) on SIGINT/SIGTERM. Many watchers (one per host) may write one
    warehouse, local or in object storage.

    Example: tokentrail watch /var/log/myapp --rules /etc/tokentrail/rules.yaml --glob '*.log'
    """
    import signal
    import sys
    import threading

    from ingest.pipeline import IngestOptions
    from ingest.watch import WatchOptions

    from .api import make_watcher, run_watcher

    stopping = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)  # before start-up work, so an early SIGTERM is clean too
    signal.signal(signal.SIGINT, stop)
    from .cli import _paths_and_sources

    path_list, sources = _paths_and_sources(paths, sources_file)
    ingest_options = IngestOptions(format=log_format, sources=sources, glob=pattern, max_line=max_line_bytes,
                                   store_system_prompt=not no_system_prompt)
    options = WatchOptions(glob=pattern, flush_seconds=flush_seconds, flush_rows=flush_rows, read_from=read_from,
                           poll=poll, once=once, status_seconds=status_seconds)
    watcher, engine, store = make_watcher(path_list, warehouse, rules, prices, ingest_options, options)
    watcher.stop = stopping
    alert_writer: Any = None
    if alerts is not None:
        from .budgets import AlertWriter

        alert_writer = AlertWriter(store, engine.ruleset, alerts)
    stats = None
    for tick in run_watcher(watcher, engine, store):
        stats = tick.stats
        if tick.status_line and sys.stderr.isatty():
            click.echo("\r" + tick.status_line, err=True)
        if alert_writer is not None:
            alert_writer.check(force=tick.final)
    assert stats is not None
    click.echo(f"stopped: {stats.calls:,} calls from {stats.lines:,} lines committed, "
               f"{stats.quarantined:,} quarantined", err=True)


@main.command()
@warehouse_option
@click.option("--vacuum-hours", type=click.IntRange(0, None), default=168, show_default=True,
              help="Then delete files unreferenced for this long (0 disables --as-of into the past).")
@click.option("--no-vacuum", is_flag=True, help="Only compact; delete nothing.")
@_fail_cleanly
def compact(warehouse: str | None, vacuum_hours: int, no_vacuum: bool) -> None:
    """Merge small files (Delta optimize) and delete unreferenced old ones (vacuum). Safe while others write.

    Example: tokentrail compact --vacuum-hours 168
    """
    from ingest.store import Store, default_location

    store = Store(warehouse or default_location()).require()
    done = store.optimize()
    for name, m in done.items():
        if m["removed"]:
            click.echo(f"{name}: {m['removed']} files -> {m['added']}")
    if not no_vacuum:
        removed = store.vacuum(vacuum_hours)
        click.echo(f"vacuum: removed {sum(removed.values())} files older than {vacuum_hours} h")


# -- spend controls and finance views ------------------------------------------------------------


def _ruleset(warehouse: str | None, rules: Path):  # type: ignore[no-untyped-def]
    from ingest.store import Store, default_location

    from .rules import load_rules

    store = Store(warehouse or default_location()).require()
    return store, load_rules(rules, store.hasher)


@main.command()
@warehouse_option
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Rule file with `budgets:`.")
@click.option("--at", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Evaluate as of the end of this day [default: now].")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_fail_cleanly
def budgets(warehouse: str | None, rules: Path, at: Any, fmt: str) -> None:
    """Spend against each budget, with projected end-of-period spend. Exit 1 if any is exceeded.

    Example: tokentrail budgets --rules rules.yaml --at 2025-03-28
    """
    import sys

    import pyarrow as pa

    from .budgets import as_rows, evaluate
    from .output import render

    store, rs = _ruleset(warehouse, rules)
    statuses = evaluate(store, rs, at.date() if at else None)
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
def audit_ips(warehouse: str | None, rules: Path, since: Any, until: Any, fmt: str) -> None:
    """Calls from outside their key's IP allowlist, by key and IP, with first/last seen and cost. Exit 1 on violations.

    Example: tokentrail audit ips --rules rules.yaml --since 2025-03-01
    """
    import sys

    import pyarrow as pa

    from .audit import audit_ips as run
    from .output import render

    store, rs = _ruleset(warehouse, rules)
    result = run(store, rs, since.date() if since else None, until.date() if until else None)
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
def anomalies(warehouse: str | None, by: str | None, since: Any, metric: str, granularity: str, threshold: float,
              min_ratio: float, fmt: str) -> None:
    """Days (or hours) whose tokens or cost jump far above the same weekday's recent baseline.

    Example: tokentrail anomalies --by key_name --since 2025-03-20
    """
    import pyarrow as pa

    from .anomalies import as_rows, find_anomalies
    from .cli import _store
    from .output import render

    found = find_anomalies(_store(warehouse), by, since.date() if since else None, metric, granularity,
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
def reconcile(warehouse: str | None, costs: Path, usage_file: Path | None, by_project: bool, tolerance: float,
              fmt: str) -> None:
    """Compare the provider's own cost (and usage) exports with what tokentrail attributed.

    Example: tokentrail reconcile --costs costs-2025-03.json --usage usage-2025-03.json
    """
    import pyarrow as pa

    from .cli import _store
    from .output import render
    from .reconcile import reconcile as run

    r = run(_store(warehouse), costs, usage_file, by_project, tolerance)
    click.echo(render(pa.Table.from_pylist(r.rows), fmt, "provider vs tokentrail"))
    click.echo(f"provider ${r.provider_usd:,.4f}, tokentrail ${r.tokentrail_usd:,.4f}; {r.matched} matched, {r.over} over, "
               f"{r.under} under; share of spend tokentrail cannot see: {r.unseen_share:.1%}", err=True)
