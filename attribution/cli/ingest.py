"""Commands that read logs into the warehouse: ingest, watch, compact."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import FILE, checked, main, warehouse_option


def sources_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--sources", "sources_file", type=FILE,
                        help="Sources file: path/glob -> format or profile, plus static tags; its paths are read "
                             "when no PATH is given.")(fn)


def reading_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What `ingest` and `watch` both take: the rules and prices to attribute with, which format, which files."""
    for option in reversed([
        click.option("--rules", type=FILE,
                     help="Rule file to attribute with [default: the one last used on this warehouse]."),
        click.option("--prices", type=FILE, help="Price override file (YAML) that wins over the bundled price table."),
        click.option("--format", "log_format", default=None,
                     help="Force a log format (see `tokentrail formats list`) or profile:FILE.yaml; "
                          "default: detect per file."),
        click.option("--glob", "pattern", default=None, help="Only files whose name matches, e.g. '*.jsonl'."),
    ]):
        fn = option(fn)
    return fn


def check_log_format(log_format: str | None) -> None:
    """An unknown --format is a bad flag (exit 2), found before any file is read or worker started."""
    if log_format is None:
        return
    from ingest.errors import FormatError
    from ingest.formats import get_format

    try:
        get_format(log_format)
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from None


def paths_and_sources(paths: tuple[Path, ...], sources_file: Path | None) -> tuple[list[Path], Any]:
    """PATHs given, else the sources file's paths; and the loaded sources file (or None)."""
    sources = None
    if sources_file is not None:
        from ingest.sources_file import load_sources

        sources = load_sources(sources_file)
    if not paths:
        if sources is None:
            raise click.UsageError("give PATH... or --sources FILE")
        import glob as globbing

        expanded: list[Path] = []
        for entry in sources.paths():
            if any(ch in entry for ch in "*?["):
                expanded += [Path(p) for p in sorted(globbing.glob(entry, recursive=True))]
            elif Path(entry).exists():
                expanded.append(Path(entry))
            else:
                raise click.BadParameter(f"{entry}: no such file or directory", param_hint="--sources")
        if not expanded:
            raise click.BadParameter(f"{sources_file}: no file matches any of its paths", param_hint="--sources")
        paths = tuple(expanded)
    return list(paths), sources


