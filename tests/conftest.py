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
def fixtures() -> Path:
    return FIXTURES


def run(*args: str | Path, input: str | None = None) -> Result:
    from attribution.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return run
