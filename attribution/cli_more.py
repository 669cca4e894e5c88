"""CLI commands beyond ingest/query/attribution: formats (and, as they land, watch and controls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import _fail_cleanly, main
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
