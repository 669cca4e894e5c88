"""Formats as plugins: the registry's order, and a third-party format loaded through the
`tokentrail.formats` entry-point group, as an installed package would provide it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, tt_sql

from ingest.errors import FormatError
from ingest.formats import ENTRY_POINT_GROUP, REGISTRY, Format, FormatRegistry, ParseContext, SpecPrefix, registry
from ingest.schema import Call

PLUGIN = '''
from ingest.formats import Format
from ingest.formats.calls import call_from_bodies
from ingest.formats.coerce import as_token_count, parse_ts
from ingest.formats.openai_bodies import Usage


class AcmeFormat(Format):
    name = "acme-llm"
    description = "Acme gateway logs"
    detection = "a JSON object with acme_gateway"
    priority = 5

    def detect(self, record):
        return isinstance(record, dict) and "acme_gateway" in record

    def parse(self, record, ctx):
        if not self.detect(record):
            return []
        usage = Usage(input=as_token_count(record["in"], "in"), output=as_token_count(record["out"], "out"))
        call = call_from_bodies(ctx, self.name, ts=parse_ts(record["at"]), usage=usage, endpoint="chat.completions")
        call.call_id = record["id"]
        call.model = call.model_requested = record["model"]
        return [call]


def register(registry):
    registry.register(AcmeFormat())
'''


def install_plugin(site: Path, value: str = "acme_tt:register") -> None:
    """A package as pip would install it: the module and a dist-info declaring the entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "acme_tt.py").write_text(PLUGIN)
    dist = site / "acme_tt-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tt\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacme = {value}\n")


def test_a_third_party_format_is_detected_and_ingested_through_its_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site)
    log = tmp_path / "acme.jsonl"
    log.write_text(json.dumps({"acme_gateway": 1, "id": "acme-1", "model": "gpt-4o-mini", "in": 12, "out": 5,
                               "at": "2025-03-10T10:00:00Z"}) + "\n")
    wh = tmp_path / "wh"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    tt = [sys.executable, "-c", "from attribution.cli import main; main()"]
    listed = subprocess.run([*tt, "formats", "list"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "acme-llm" in listed.stdout
    subprocess.run([*tt, "ingest", str(log), "--warehouse", str(wh)], env=env, cwd=tmp_path, capture_output=True,
                   text=True, check=True)
    got = tt_sql(wh, "SELECT call_id, source_format, model, input_tokens, output_tokens, token_source FROM calls")
    assert got.fetchall() == [("acme-1", "acme-llm", "gpt-4o-mini", 12, 5, "reported")]


def test_entry_points_register_a_class_an_instance_or_a_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for value in ("acme_tt:AcmeFormat", "acme_tt:register"):
        eps = [EntryPoint("acme", value, ENTRY_POINT_GROUP)]
        monkeypatch.setattr(registry, "entry_points", lambda group, eps=eps: eps if group == ENTRY_POINT_GROUP else [])
        reg = FormatRegistry()
        reg.register(FakeFormat("generic", 1000))
        assert [f.name for f in reg.formats()] == ["acme-llm", "generic"]  # priority 5 goes before 1000
        assert reg.get("acme-llm").name == "acme-llm"


def test_a_broken_plugin_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [EntryPoint("broken", "no_such_module_here:Thing", ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    with pytest.raises(FormatError, match="format plugin 'broken'.*failed to load"):
        FormatRegistry().formats()


class FakeFormat(Format):
    description = "fake"
    detection = "fake"

    def __init__(self, name: str, priority: int = 500) -> None:
        self.name = name
        self.priority = priority

    def detect(self, record: Any) -> bool:
        return isinstance(record, dict) and self.name in record

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        return []


def test_detection_order_is_priority_then_registration() -> None:
    reg = FormatRegistry(load_entry_points=False)
    for name, priority in (("late", 900), ("first", 10), ("second", 10), ("middle", 500)):
        reg.register(FakeFormat(name, priority))
    reg.register(FakeFormat("moved"), priority=1)
    assert [f.name for f in reg.formats()] == ["moved", "first", "second", "middle", "late"]
    with pytest.raises(FormatError, match="registered twice"):
        reg.register(FakeFormat("first"))


def test_a_spec_prefix_builds_a_format_from_its_argument() -> None:
    reg = FormatRegistry(load_entry_points=False)
    reg.register_prefix(SpecPrefix("fake", lambda arg: FakeFormat(f"fake:{arg}"), "d", "never", "fake:NAME for a fake"))
    assert reg.get("fake:x").name == "fake:x"
    with pytest.raises(FormatError, match=r"unknown format 'nope'; known formats: , or fake:NAME for a fake"):
        reg.get("nope")


def test_builtins_are_registered_in_detection_order_with_profile_as_a_prefix() -> None:
    builtins = ["otel", "litellm", "kong", "nginx", "openai-batch", "sse", "litellm-spend-csv", "openai"]
    names = [f.name for f in REGISTRY.formats()]
    assert [n for n in names if n in builtins] == builtins
    assert names[-1] == "openai"  # the generic shape is tried last
    assert [p.prefix for p in REGISTRY.prefixes()] == ["profile"]
