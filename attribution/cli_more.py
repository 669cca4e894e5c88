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


@formats.command("detect")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_fail_cleanly
def formats_detect(files: tuple[Path, ...]) -> None:
    """Which format each file (or each file in a directory) is read as.

    Example: tokentrail formats detect sample_logs/
    """
    from ingest.formats import detect_lines
    from ingest.sources import discover, open_binary

    for path in discover(list(files)):
        with open_binary(path) as fh:
            lines = [line for _, line in zip(range(50), fh, strict=False)]
        fmt, n = detect_lines(lines)
        click.echo(f"{path}\t{fmt.name if fmt else 'unknown'}\t({n} of {len(lines)} sampled lines matched)")


@formats.command("test")
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("logfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lines", "n", default=5, show_default=True, help="How many lines to show.")
@_fail_cleanly
def formats_test(profile: Path, logfile: Path, n: int) -> None:
    """Show how the first lines of LOGFILE parse with a mapping PROFILE (nothing is written).

    Example: tokentrail formats test my-profile.yaml /var/log/app/calls.log
    """
    import tempfile

    from ingest.formats import ParseContext, decode_record, get_format
    from ingest.keys import KeyHasher
    from ingest.sources import identify, open_binary

    fmt = get_format(f"profile:{profile}")
    ident = identify(logfile)
    ctx = ParseContext(str(logfile), ident.fp, KeyHasher(tempfile.gettempprefix().encode() * 4))
    offset = 0
    shown = 0
    with open_binary(logfile) as fh:
        for raw in fh:
            if shown >= n:
                break
            ctx.offset = offset
            offset += len(raw)
            line = raw.strip()
            if not line:
                continue
            shown += 1
            try:
                calls = fmt.parse(decode_record(line), ctx)
            except Exception as exc:  # noqa: BLE001 - shown to the user, nothing is stored
                click.echo(f"line at offset {ctx.offset}: would be quarantined: {exc}")
                continue
            if not calls:
                click.echo(f"line at offset {ctx.offset}: skipped (not an API call under this profile)")
            for c in calls:
                shown_fields: dict[str, Any] = {k: getattr(c, k) for k in (
                    "call_id", "ts", "endpoint", "model", "api_key_id", "user", "route", "client_ip",
                    "status_code", "input_tokens", "output_tokens", "token_source", "metadata")}
                click.echo(f"line at offset {ctx.offset}: " + to_json(shown_fields))


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
def watch(paths: tuple[Path, ...], warehouse: Path | None, rules: Path | None, prices: Path | None,
          log_format: str | None, pattern: str | None, flush_seconds: float, flush_rows: int, read_from: str,
          poll: bool, once: bool, status_seconds: float, alerts: Path | None, webhooks: tuple[str, ...],
          webhook_body: str, alert_seconds: float, alert_state: Path | None, metrics_addr: str | None,
          max_line_bytes: int, no_system_prompt: bool) -> None:
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
        from .alerts import alert_loop_for_watch
        from .metrics import metrics_for_watch

        loop = alert_loop_for_watch(wh.root, engine.ruleset, alerts, webhooks, webhook_body, alert_seconds, alert_state,
                                    lambda m: click.echo(m, err=True))
        metrics = metrics_for_watch(metrics_addr, wh.root)
        on_commit: Any = metrics.observe if metrics else None
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
            if loop is not None:
                loop.stop()
            if metrics is not None:
                metrics.close()
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
