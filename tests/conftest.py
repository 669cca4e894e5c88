"""Shared fixtures. Every test gets an isolated environment: no real warehouse, no real config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
FIXTURE_KEY = "sk-proj-T3stK3yF0rF1xtur3sOnlyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFZND"

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("fuzz", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TOKENTRAIL_WAREHOUSE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache-unused"))


@pytest.fixture
def wh_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """An empty log directory for a watcher or an ingest run."""
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


CLI_OUTPUTS: list[str] = []


def run(*args: str | Path, input: str | None = None) -> Result:
    from attribution.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    CLI_OUTPUTS.append(result.output)
    return result


def _key_needles() -> list[bytes]:
    """The middle of every fake key the suite uses: enough to spot one anywhere, in any encoding of it."""
    import sys

    sys.path.insert(0, str(REPO / "sample_logs"))
    from make_samples import KEYS

    keys = [FIXTURE_KEY, *KEYS.values(), "sk-proj-" + "A" * 40 + "ALFA", "sk-proj-" + "B" * 40 + "BETA"]
    return sorted({k[-24:].encode() for k in keys})  # each key's distinctive tail


INPUT_SUFFIXES = {".log", ".jsonl", ".sse", ".csv", ".gz", ".yaml", ".json", ".1", ".txt"}
WAREHOUSE_PARTS = {"calls", "usage", "quarantine", "_state", "_tmp", "_gen"}


@pytest.fixture(scope="session", autouse=True)
def _nothing_the_suite_writes_holds_a_key(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """After the whole session: scan every warehouse file, report and CLI output the tests produced."""
    yield
    needles = _key_needles()
    offenders = []
    for p in tmp_path_factory.getbasetemp().rglob("*"):
        if not p.is_file() or p.name == "hmac.key":
            continue
        in_warehouse = bool(WAREHOUSE_PARTS & set(p.parts))
        if not in_warehouse and p.suffix in INPUT_SUFFIXES:
            continue  # the test's own input logs and rule files hold keys on purpose
        data = p.read_bytes()
        if any(n in data for n in needles):
            offenders.append(str(p))
    for out in CLI_OUTPUTS:
        if any(n.decode() in out for n in needles):
            offenders.append("CLI output: " + out[:200])
    assert not offenders, f"a full API key was written to: {offenders[:5]}"


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return run


def ingest_files(wh: Path | str, *paths: Path | str, fmt: str | None = None, rules: Path | str | None = None,
                 **opts: object):  # type: ignore[no-untyped-def]
    """Ingest through the library API (what `tokentrail ingest` calls); returns the IngestSummary."""
    from attribution.api import ingest
    from ingest.pipeline import IngestOptions

    opts.setdefault("jobs", 1)
    return ingest([Path(p) for p in paths], wh, rules, options=IngestOptions(format=fmt, **opts)).summary  # type: ignore[arg-type]


def tt_sql(wh: Path | str, sql: str):  # type: ignore[no-untyped-def]
    """A DuckDB relation over the warehouse's views (calls, calls_all, usage, usage_all, quarantine)."""
    from attribution.query import connect

    return connect(wh).sql(sql)


def tree_digest(root: Path) -> str:
    """Every file's path and bytes under `root`: equal digests mean nothing was written."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def loaded(wh_path: Path) -> Path:
    """A warehouse holding the OpenAI app-log fixture (13 calls)."""
    assert run("ingest", FIXTURES / "openai" / "app_calls.jsonl", "--warehouse", wh_path).exit_code == 0
    return wh_path
