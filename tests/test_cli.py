"""Every command has help with an example, the CLI reference is current, errors exit with the right codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "docs"))
from gen_cli_reference import commands, render  # noqa: E402

from attribution.cli import main  # noqa: E402

ALL = [name for name, _ in commands(main)]


@pytest.mark.parametrize("name", ALL)
def test_every_command_has_help_with_an_example(name: str, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(*name.split()[1:], "--help")
    assert r.exit_code == 0 and "Example:" in r.output, name


def test_the_cli_reference_is_generated_from_help() -> None:
    assert (REPO / "docs" / "cli.md").read_text() == render(), "run: python docs/gen_cli_reference.py"


def readme_command_rows() -> dict[str, str]:
    """README's `## Commands` table: command -> its whole row (what it does, example)."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[0] for m in re.finditer(r"^\| `(tokentrail [a-z ]+?)` \|.*$", section, re.M)}


def test_readme_command_table_matches_the_cli() -> None:
    """The README's command table lists exactly the commands `tokentrail --help` has, and every option a
    row names (in its description or example) is an option of that command."""
    import re

    def options(cmd: click.Command) -> set[str]:
        return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}

    def named(text: str) -> set[str]:
        return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", text))

    rows = readme_command_rows()
    assert sorted(rows) == sorted(ALL)
    by_name = dict(commands(main))
    anywhere = set().union(*(options(c) for c in by_name.values()))
    for name, row in rows.items():
        what, example = row.strip("| ").split(" | ")[1:3]
        assert re.match(f"`{name}[ `]", example) and named(example) <= options(by_name[name]), (name, example)
        assert named(what) <= options(by_name[name]) | anywhere, (name, named(what) - anywhere)  # may cite another's
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_the_help_does_not_load_the_heavy_libraries() -> None:
    """`tokentrail --help` imports click and the CLI modules only: the library loads when a command runs."""
    import subprocess

    code = ("import sys; from click.testing import CliRunner; from attribution.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('pyarrow', 'deltalake', 'duckdb', 'tiktoken', 'pydantic', 'yaml', 'rich', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_a_query_naming_no_table_loads_no_delta_reader(loaded: Path) -> None:
    """`sql "select 1"` (the start-up floor) opens no table, so delta-rs is not even imported; a query on
    `usage` does import it."""
    import subprocess

    def loads_deltalake(query: str) -> bool:
        code = ("import sys; from click.testing import CliRunner; from attribution.cli import main; "
                f"r = CliRunner().invoke(main, ['sql', {query!r}, '--warehouse', {str(loaded)!r}]); "
                "assert r.exit_code == 0, r.output; print('deltalake' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
        return out.stdout.strip().splitlines()[-1] == "True"

    assert not loads_deltalake("select 1")
    assert loads_deltalake("select count(*) from usage")


def test_the_cli_offers_every_output_format() -> None:
    from attribution.cli import OUTPUT_FORMATS
    from attribution.output import FORMATS

    assert OUTPUT_FORMATS == FORMATS  # the CLI spells them out so that --help need not load pyarrow


def test_every_yaml_example_in_the_readme_loads_as_written(tmp_path: Path) -> None:
    """The rule file, mapping profile, sources file and price file shown in README.md are valid as shown (a
    placeholder that `rules check` refuses would be the first thing a new user copies)."""
    import re

    from attribution.pricing import load_price_file
    from attribution.rules import load_rules
    from ingest.formats.profile import load_profile
    from ingest.keys import KeyHasher
    from ingest.sources_file import load_sources

    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", (REPO / "README.md").read_text(), flags=re.S | re.M)
    loaded = []
    for indent, text in blocks:
        doc = tmp_path / f"example{len(loaded)}.yaml"
        doc.write_text("\n".join(line[len(indent):] for line in text.splitlines()) + "\n")
        if text.lstrip().startswith("version: 1\nrules:") or "\nrules:" in text:
            load_rules(doc, KeyHasher(b"k" * 32))
            loaded.append("rules")
        elif "sources:" in text:
            (tmp_path / "profiles").mkdir(exist_ok=True)
            (tmp_path / "profiles" / "essay-api.yaml").write_text("fields: {user: [u]}\n")
            load_sources(doc)
            loaded.append("sources")
        elif "fields:" in text:
            load_profile(doc)
            loaded.append("profile")
        elif "prices:" in text:
            load_price_file(doc)
            loaded.append("prices")
    assert sorted(loaded) == ["prices", "profile", "rules", "sources"]


def test_library_errors_exit_with_the_code_on_their_class() -> None:
    from click.testing import CliRunner

    from attribution.cli import TokentrailGroup
    from ingest.errors import TokentrailError, WarehouseNotFound

    class Busy(TokentrailError):
        exit_code = 75  # EX_TEMPFAIL, say

    group = TokentrailGroup()

    @group.command()
    def busy() -> None:
        raise Busy("try again later")

    @group.command()
    def missing() -> None:
        raise WarehouseNotFound("no warehouse at /nowhere")

    @group.command()
    def bug() -> None:
        raise KeyError("a bug keeps its traceback")

    r = CliRunner().invoke(group, ["busy"])
    assert (r.exit_code, r.output) == (75, "Error: try again later\n")
    r = CliRunner().invoke(group, ["missing"])
    assert (r.exit_code, r.output) == (1, "Error: no warehouse at /nowhere\n")
    r = CliRunner().invoke(group, ["bug"])
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)


def test_the_api_is_the_package_surface(tmp_path: Path) -> None:
    """`from attribution import …` gives the API and the errors; every name in `__all__` resolves."""
    from conftest import FIXTURES

    import attribution
    from attribution import api

    assert set(api.__all__) <= set(attribution.__all__)  # every API name is on the package
    for name in attribution.__all__:
        assert getattr(attribution, name) is not None, name
    assert attribution.sql is api.sql and attribution.TokentrailError.exit_code == 1
    class Recorded:
        total, done = -1, 0

        def start(self, total_bytes: int) -> None:
            self.total = total_bytes

        def advance(self, n_bytes: int) -> None:
            self.done += n_bytes

    log = FIXTURES / "openai" / "app_calls.jsonl"
    progress = Recorded()
    report = attribution.ingest([log], tmp_path / "wh", progress=progress)
    assert progress.total == progress.done == log.stat().st_size
    table = attribution.sql("select count(*) as n from calls", tmp_path / "wh")
    assert table.column("n").to_pylist() == [report.summary.total("calls")] and report.summary.total("calls") > 0
    with pytest.raises(attribution.WarehouseNotFound):
        attribution.report(["model"], tmp_path / "nowhere")


def test_bad_flags_exit_2_and_runtime_errors_exit_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("report", "--format", "xml")
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.output
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nrules:\n  feature:\n    - {id: a, when: {rout: /x}, value: v}\n")
    r = cli("rules", "check", bad, "--warehouse", tmp_path / "wh")
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "rules.yaml:4: rules.feature.0.when.rout" in r.output
    r = cli("sql", "select nope from calls", "--warehouse", tmp_path / "wh")
    assert r.exit_code == 1 and f"Error: no warehouse at {tmp_path / 'wh'}" in r.output  # a typo is not "empty"
    assert not (tmp_path / "wh").exists()  # and reading creates nothing
    from conftest import FIXTURES

    cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", tmp_path / "wh")
    r = cli("sql", "select nope from calls", "--warehouse", tmp_path / "wh")
    assert r.exit_code == 1 and "Error:" in r.output and "nope" in r.output


def test_sql_output_formats(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from conftest import FIXTURES

    wh = tmp_path / "wh"
    cli("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", wh)
    csv_out = cli("sql", "select endpoint, count(*) as n from calls group by 1 order by 1", "--warehouse", wh,
                  "--format", "csv").output.splitlines()
    assert csv_out[0] == "endpoint,n" and csv_out.count("endpoint,n") == 1
    out = tmp_path / "o.json"
    cli("sql", "select 1 as x", "--warehouse", wh, "--format", "json", "--output", out)
    assert out.read_text().strip() == '[\n  {\n    "x": 1\n  }\n]'


def test_warehouse_from_environment(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from conftest import FIXTURES

    monkeypatch.setenv("TOKENTRAIL_WAREHOUSE", str(tmp_path / "env-wh"))
    assert cli("ingest", FIXTURES / "openai" / "app_calls.jsonl").exit_code == 0
    assert (tmp_path / "env-wh" / "calls").is_dir()


def test_an_unknown_log_format_is_a_bad_flag(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from conftest import FIXTURES

    for cmd in ("ingest", "watch"):
        r = cli(cmd, FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", tmp_path / "wh", "--format", "nosuch")
        assert r.exit_code == 2 and "unknown format 'nosuch'" in r.output, r.output
    assert not (tmp_path / "wh").exists()


def test_sources_file_sets_format_and_tags_and_is_remembered(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from conftest import FIXTURES, tt_sql

    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(FIXTURES / "openai" / "app_calls.jsonl", logs / "app.log")
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources:\n  - path: logs/*.log\n    format: openai\n    tags: {service: essay-api, env: prod}\n")
    r = cli("ingest", "--sources", sources, "--warehouse", tmp_path / "wh")
    assert r.exit_code == 0, r.output
    tags = tt_sql(tmp_path / "wh", "SELECT DISTINCT metadata['service'], metadata['env'] FROM calls").fetchall()
    assert tags == [("essay-api", "prod")]
    with (logs / "app.log").open("a") as fh, (FIXTURES / "openai" / "app_calls.jsonl").open() as src:
        fh.write(src.readline().replace("chatcmpl-", "chatcmpl-more-"))
    r = cli("ingest", logs, "--warehouse", tmp_path / "wh", "--format", "litellm")
    assert "was read as 'openai' before, now as 'litellm'" in r.output


def test_no_estimate_leaves_missing_usage_empty(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    from conftest import tt_sql

    log = tmp_path / "app.log"
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    log.write_text(json.dumps({"time": "2025-03-10T09:00:00Z", "request": request}) + "\n")
    wh = tmp_path / "wh"
    r = cli("ingest", log, "--warehouse", wh, "--no-estimate")
    assert r.exit_code == 0, r.output
    assert tt_sql(wh, "SELECT input_tokens, token_source FROM calls_all").fetchall() == [(None, "missing")]