class ProgressBar:
    """A rich progress bar on a terminal, silent otherwise (`attribution.api.Progress`)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def start(self, total_bytes: int) -> None:
        if not sys.stderr.isatty() or total_bytes == 0:
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=total_bytes)

    def advance(self, n_bytes: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n_bytes)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- ingest ---------------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@warehouse_option
@sources_option
@reading_options
@click.option("--no-system-prompt", is_flag=True, help="Do not store the first 256 characters of system prompts.")
@click.option("--no-estimate", is_flag=True,
              help="Do not re-count tokens a log lacks: they stay empty (token_source 'missing').")
@click.option("--quarantine-raw-bytes", type=click.IntRange(0, 1 << 20), default=4096, show_default=True,
              help="Raw bytes of a bad line kept in quarantine (keys scrubbed); 0 keeps none.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Worker processes for many files [default: the number of CPUs].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(paths: tuple[Path, ...], warehouse: str | None, sources_file: Path | None, rules: Path | None,
           prices: Path | None, log_format: str | None, pattern: str | None, no_system_prompt: bool,
           no_estimate: bool, quarantine_raw_bytes: int, jobs: int | None, as_json: bool) -> None:
    """Ingest log files and directories (recursively, .gz too) into the warehouse.

    Re-running over the same files adds nothing; appended lines are picked up from each
    file's offset, which commits with its rows. Several ingests and watchers may write one
    warehouse at once. Lines that cannot be parsed go to the quarantine table.

    Example: tokentrail ingest sample_logs/ --rules sample_logs/rules.yaml
    """
    from ingest.coverage import coverage_summary
    from ingest.keys import scrub_text
    from ingest.pipeline import IngestOptions

    from .. import api
    from ..output import to_json

    check_log_format(log_format)
    path_list, sources = paths_and_sources(paths, sources_file)
    options = IngestOptions(format=log_format, sources=sources, store_system_prompt=not no_system_prompt, glob=pattern,
                            jobs=jobs or os.cpu_count() or 1, quarantine_raw_bytes=quarantine_raw_bytes,
                            estimate=not no_estimate)
    with ProgressBar("ingest") as bar:
        report = api.ingest(path_list, warehouse, rules, prices, options, progress=bar)
    summary = report.summary
    data = report.as_dict()
    cov_line, cov_warnings = coverage_summary(summary.files)
    data["coverage"] = {"line": cov_line, "warnings": cov_warnings}
    if as_json:
        click.echo(to_json(data))
        return
    mb = summary.bytes_read / 1e6
    click.echo(
        f"{data['files']} files, {data['lines']:,} lines, {data['calls']:,} calls "
        f"({data['estimated']:,} estimated), {data['quarantined']:,} quarantined, {data['skipped']:,} skipped; "
        f"{data['input_tokens']:,} input / {data['output_tokens']:,} output tokens; "
        f"{mb:.1f} MB in {summary.seconds:.1f}s"
    )
    click.echo(cov_line)
    for w in cov_warnings:
        click.echo(f"  warning: {w}", err=True)
    for f in summary.files:
        if f.note or f.held_bytes:
            held = ""
            if f.held_record:
                held = (f"holding {f.held_bytes} bytes of an unfinished stream (read as interrupted once the file is "
                        f"unchanged for {options.open_record_timeout / 60:g} min)")
            elif f.held_bytes:
                held = f"holding {f.held_bytes} bytes of a partial last line"
            said = "; ".join(part for part in (f.note, held) if part)
            click.echo(scrub_text(f"  {f.path}: {said}"), err=True)
    if data["quarantined"]:
        click.echo("  see quarantined lines: tokentrail sql \"select source_file, source_offset, reason from quarantine\"",
                   err=True)
    if report.unpriced_models:
        click.echo(f"  no price for: {', '.join(report.unpriced_models)} (cost left NULL; add them with --prices)",
                   err=True)


# -- watch and compact ----------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@warehouse_option
@sources_option
@reading_options
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
              callback=checked("attribution.alerts", "check_webhook_url"),
              help="POST each budget alert to this URL (Slack-compatible body); repeatable. The URL is often a "
                   "secret: prefer $TOKENTRAIL_WEBHOOKS (space-separated) to the command line.")
@click.option("--webhook-body", type=click.Choice(["slack", "json"]), default="slack", show_default=True,
              help="slack: {\"text\": …}; json: the whole alert object.")
@click.option("--alert-seconds", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Evaluate budgets this often (and at shutdown), with or without new lines.")
@click.option("--alert-state", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A JSON file remembering delivered alerts, for this watcher only [default: the warehouse's "
                   "_meta table, shared by every watcher of the warehouse].")
@click.option("--metrics", "metrics_addr", default=None, metavar="HOST:PORT",
              callback=checked("attribution.metrics", "parse_address"),
              help="Serve Prometheus metrics at http://HOST:PORT/metrics.")
@click.option("--max-line-bytes", default=16 << 20, show_default=True, help="Longer lines are quarantined by reference.")
@click.option("--no-system-prompt", is_flag=True, help="Do not store the first 256 characters of system prompts.")
@click.option("--no-estimate", is_flag=True,
              help="Do not re-count tokens a log lacks: they stay empty (token_source 'missing').")
def watch(paths: tuple[Path, ...], warehouse: str | None, sources_file: Path | None, rules: Path | None,
          prices: Path | None, log_format: str | None, pattern: str | None, flush_seconds: float, flush_rows: int,
          read_from: str, poll: bool, once: bool, status_seconds: float, alerts: Path | None, webhooks: tuple[str, ...],
          webhook_body: str, alert_seconds: float, alert_state: Path | None, metrics_addr: str | None,
          max_line_bytes: int, no_system_prompt: bool, no_estimate: bool) -> None:
    """Tail log directories and commit new calls continuously, exactly once.

    Survives rotation (rename+create, copytruncate, gzip), restarts and SIGKILL. Stops cleanly
    (flush, commit, exit 0) on SIGINT/SIGTERM. Many watchers (one per host) may write one
    warehouse, local or in object storage.

    Example: tokentrail watch /var/log/myapp --rules /etc/tokentrail/rules.yaml --glob '*.log'
    """
    import signal
    import threading

    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)  # before start-up work, so an early SIGTERM is clean too
    signal.signal(signal.SIGINT, stop)

    from ingest.pipeline import IngestOptions
    from ingest.watch import WatchOptions

    from .. import api

    check_log_format(log_format)
    path_list, sources = paths_and_sources(paths, sources_file)
    ingest_options = IngestOptions(format=log_format, sources=sources, glob=pattern, max_line=max_line_bytes,
                                   store_system_prompt=not no_system_prompt, estimate=not no_estimate)
    options = WatchOptions(glob=pattern, flush_seconds=flush_seconds, flush_rows=flush_rows, read_from=read_from,
                           poll=poll, once=once, status_seconds=status_seconds)
    alerting = api.AlertSettings(alerts, webhooks, webhook_body, alert_seconds, alert_state)
    stats = None
    ticks = api.watch(path_list, warehouse, rules, prices, ingest_options, options, stop=stopping, alerts=alerting,
                      metrics_addr=metrics_addr, on_message=lambda m: click.echo(m, err=True))
    with contextlib.closing(ticks):  # alerts and the metrics endpoint stop now, even if rendering fails
        for tick in ticks:
            stats = tick.stats
            if tick.status_line and sys.stderr.isatty():
                click.echo("\r" + tick.status_line, err=True)
    assert stats is not None  # the watcher always ends with a final tick
    click.echo(f"stopped: {stats.calls:,} calls from {stats.lines:,} lines committed, "
               f"{stats.quarantined:,} quarantined", err=True)
    if stats.calls:
        click.echo(f"coverage: calls with {stats.coverage()}", err=True)


@main.command()
@warehouse_option
@click.option("--vacuum-hours", type=click.IntRange(0, None), default=168, show_default=True,
              help="Then delete files unreferenced for this long (0 disables --as-of into the past).")
@click.option("--no-vacuum", is_flag=True, help="Only compact; delete nothing.")
def compact(warehouse: str | None, vacuum_hours: int, no_vacuum: bool) -> None:
    """Merge small files (Delta optimize), prune old source records, delete unreferenced old files (vacuum).

    Safe while others write; `watch` also compacts hourly.

    Example: tokentrail compact --vacuum-hours 168
    """
    from .. import api

    done = api.compact(warehouse, None if no_vacuum else vacuum_hours)
    for name, m in done.optimized.items():
        if m["removed"]:
            click.echo(f"{name}: {m['removed']} files -> {m['added']}")
    if done.vacuumed is not None:
        click.echo(f"vacuum: removed {done.vacuumed} files older than {vacuum_hours} h")
