"""Commands about log formats and token counts, which write nothing: formats list/detect/test/suggest,
tokens count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import FILE, main

# -- formats --------------------------------------------------------------------------------------


@main.group()
def formats() -> None:
    """List, detect and try log formats and mapping profiles."""


@formats.command("list")
def formats_list() -> None:
    """Name, what each format reads, and how it is detected.

    Example: tokentrail formats list
    """
    from .. import api
    from ..output import render_rich

    found, wrappers = api.list_formats()
    click.echo(render_rich(["name", "reads", "detected by"], [[f.name, f.reads, f.detected_by] for f in found]))
    click.echo("Wrappers taken off each line before the formats above read it (detected per line):")
    click.echo(render_rich(["wrapper", "what it is"], [list(w) for w in wrappers]))


@formats.command("detect")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def formats_detect(files: tuple[Path, ...]) -> None:
    """Which format each file (or each file in a directory) is read as, and the wrapper around its lines.

    Example: tokentrail formats detect sample_logs/
    """
    from .. import api

    for d in api.detect_formats(files):
        if d.skipped is not None:
            click.echo(f"{d.path}\tskipped\t({d.skipped})")
            continue
        inside = f"\tinside {d.wrapper}" if d.wrapper else ""
        click.echo(f"{d.path}\t{d.format}\t({d.matched} of {d.sampled} sampled records matched){inside}")


@formats.command("test")
@click.argument("profile", type=FILE)
@click.argument("logfile", type=FILE)
@click.option("--lines", "n", default=5, show_default=True, help="How many records to show.")
def formats_test(profile: Path, logfile: Path, n: int) -> None:
    """Show how the first records of LOGFILE parse with a mapping PROFILE (nothing is written).

    Container and cloud wrappers (Docker, CRI, journald, Cloud Logging, CloudWatch, OTLP) are taken
    off first. Timestamps are shown in ISO 8601 (UTC); profile fields that matched nothing in the
    first 200 records are listed at the end.

    Example: tokentrail formats test my-profile.yaml /var/log/app/calls.log
    """
    from ingest.keys import scrub_text

    from .. import api
    from ..output import to_json

    trial = api.try_profile(profile, logfile, show=n)
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
@click.argument("logfile", type=FILE)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the profile here (default: print it).")
@click.option("--name", default=None, help="Profile name [default: the log file's stem].")
@click.option("--lines", "n", default=200, show_default=True, help="How many lines to sample.")
def formats_suggest(logfile: Path, output: Path | None, name: str | None, n: int) -> None:
    """Write a starter mapping profile from a sample of LOGFILE: where the key, user, route,
    timestamp and bodies are, with candidate paths and example values (keys shown redacted).

    Example: tokentrail formats suggest app.log -o app-profile.yaml && tokentrail formats test app-profile.yaml app.log
    """
    from .. import api

    s = api.suggest_profile(logfile, n, name)
    if output is None:
        click.echo(s.text, nl=False)
    else:
        output.write_text(s.text)
        click.echo(f"wrote {output} ({s.calls} calls in {s.records} records sampled)", err=True)


# -- tokens ---------------------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Count tokens the way the API would."""


@tokens.command("count")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--model", default=None, help="Model to count for [default: the body's `model`].")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON.")
def tokens_count(file: Any, model: str | None, as_json: bool) -> None:
    """Estimated input tokens of one request body (chat, responses, embeddings or completions).

    Example: echo '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' | tokentrail tokens count
    """
    import json

    import msgspec

    from .. import api

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
    counted = api.count_tokens(body, model)
    if as_json:
        click.echo(json.dumps({"model": counted.model, "endpoint": counted.endpoint, "encoding": counted.encoding,
                               "input_tokens": counted.input_tokens, "flags": counted.flags}))
    else:
        click.echo(counted.input_tokens)
