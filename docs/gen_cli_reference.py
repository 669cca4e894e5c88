"""Write docs/cli.md from the CLI's own --help (run: python docs/gen_cli_reference.py)."""

from __future__ import annotations

from pathlib import Path

import click

from attribution.cli import main


def commands(group: click.Group, prefix: str = "tokentrail") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out += commands(cmd, full)
        else:
            out.append((full, cmd))
    return out


def render() -> str:
    parts = ["# CLI reference\n", "Generated from `--help` by `docs/gen_cli_reference.py`; do not edit by hand.\n"]
    for full, cmd in commands(main):
        ctx = click.Context(cmd, info_name=full, terminal_width=100, max_content_width=100,
                            help_option_names=main.context_settings["help_option_names"])
        parts.append(f"## `{full}`\n\n```\n{cmd.get_help(ctx)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    (Path(__file__).parent / "cli.md").write_text(render())
