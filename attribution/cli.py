"""`tokentrail`: a thin click layer. Each command parses options, calls one library function,
and formats the result. Library errors (`TokentrailError`) become `Error: …` and exit 1;
bad flags exit 2 (click's own)."""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from ingest.errors import TokentrailError
from ingest.keys import scrub_text
from ingest.store import Store, default_location

from .output import FORMATS, render, to_json


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TokentrailError as exc:
            raise click.ClickException(scrub_text(str(exc))) from None
        except FileNotFoundError as exc:
            raise click.ClickException(scrub_text(str(exc))) from None
        except PermissionError as exc:
            raise click.ClickException(f"permission denied: {exc.filename}") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise click.ClickException(
                    f"{exc.strerror or 'no space left on device'} while writing {exc.filename or 'the warehouse'}; "
                    f"nothing partial was committed. Free space and run the command again: it resumes from its checkpoints."
                ) from None
            raise

    return wrapper


def _check_warehouse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and "://" not in value and Path(value).is_file():
        raise click.BadParameter(f"{value} is a file, not a warehouse directory")
    return value


def warehouse_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--warehouse", "-w", default=None, metavar="DIR|URI", callback=_check_warehouse,
        help="Warehouse: a directory or s3:// gs:// az:// URI [default: $TOKENTRAIL_WAREHOUSE, else ./warehouse].",
    )(fn)


def as_of_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as-of", "as_of", default=None, metavar="VERSION|TIMESTAMP",
                        help="Read the tables as they were: a usage table version, or an ISO timestamp.")(fn)


def output_format_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Output format (CSV has one header row).")(fn)


