"""Hostile input: no exception escapes, and every line ends as exactly one of calls, quarantined or skipped.

`make fuzz` runs these with a much larger example budget (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.rules import load_rules
from ingest.dispatch import Chunk, FileState, LineDispatcher
from ingest.errors import ConfigError
from ingest.formats import ParseContext, all_formats, get_format
from ingest.keys import KeyHasher
from ingest.pipeline import FileIngester, IngestOptions
from ingest.sources import Line

FIXTURE_LINES = [line for p in sorted(FIXTURES.rglob("*")) if p.is_file() and p.suffix in (".jsonl", ".sse", ".csv")
                 for line in p.read_bytes().splitlines() if line.strip()]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def ingester(tmp_path_factory: pytest.TempPathFactory) -> FileIngester:
    return FileIngester(KeyHasher(b"fuzz-secret" * 3), IngestOptions(max_line=1 << 20))


def account(ingester: FileIngester, lines: list[bytes], fmt_name: str | None = None) -> Chunk:
    """Feed lines through the real per-line path (detection, parsing, quarantine) without writing."""
    fmt = get_format(fmt_name) if fmt_name else None
    ctx = ParseContext("fuzz.log", "f" * 64, ingester.hasher)
    dispatch = LineDispatcher(FileState(ctx, fmt, forced=fmt is not None, max_line=ingester.options.max_line))
    chunk = Chunk(0)
    offset = 0
    for data in lines:
        dispatch.handle_line(Line(offset, len(data) + 1, data), chunk)
        offset += len(data) + 1
    return chunk


def assert_accounted(chunk: Chunk, n_lines: int) -> None:
    assert chunk.lines == n_lines
    assert chunk.call_lines + len(chunk.bad) + chunk.skipped == n_lines, (chunk.call_lines, len(chunk.bad), chunk.skipped)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_arbitrary_bytes(ingester: FileIngester, lines: list[bytes]) -> None:
    lines = [x.replace(b"\n", b"") for x in lines]
    assert_accounted(account(ingester, lines), len(lines))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(JSON, min_size=1, max_size=6))
def test_arbitrary_json_values(ingester: FileIngester, values: list[Any]) -> None:
    lines = [json.dumps(v).encode() for v in values]
    assert_accounted(account(ingester, lines), len(lines))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += _paths(v, (*prefix, i))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(obj, dict):
        return {**obj, head: _replace(obj[head], tuple(rest), value)}
    copy = list(obj)
    copy[head] = _replace(copy[head], tuple(rest), value)
    return copy


JSON_FIXTURES = [json.loads(x) for x in FIXTURE_LINES if x.startswith(b"{")]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=200)
@given(st.integers(min_value=0, max_value=len(JSON_FIXTURES) - 1), st.integers(min_value=0), JSON)
def test_wrong_types_in_every_field_of_real_records(ingester: FileIngester, which: int, where: int, value: Any) -> None:
    record = JSON_FIXTURES[which]
    paths = _paths(record)
    mutated = _replace(record, paths[where % len(paths)], value)
    assert_accounted(account(ingester, [json.dumps(mutated).encode()]), 1)


@pytest.mark.parametrize("line", FIXTURE_LINES[:40], ids=lambda b: str(len(b)))
def test_every_truncation_of_real_lines(ingester: FileIngester, line: bytes) -> None:
    cuts = [line[:i] for i in range(0, len(line), max(1, len(line) // 60))]
    assert_accounted(account(ingester, cuts), len(cuts))


@pytest.mark.parametrize("fmt", [f.name for f in all_formats()])
def test_every_format_forced_on_every_fixture_line(ingester: FileIngester, fmt: str) -> None:
    assert_accounted(account(ingester, FIXTURE_LINES, fmt), len(FIXTURE_LINES))


@pytest.mark.parametrize("payload", [
    b"[" * 100_000 + b"]" * 100_000,                                         # deep nesting
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"timestamp":"2025-03-03T00:00:00Z","response":{"id":"x","object":"chat.completion","created":1,"model":"m",'
    b'"usage":{"prompt_tokens":1e400,"completion_tokens":1}}}',              # huge number
    b'{"timestamp":"2025-03-03T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"m",'
    b'"usage":{"prompt_tokens":NaN,"completion_tokens":1}}}',                # NaN is not JSON
    b'{"timestamp":"2025-03-03T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"m",'
    b'"usage":{"prompt_tokens":-5,"completion_tokens":1}}}',                 # negative count
    b'{"timestamp":"2999-01-01T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"m",'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1}}}',                  # far future
    b'{"timestamp":"1999-01-01T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"m",'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1}}}',                  # far past
    b'{"timestamp":"2025-03-03T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"gpt\\u0000\\u001b[31m",'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1}}}',                  # control characters in the model
    b"\xef\xbb\xbf" + FIXTURE_LINES[0] + b"\r",                              # BOM and CRLF
    b"\x00" * 1000,
    b"\xff\xfe\xfd not utf-8 \x80\x81",
])
def test_hostile_lines_are_quarantined_or_parsed_never_raised(ingester: FileIngester, payload: bytes) -> None:
    chunk = account(ingester, [payload])
    assert_accounted(chunk, 1)
    for c in chunk.calls:  # whatever was accepted is sane
        assert 0 <= (c.input_tokens or 0) <= 100_000_000
        assert "\x00" not in (c.model or "") and "\x1b" not in (c.model or "")


def test_values_outside_sane_bounds_say_why(ingester: FileIngester) -> None:
    rows = account(ingester, [
        b'{"timestamp":"2999-01-01T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"m","usage":{"prompt_tokens":5,"completion_tokens":1}}}',
        b'{"timestamp":"2025-03-03T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"m","usage":{"prompt_tokens":500000000,"completion_tokens":1}}}',
        b'{"timestamp":"2025-03-03T00:00:00Z","response":{"id":"x","object":"chat.completion","model":"gpt\\u001b","usage":{"prompt_tokens":5,"completion_tokens":1}}}',
    ]).bad
    reasons = [r["reason"] for r in rows]
    assert "timestamp 2999-01-01 is implausible" in reasons[0]
    assert "usage.prompt_tokens=500000000 is outside 0..100000000" in reasons[1]
    assert "control characters" in reasons[2]


def test_ten_megabyte_line(tmp_path: Path, wh_path: Path) -> None:
    from conftest import ingest_files

    big = json.dumps({"timestamp": "2025-03-03T00:00:00Z", "request": {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "word " * 2_000_000}]}, "response": {"id": "chatcmpl-big", "object": "chat.completion",
        "created": 1741000000, "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 2000008, "completion_tokens": 1}}})
    f = tmp_path / "big.log"
    f.write_text(big + "\n" + big.replace("chatcmpl-big", "chatcmpl-big2") + "\n")
    s = ingest_files(wh_path, f, max_line=16 << 20)
    assert s.total("calls") == 2


@settings(deadline=None, max_examples=100)
@given(st.text(max_size=400))
def test_rule_loader_never_raises_anything_but_config_errors(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    p = tmp_path_factory.mktemp("rules") / "r.yaml"
    p.write_text(text)
    with contextlib.suppress(ConfigError):  # the property: nothing else escapes
        load_rules(p)


@settings(deadline=None, max_examples=100)
@given(JSON)
def test_rule_loader_on_arbitrary_structures(tmp_path_factory: pytest.TempPathFactory, value: Any) -> None:
    import yaml

    p = tmp_path_factory.mktemp("rules") / "r.yaml"
    p.write_text(yaml.safe_dump({"version": 1, "rules": {"feature": [{"id": "a", "when": value, "value": "v"}]}}))
    with contextlib.suppress(ConfigError):  # the property: nothing else escapes
        load_rules(p)


@pytest.mark.parametrize("value", [[None], None, "x", 7, {"arrayValue": None}, {"kvlistValue": [1]}])
def test_a_malformed_otlp_wrapper_is_quarantined_not_raised(ingester: FileIngester, value: Any) -> None:
    """Found by the fuzzer in CI: wrong types inside OTLP log-record attributes escaped the unwrapper."""
    line = json.dumps({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": value}]},
                                         "scopeLogs": [{"logRecords": [{"body": {"stringValue": "{}"},
                                                                        "attributes": [{"key": "k", "value": value}]}]}]}]})
    chunk = account(ingester, [line.encode()])
    assert_accounted(chunk, 1)
