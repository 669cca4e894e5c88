"""`tokentrail`: a thin click layer over `attribution.api`.

Each command parses options, calls one API function and renders the result. This module holds
the group, the options every subject shares (defined once) and the one place library errors
become click errors: `TokentrailGroup` maps an `ingest.errors.TokentrailError` to `Error: …` with
the exit code its class carries; bad flags exit 2 (click's own). Only click is imported at start
(the commands import the library when they run), so `tokentrail --help` stays fast.

Commands live by subject: `ingest.py` (ingest, watch, compact), `formats.py` (formats, tokens),
`query.py` (sql, report), `rules.py` (rules, reattribute), `controls.py` (budgets, audit,
anomalies, reconcile, export).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("table", "csv", "json")  # attribution.output.FORMATS (not imported: it loads pyarrow)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)  # an input file that must exist


@functools.cache
def error_with_code(exit_code: int) -> type[click.ClickException]:
    """The click exception class for an exit code (click keeps the code on the class, as we do)."""
    if exit_code == click.ClickException.exit_code:
        return click.ClickException
    return type(f"CommandError{exit_code}", (click.ClickException,), {"exit_code": exit_code})


def as_click_error(exc: BaseException) -> click.ClickException | None:
    """The click error a library exception is shown as, or None for a bug (which keeps its traceback)."""
    from ingest.errors import TokentrailError
    from ingest.keys import scrub_text

    if isinstance(exc, TokentrailError):
        return error_with_code(exc.exit_code)(scrub_text(str(exc)))
    if isinstance(exc, FileNotFoundError):
        return click.ClickException(scrub_text(str(exc)))
    if isinstance(exc, PermissionError):
        return click.ClickException(f"permission denied: {exc.filename}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        where = exc.filename or "the warehouse"
        return click.ClickException(f"{exc.strerror or 'no space left on device'} while writing {where}; nothing partial "
                                    f"was committed. Free space and run the command again: it resumes from its checkpoints.")
    return None


class TokentrailGroup(click.Group):
    """The root group: every command runs inside its `invoke`, so library errors are mapped here once."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            mapped = as_click_error(exc)
            if mapped is None:
                raise
            raise mapped from None


# -- shared options ---------------------------------------------------------------------------------


def _check_warehouse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and "://" not in value and Path(value).is_file():
        raise click.BadParameter(f"{value} is a file, not a warehouse directory")
    return value


def warehouse_option(fn: F) -> F:
    return click.option(
        "--warehouse", "-w", default=None, metavar="DIR|URI", callback=_check_warehouse,
        help="Warehouse: a directory or s3:// gs:// az:// URI [default: $TOKENTRAIL_WAREHOUSE, else ./warehouse].",
    )(fn)


def checked(module: str, validator: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback running a library validator (imported when the flag is given) on each value: its `BadArgument`
    becomes click's bad-parameter error (exit 2) before the command starts, so a flag that cannot work creates
    nothing (no warehouse, no listener)."""
    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        import importlib

        from ingest.errors import BadArgument

        for v in value if isinstance(value, tuple) else (value,):
            if v is not None:
                try:
                    getattr(importlib.import_module(module), validator)(v)
                except BadArgument as exc:
                    raise click.BadParameter(str(exc)) from None
        return value

    return callback


def as_of_option(fn: F) -> F:
    return click.option("--as-of", "as_of", default=None, metavar="VERSION|TIMESTAMP",
                        callback=checked("attribution.api_read", "parse_as_of"),
                        help="Read the tables as they were: a usage table version, or an ISO timestamp.")(fn)


def output_format_option(fn: F) -> F:
    return click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True,
                        help="Output format (CSV has one header row).")(fn)


def output_file_option(fn: F) -> F:
    return click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                        help="Write the result to a file.")(fn)


if TYPE_CHECKING:
    _DayBase = click.ParamType[datetime, Any]
else:  # click < 8.2 has no type parameters
    _DayBase = click.ParamType


class DayType(_DayBase):
    """YYYY-MM-DD, a real calendar day (2025-02-30 is refused with the reason); a datetime at midnight."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
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


def check_range(since: datetime | None, until: datetime | None) -> None:
    """An inverted range is a usage error (exit 2), never an empty result that looks like 'nothing spent'."""
    if since is not None and until is not None and since > until:
        raise click.UsageError(f"--since {since:%Y-%m-%d} is after --until {until:%Y-%m-%d}; "
                               f"swap them (both days are included)")


def date_range_options(fn: F) -> F:
    """--since/--until, checked as a pair."""

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_range(kwargs.get("since"), kwargs.get("until"))
        return fn(*args, **kwargs)

    wrapped = click.option("--until", type=DAY, default=None, help="Last day included (UTC), YYYY-MM-DD.")(checked)
    return cast(F, click.option("--since", type=DAY, default=None, help="First day included (UTC), YYYY-MM-DD.")(wrapped))


def day(value: datetime | None) -> date | None:
    """A parsed DAY option as the date the API takes."""
    return value.date() if value is not None else None


def emit(text: str, output: Path | None = None) -> None:
    """Print a rendered result, or write it to `--output` (and say so on stderr)."""
    if output is not None:
        output.write_text(text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


@click.group(cls=TokentrailGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="tokentrail")
def main() -> None:
    """tokentrail: who spent what on the OpenAI API, from the logs you already have.

    \b
    Typical use:
      tokentrail ingest /var/log/myapp --rules rules.yaml
      tokentrail report --by key_name --by feature
      tokentrail sql "select model, sum(cost_usd) from usage group by 1"
    """


from . import controls, formats, ingest, query, rules  # noqa: E402,F401  (each registers its commands on `main`)
