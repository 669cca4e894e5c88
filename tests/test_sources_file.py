"""The sources file: path/glob -> format or profile + static tags; errors name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import ConfigError
from ingest.schema import Call
from ingest.sources_file import apply_tags, format_change, load_sources


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(text)
    return p


def test_paths_globs_profiles_and_tags(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "app.yaml").write_text("name: app\nfields:\n  user: [who]\n")
    src = write(tmp_path, """version: 1
sources:
  - path: logs/app/*.log
    profile: profiles/app.yaml
    tags: {service: essay-api, env: prod}
  - path: /var/lib/docker/containers/**/*-json.log
    format: openai
    tags: {host: web-1}
  - path: logs/proxy
    format: litellm
""")
    s = load_sources(src)
    app = s.settings_for(tmp_path / "logs" / "app" / "a.log")
    assert app is not None and app.format_name() == f"profile:{tmp_path / 'profiles' / 'app.yaml'}"
    assert app.tags == {"service": "essay-api", "env": "prod"}
    docker = s.settings_for("/var/lib/docker/containers/abc/def/abc-json.log")
    assert docker is not None and (docker.format_name(), docker.tags) == ("openai", {"host": "web-1"})
    proxy = s.settings_for(tmp_path / "logs" / "proxy" / "2025" / "x.jsonl")
    assert proxy is not None and proxy.format_name() == "litellm"
    assert s.settings_for(tmp_path / "elsewhere.log") is None
    assert s.paths()[0] == str(tmp_path / "logs/app/*.log")


def test_first_match_wins(tmp_path: Path) -> None:
    s = load_sources(write(tmp_path, "sources:\n  - {path: 'a/*.log', format: nginx}\n  - {path: a, format: kong}\n"))
    hit = s.settings_for(tmp_path / "a" / "x.log")
    assert hit is not None and hit.format == "nginx"
    other = s.settings_for(tmp_path / "a" / "x.jsonl")
    assert other is not None and other.format == "kong"


@pytest.mark.parametrize(("text", "message"), [
    ("sources:\n  - path: a.log\n    format: nope\n", "sources.yaml:3: sources.0.format: unknown format 'nope'"),
    ("sources:\n  - path: a.log\n    format: openai\n    profile: p.yaml\n", "give `format` or `profile`, not both"),
    ("sources:\n  - path: a.log\n    colour: red\n",
     "sources.yaml:3: sources.0.colour: unknown field (check the spelling; see the sources-file reference in README.md"),
    ("sources: []\n", "sources"),
    ("- a\n", "a sources file is a YAML mapping"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_sources(write(tmp_path, text))
    assert message in str(err.value)


def test_a_missing_profile_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.profile: .*missing\.yaml: cannot read profile"):
        load_sources(write(tmp_path, "sources:\n  - {path: a.log, profile: missing.yaml}\n"))


def test_tags_never_override_what_the_log_says() -> None:
    c = Call(call_id="x", ts=1, source_file="f", source_offset=0, source_format="openai")
    c.metadata = {"service": "from-log"}
    apply_tags([c], {"service": "static", "env": "prod"})
    assert c.metadata == {"service": "from-log", "env": "prod"}


def test_format_change_is_reported() -> None:
    assert format_change(None, "openai") is None
    assert format_change("openai", "openai") is None
    note = format_change("profile:/p.yaml", "openai")
    assert note is not None and "was read as 'profile:/p.yaml' before" in note
