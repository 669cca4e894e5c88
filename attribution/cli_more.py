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
@click.option("--webhook", "webhooks", multiple=True, envvar="TOKENTRAIL_WEBHOOKS",
              help="POST each budget alert to this URL (Slack-compatible body); repeatable. The URL is often a "
                   "secret: prefer $TOKENTRAIL_WEBHOOKS (space-separated) to the command line.")
@click.option("--webhook-body", type=click.Choice(["slack", "json"]), default="slack", show_default=True,
              help="slack: {\"text\": …}; json: the whole alert object.")
@click.option("--alert-seconds", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Evaluate budgets this often (and at shutdown), with or without new lines.")
@click.option("--alert-state", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where delivered alerts are remembered [default: ~/.local/state/tokentrail/alerts-<warehouse>.json].")
@click.option("--metrics", "metrics_addr", default=None, metavar="HOST:PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics.")
@click.option("--max-line-bytes", default=16 << 20, show_default=True, help="Longer lines are quarantined by reference.")
@click.option("--no-system-prompt", is_flag=True, help="Do not store the first 256 characters of system prompts.")
@_fail_cleanly
def watch(paths: tuple[Path, ...], warehouse: str | None, sources_file: Path | None, rules: Path | None,
          prices: Path | None,
          log_format: str | None, pattern: str | None, flush_seconds: float, flush_rows: int, read_from: str,
          poll: bool, once: bool, status_seconds: float, alerts: Path | None, webhooks: tuple[str, ...],
          webhook_body: str, alert_seconds: float, alert_state: Path | None, metrics_addr: str | None,
          max_line_bytes: int, no_system_prompt: bool) -> None:
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
    from .cli import _paths_and_sources, check_log_format

    check_log_format(log_format)
    path_list, sources = _paths_and_sources(paths, sources_file)
    ingest_options = IngestOptions(format=log_format, sources=sources, glob=pattern, max_line=max_line_bytes,
                                   store_system_prompt=not no_system_prompt)
    options = WatchOptions(glob=pattern, flush_seconds=flush_seconds, flush_rows=flush_rows, read_from=read_from,
                           poll=poll, once=once, status_seconds=status_seconds)
    watcher, engine, store = make_watcher(path_list, warehouse, rules, prices, ingest_options, options)
    watcher.stop = stopping
    from .alerts import alert_loop_for_watch
    from .metrics import metrics_for_watch

    # polled on every watcher pass (about once a second, traffic or not): no second thread reads the tables
    loop = alert_loop_for_watch(store, engine.ruleset, alerts, webhooks, webhook_body, alert_seconds, alert_state,
                                lambda m: click.echo(m, err=True), start=False)
    metrics = metrics_for_watch(metrics_addr, store)
    stats = None
    try:
        for tick in run_watcher(watcher, engine, store):
            stats = tick.stats
            if metrics is not None:
                for res in tick.results:
                    metrics.observe(res)
            if tick.status_line and sys.stderr.isatty():
                click.echo("\r" + tick.status_line, err=True)
            if loop is not None and not tick.final:
                loop.poll()
    finally:
        if loop is not None:
            loop.stop()
        if metrics is not None:
            metrics.close()
    assert stats is not None
    click.echo(f"stopped: {stats.calls:,} calls from {stats.lines:,} lines committed, "
               f"{stats.quarantined:,} quarantined", err=True)
    if stats.calls:
        click.echo(f"coverage: calls with {stats.coverage()}", err=True)


@main.command()
@warehouse_option
@click.option("--vacuum-hours", type=click.IntRange(0, None), default=168, show_default=True,
              help="Then delete files unreferenced for this long (0 disables --as-of into the past).")
@click.option("--no-vacuum", is_flag=True, help="Only compact; delete nothing.")
@_fail_cleanly
def compact(warehouse: str | None, vacuum_hours: int, no_vacuum: bool) -> None:
    """Merge small files (Delta optimize), prune old source records, delete unreferenced old files (vacuum).

    Safe while others write; `watch` also compacts hourly.

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