class DayType(click.ParamType):
    """YYYY-MM-DD, a real calendar day (2025-02-30 is refused with the reason); a datetime at midnight."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from datetime import datetime

        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) != 10:
                raise ValueError("expected YYYY-MM-DD")
            return datetime.strptime(text, "%Y-%m-%d")
        except ValueError as exc:
            reason = "no such day" if "day is out of range" in str(exc) or "unconverted" in str(exc) else str(exc)
            self.fail(f"{text!r} is not a valid day ({reason}; use YYYY-MM-DD, e.g. 2025-03-31)", param, ctx)


DAY = DayType()


def check_range(since: Any, until: Any) -> None:
    """An inverted range is a usage error (exit 2), never an empty result that looks like 'nothing spent'."""
    if since is not None and until is not None and since > until:
        raise click.UsageError(f"--since {since:%Y-%m-%d} is after --until {until:%Y-%m-%d}; "
                               f"swap them (both days are included)")


def date_range_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_range(kwargs.get("since"), kwargs.get("until"))
        return fn(*args, **kwargs)

    wrapped: Callable[..., Any] = click.option("--until", type=DAY, default=None,
                                               help="Last day included (UTC), YYYY-MM-DD.")(checked)
    return click.option("--since", type=DAY, default=None, help="First day included (UTC), YYYY-MM-DD.")(wrapped)


def _day(v: Any) -> date | None:
    return v.date() if v is not None else None


def _store(location: str | None) -> Store:
    """A store for reading: it must exist (a typo must not look like an empty warehouse)."""
    return Store(location or default_location()).require()


def _emit(text: str, output: Path | None = None) -> None:
    if output is not None:
        output.write_text(text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="tokentrail")
def main() -> None:
    """tokentrail: who spent what on the OpenAI API, from the logs you already have.

    \b
    Typical use:
      tokentrail ingest /var/log/myapp --rules rules.yaml
      tokentrail report --by key_name --by feature
      tokentrail sql "select model, sum(cost_usd) from usage group by 1"
    """


# -- ingest --------------------------------------------------------------------------------------


def sources_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--sources", "sources_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="Sources file: path/glob -> format or profile, plus static tags; its paths are read "
                             "when no PATH is given.")(fn)


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


def _paths_and_sources(paths: tuple[Path, ...], sources_file: Path | None) -> tuple[list[Path], Any]:
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


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@warehouse_option
@sources_option
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule file to attribute with [default: the one last used on this warehouse].")
@click.option("--prices", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Price override file (YAML) that wins over the bundled price table.")
@click.option("--format", "log_format", default=None,
              help="Force a log format (see `tokentrail formats list`) or profile:FILE.yaml; default: detect per file.")
@click.option("--glob", "pattern", default=None, help="Only files whose name matches, e.g. '*.jsonl'.")
@click.option("--no-system-prompt", is_flag=True, help="Do not store the first 256 characters of system prompts.")
@click.option("--quarantine-raw-bytes", type=click.IntRange(0, 1 << 20), default=4096, show_default=True,
              help="Raw bytes of a bad line kept in quarantine (keys scrubbed); 0 keeps none.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Worker processes for many files [default: the number of CPUs].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_fail_cleanly
def ingest(paths: tuple[Path, ...], warehouse: str | None, sources_file: Path | None, rules: Path | None,
           prices: Path | None,
           log_format: str | None, pattern: str | None, no_system_prompt: bool,
           quarantine_raw_bytes: int, jobs: int | None, as_json: bool) -> None:
    """Ingest log files and directories (recursively, .gz too) into the warehouse.

    Re-running over the same files adds nothing; appended lines are picked up from each
    file's offset, which commits with its rows. Several ingests and watchers may write one
    warehouse at once. Lines that cannot be parsed go to the quarantine table.

    Example: tokentrail ingest sample_logs/ --rules sample_logs/rules.yaml
    """
    from ingest.pipeline import IngestOptions
    from ingest.sources import discover

    from .api import ingest as run_ingest

    check_log_format(log_format)
    path_list, sources = _paths_and_sources(paths, sources_file)
    options = IngestOptions(format=log_format, sources=sources, store_system_prompt=not no_system_prompt, glob=pattern,
                            jobs=jobs or os.cpu_count() or 1, quarantine_raw_bytes=quarantine_raw_bytes)
    total = sum(p.stat().st_size for p in discover(path_list, pattern))
    with _progress(total, "ingest") as advance:
        report = run_ingest(list(path_list), warehouse, rules, prices, options, progress=advance)
    summary = report.summary
    from ingest.coverage import coverage_summary

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
            extra = f"; holding {f.held_bytes} bytes of a partial last line" if f.held_bytes else ""
            click.echo(scrub_text(f"  {f.path}: {f.note or ''}{extra}".rstrip()), err=True)
    if data["quarantined"]:
        click.echo("  see quarantined lines: tokentrail sql \"select source_file, source_offset, reason from quarantine\"",
                   err=True)
    if report.unpriced_models:
        click.echo(f"  no price for: {', '.join(report.unpriced_models)} (cost left NULL; add them with --prices)",
                   err=True)


class _progress:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label = total, label
        self._p: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not sys.stderr.isatty() or self.total == 0:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._p = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                           TransferSpeedColumn(), transient=True)
        self._p.start()
        task = self._p.add_task(self.label, total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.stop()


# -- sql and report ------------------------------------------------------------------------------


@main.command()
@click.argument("query")
@warehouse_option
@output_format_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the result to a file.")
@as_of_option
@_fail_cleanly
def sql(query: str, warehouse: str | None, fmt: str, output: Path | None, as_of: str | None) -> None:
    """Run a read-only SQL query over the views `calls`, `usage` and `quarantine`.

    `calls_all`/`usage_all` keep duplicates that `calls`/`usage` fold by call_id.

    Example: tokentrail sql "select endpoint, count(*), sum(input_tokens) from calls group by 1"
    """
    from .api import parse_as_of
    from .query import run_sql

    table = run_sql(_store(warehouse), query, parse_as_of(as_of))
    _emit(render(table, fmt), output)


@main.command()
@warehouse_option
@click.option("--by", "by", multiple=True,
              help="Group by a dimension: key_name, team, feature, end_user, model, day, hour, week, month, "
                   "any custom dimension or column, metadata.NAME. Repeatable.")
@date_range_options
@output_format_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the result to a file.")
@click.option("--html", type=click.Path(dir_okay=False, path_type=Path), help="Write a self-contained HTML report.")
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule file for the budgets section of --html.")
@click.option("--at", type=DAY, default=None,
              help="With --html: evaluate budgets at the end of this day [default: the last day with data shown].")
@as_of_option
@_fail_cleanly
def report(warehouse: str | None, by: tuple[str, ...], since: Any, until: Any, fmt: str, output: Path | None,
           html: Path | None, rules: Path | None, at: Any, as_of: str | None) -> None:
    """Requests, tokens, cost and the share of estimated tokens, grouped by dimensions.

    Example: tokentrail report --by key_name --by feature --since 2025-03-01
    """
    from .api import parse_as_of
    from .query import connect
    from .reports import report as run_report

    root = _store(warehouse)
    if html is not None:
        from .html_report import write_html_report

        write_html_report(root, html, _day(since), _day(until), rules, _day(at))
        click.echo(f"wrote {html}", err=True)
        if not by:
            return
    table = run_report(root, list(by), _day(since), _day(until), con=connect(root, as_of=parse_as_of(as_of)))
    title = "usage by " + ", ".join(by) if by else "usage"
    _emit(render(table, fmt, title), output)


# -- reattribute and rules -----------------------------------------------------------------------


@main.command()
@warehouse_option
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The new rule file.")
@click.option("--prices", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Price override file.")
@date_range_options
@click.option("--dry-run", is_flag=True, help="Show what would move (attribution and cost); write nothing.")
@output_format_option
@_fail_cleanly
def reattribute(warehouse: str | None, rules: Path, prices: Path | None, since: Any, until: Any,
                dry_run: bool, fmt: str) -> None:
    """Recompute usage from calls with new rules (and prices): one atomic commit for the whole range.

    Readers see the old numbers or the new ones, never a mix; `sql --as-of VERSION` still shows
    the old ones. Safe while `watch` runs.

    Example: tokentrail reattribute --rules rules.yaml --since 2025-01-01 --dry-run
    """
    import pyarrow as pa

    from .current import build_engine
    from .reattribute import reattribute as run

    store = _store(warehouse)
    if dry_run:
        engine = build_engine(store, rules, prices)
        result = run(store, engine, _day(since), _day(until), dry_run=True)
        click.echo(f"dry run: {len(result.partitions)} partitions, {result.rows:,} calls; "
                   f"ruleset {result.ruleset_hash}; nothing written", err=True)
        if result.moves:
            click.echo(render(pa.Table.from_pylist(result.moves), fmt, "what would move"))
        else:
            click.echo("no attribution would change")
        return
    engine = build_engine(store, rules, prices, remember=True)
    result = run(store, engine, _day(since), _day(until),
                 progress=lambda d, n: click.echo(f"  {d}: {n:,} calls", err=True))
    rate = result.rows / result.seconds if result.seconds else 0
    click.echo(f"re-attributed {result.rows:,} calls over {len(result.partitions)} days in one commit "
               f"(usage version {result.version}) in {result.seconds:.2f}s ({rate:,.0f} rows/s); "
               f"ruleset {result.ruleset_hash}")


@main.group()
def rules() -> None:
    """Check, explain and measure rule files."""


@rules.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@warehouse_option
@_fail_cleanly
def rules_check(file: Path, warehouse: str | None) -> None:
    """Validate a rule file and list its rules in evaluation order.

    Example: tokentrail rules check sample_logs/rules.yaml
    """
    from ingest.keys import KeyHasher

    from .rules import load_rules

    store = Store(warehouse or default_location())
    hasher = store.hasher if store.exists() else KeyHasher(b"rules-check-only")
    rs = load_rules(file, hasher)
    click.echo(f"{file}: valid; ruleset {rs.hash}; {rs.rule_count} rules, "
               f"{len(rs.budgets)} budgets, {len(rs.allowlists)} allowlists")
    for dim, items in rs.dimensions.items():
        default = rs.defaults.get(dim, "unattributed")
        click.echo(f"  {dim} (default {default!r}): " + (", ".join(r.id for r in items) or "no rules"))


@rules.command("explain")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--call", "call_id", required=True, help="The call_id to explain.")
@warehouse_option
@_fail_cleanly
def rules_explain(file: Path, call_id: str, warehouse: str | None) -> None:
    """Show which rule decided each dimension of one call, and why.

    Example: tokentrail rules explain rules.yaml --call chatcmpl-abc123
    """
    from .current import build_engine
    from .reports import explain_call

    store = _store(warehouse)
    engine = build_engine(store, file)
    out = explain_call(store, call_id, engine.ruleset, engine.apply)
    click.echo(to_json(out))


@rules.command("coverage")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@warehouse_option
@_fail_cleanly
def rules_coverage(file: Path, warehouse: str | None) -> None:
    """Share of calls, tokens and cost each dimension leaves at its default, and the top unmatched values.

    Example: tokentrail rules coverage sample_logs/rules.yaml
    """
    from .current import build_engine
    from .output import render_rich
    from .reports import rules_coverage as run

    store = _store(warehouse)
    engine = build_engine(store, file)
    rows = [[c.dimension, f"{c.calls_share:.1%}", f"{c.tokens_share:.1%}", f"{c.cost_share:.1%}",
             ", ".join(f"{v} ({n})" for v, n in c.top_unmatched)] for c in run(store, engine.ruleset, engine.apply)]
    click.echo(render_rich(["dimension", "calls at default", "tokens", "cost", "top unmatched"], rows,
                           "left at defaults"))


# -- tokens --------------------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Count tokens the way the API would."""


@tokens.command("count")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--model", default=None, help="Model to count for [default: the body's `model`].")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON.")
@_fail_cleanly
def tokens_count(file: Any, model: str | None, as_json: bool) -> None:
    """Estimated input tokens of one request body (chat, responses, embeddings or completions).

    Example: echo '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' | tokentrail tokens count
    """
    import msgspec

    from ingest.formats.openai_bodies import request_endpoint
    from ingest.tokens import count_request_input, encoding_for_model

    name = getattr(file, "name", "-")
    try:
        body = msgspec.json.decode(file.read())
    except msgspec.DecodeError as exc:
        raise click.ClickException(f"{name}: not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise click.ClickException(f"{name}: expected a JSON object (a request body)")
    model = model or body.get("model")
    if not model:
        raise click.UsageError("the body has no `model`; pass --model")
    n, flags = count_request_input(body, model)
    if as_json:
        click.echo(json.dumps({"model": model, "endpoint": request_endpoint(body),
                               "encoding": encoding_for_model(model)[0], "input_tokens": n, "flags": flags}))
    else:
        click.echo(n)


from . import cli_controls, cli_more  # noqa: E402,F401  (registers formats, watch, budgets, … on `main`)
