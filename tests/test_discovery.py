"""Discovery at any depth: bodies nested deep, logged as JSON strings, inside lists of events; the key
in any headers object or HAR list; the odd shapes of real traffic (Azure, legacy Completions,
background Responses); coverage; `formats suggest` -> `formats test` round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_KEY, FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.query import run_sql
from ingest.coverage import coverage_summary
from ingest.formats.discover import MAX_NODES, discover
from ingest.pipeline import FileResult
from ingest.wrappers import Unwrapper

REQ = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def resp(i: int) -> dict[str, Any]:
    return {"id": f"chatcmpl-d{i}", "object": "chat.completion", "created": 1741597200, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}


def nest(value: Any, depth: int) -> Any:
    for level in range(depth):
        value = {f"level{depth - level}": value}
    return value


def shapes(i: int) -> dict[str, dict[str, Any]]:
    return {
        "five_deep": {"time": "2025-03-10T09:00:00Z", **nest({"request": REQ, "response": resp(i)}, 5)},
        "json_strings": {"time": "2025-03-10T09:00:00Z", "request": json.dumps(REQ), "response": json.dumps(resp(i))},
        "string_of_strings": {"time": "2025-03-10T09:00:00Z", "payload": json.dumps({"in": json.dumps(REQ), "out": resp(i)})},
        "event_list": {"time": "2025-03-10T09:00:00Z",
                       "events": [{"kind": "start"}, {"kind": "request", "body": REQ}, {"kind": "response", "body": resp(i)}]},
    }


@pytest.mark.parametrize("shape", ["five_deep", "json_strings", "string_of_strings", "event_list"])
def test_bodies_found_at_depth_in_strings_and_lists(shape: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / f"{shape}.log"
    log.write_text("".join(json.dumps(shapes(i)[shape]) + "\n" for i in range(60)))
    r = cli("ingest", log, "--warehouse", tmp_path / "wh", "--json")
    assert r.exit_code == 0, r.output
    found = run_sql(tmp_path / "wh", "SELECT count(*) AS n, count(model_requested) AS with_request, "
                    "sum(input_tokens) AS tin, count(DISTINCT call_id) AS ids FROM calls").to_pylist()[0]
    assert found == {"n": 60, "with_request": 60, "tin": 540, "ids": 60}  # request AND response found in all 60


def test_key_at_any_depth_and_in_har_lists() -> None:
    bearer = "Bearer " + FIXTURE_KEY
    cases = [
        {"http": {"headers": {"authorization": bearer}}},
        {"a": {"b": {"c": {"request": {"headers": {"Authorization": bearer}}}}}},
        {"request": {"headers": [{"name": "Content-Type", "value": "json"}, {"name": "authorization", "value": bearer}]}},
        {"Headers": [{"Name": "Authorization", "Value": bearer}]},
        {"ctx": json.dumps({"headers": {"api-key": FIXTURE_KEY}})},
        {"go": {"Header": {"Authorization": [bearer]}}},
    ]
    paths = []
    for rec in cases:
        f = discover(rec)
        assert f.key is not None and f.key.endswith(FIXTURE_KEY), rec
        paths.append(f.paths["api_key"])
    assert paths == ["http.headers.authorization", "a.b.c.request.headers.Authorization", "request.headers.1.value",
                     "Headers.0.Value", "ctx.headers.api-key", "go.Header.Authorization.0"]


def test_a_value_that_only_looks_like_a_header_is_not_a_key() -> None:
    assert discover({"headers": {"authorization": "Basic dXNlcjpwYXNz"}}).key is None
    assert discover({"authorization": "not-a-key"}).key is None
    azure = discover({"headers": {"api-key": "0123456789abcdef0123456789abcdef"}})
    assert azure.key_azure and azure.key is not None
    assert discover({"headers": {"authorization": "0123456789abcdef0123456789abcdef"}}).key is None


def test_the_walk_is_bounded() -> None:
    wide = {"items": [{"x": i, "y": [{"z": j} for j in range(50)]} for i in range(200)]}
    f = discover(wide)
    assert f.nodes <= MAX_NODES
    deep: Any = {"request": REQ}
    for _ in range(50):
        deep = {"d": deep}
    assert discover(deep).request is None  # beyond the depth bound: not found, and no recursion error


def test_shallower_wins_and_implausible_times_are_not_timestamps() -> None:
    f = discover({"user": "outer", "ctx": {"user": "inner"}, "meta": {"time": 0.25}, "ts": "2025-03-10T09:00:00Z"})
    assert f.values["user"] == "outer" and f.paths["timestamp"] == "ts"
    assert discover({"meta": {"time": 0.25}}).values.get("timestamp") is None


def test_middleware_layout_keys_found_for_every_call(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: the key at http.headers.authorization was found 0 of 4 times."""
    log = tmp_path / "mw.log"
    def rec(i: int) -> dict[str, Any]:
        return {"ts": "2025-03-10T09:00:00Z", "http": {"route": f"/r{i}", "headers": {"authorization": "Bearer " + FIXTURE_KEY}},
                "user": {"id": f"u{i}"}, "llm": {"request": REQ, "response": resp(i)}}
    log.write_text("".join(json.dumps(rec(i)) + "\n" for i in range(4)))
    r = cli("ingest", log, "--warehouse", tmp_path / "wh", "--json")
    per_file = json.loads(r.output)["per_file"][0]
    assert (per_file["with_key"], per_file["with_user"], per_file["with_route"], per_file["with_ts"]) == (4, 4, 4, 4)
    keys = run_sql(tmp_path / "wh", "SELECT DISTINCT api_key_id FROM calls").to_pylist()
    assert keys == [{"api_key_id": "sk-…FZND"}]


def test_odd_shapes_azure_legacy_background(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", FIXTURES / "openai" / "odd_shapes.jsonl", "--warehouse", tmp_path / "wh", "--json")
    assert json.loads(r.output)["quarantined"] == 0
    rows = {(x["call_id"], x["estimate_flags"]): x for x in run_sql(
        tmp_path / "wh", "SELECT call_id, model_requested, model, api_key_id, endpoint, output_tokens, input_tokens, "
        "token_source, estimate_flags, metadata FROM calls_all").to_pylist()}
    az = rows[("chatcmpl-AZ1stream", None)]  # content-filter first chunk: still a stream, real id and model
    assert (az["model_requested"], az["model"], az["api_key_id"]) == ("essay-gpt4o", "gpt-4o-2024-08-06", "azure-…cdef")
    assert az["output_tokens"] > 0 and az["token_source"] == "estimated"
    az2 = rows[("chatcmpl-AZ2", None)]
    assert (az2["model"], az2["input_tokens"], az2["output_tokens"]) == ("gpt-4o-2024-08-06", 18, 3)
    leg = rows[("cmpl-LEG1", None)]  # legacy Completions stream: its id, its output, not interrupted
    assert (leg["endpoint"], leg["output_tokens"], leg["estimate_flags"]) == ("completions", 4, None)
    queued = rows[("resp_BG1", "response_queued")]
    assert (queued["input_tokens"], queued["output_tokens"], queued["token_source"]) == (0, 0, "estimated")
    assert ("resp_BG1", "response_in_progress") in rows
    final = run_sql(tmp_path / "wh", "SELECT input_tokens, output_tokens, token_source FROM calls "
                    "WHERE call_id = 'resp_BG1'").to_pylist()
    assert final == [{"input_tokens": 12, "output_tokens": 900, "token_source": "reported"}]  # the finished one counts


def test_profile_filter_exclusions_are_skipped_not_quarantined(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    profile = tmp_path / "p.yaml"
    profile.write_text("name: kinds\nwhen: {field: kind, equals: llm}\nfields:\n  request: [req]\n  response: [resp]\n")
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"kind": "llm", "ts": "2025-03-10T09:00:00Z", "req": REQ, "resp": resp(1)}) + "\n"
                   + json.dumps({"kind": "http", "ts": "2025-03-10T09:00:01Z", "path": "/health"}) + "\n"
                   + json.dumps({"kind": "http", "ts": "2025-03-10T09:00:02Z", "path": "/metrics"}) + "\n")
    r = cli("ingest", log, "--warehouse", tmp_path / "wh", "--format", f"profile:{profile}", "--json")
    s = json.loads(r.output)
    assert (s["calls"], s["skipped"], s["quarantined"]) == (1, 2, 0)


def test_a_file_that_is_not_a_log_is_named_and_skipped(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    (d / "table.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    (d / "calls.log").write_text(json.dumps({"ts": "2025-03-10T09:00:00Z", "request": REQ, "response": resp(1)}) + "\n")
    r = cli("ingest", d, "--warehouse", tmp_path / "wh", "--json", "--jobs", "1")
    s = json.loads(r.output)
    assert (s["calls"], s["quarantined"]) == (1, 0)
    skipped = {Path(f["path"]).name: f["note"] for f in s["per_file"] if f["not_a_log"]}
    assert set(skipped) == {"image.png", "table.csv"}
    assert "none of its first" in skipped["table.csv"]
    text = cli("ingest", d, "--warehouse", tmp_path / "wh2", "--jobs", "1")
    assert "table.csv: not read: none of its first 3 lines is JSON" in text.output
    detected = cli("formats", "detect", d / "image.png", d / "calls.log").output.splitlines()
    assert detected[0].split("\t")[1:] == ["not a log", "(0 of 23 sampled records matched)"]
    assert detected[1].split("\t")[1] == "openai"


def test_coverage_summary_line_and_warnings() -> None:
    a = FileResult("a.log", "openai", calls=10, with_key=10, with_user=9, with_route=10, with_ts=10)
    b = FileResult("b.log", "openai", calls=90, with_key=0, with_user=0, with_route=90, with_ts=90)
    line, warnings = coverage_summary([a, b])
    assert line == "coverage: key 10/100 (10%), user 9/100 (9%), route 100/100 (100%), timestamp 100/100 (100%)"
    assert len(warnings) == 2
    assert warnings[0].startswith("90 of 100 calls have no key (in b.log): ")
    assert "formats suggest" in warnings[0]
    assert coverage_summary([FileResult("c.log", None)]) == ("coverage: no calls", [])


SUGGEST_FIXTURES = ["docker/json-file.log", "cri/container.log", "journald/export.json", "gcp/cloud_run.jsonl",
                    "cloudwatch/subscription.jsonl", "cloudwatch/export.log", "otlp/logs.jsonl", "layouts/ecs.jsonl",
                    "layouts/pino.jsonl", "layouts/bunyan.jsonl", "layouts/structlog.jsonl",
                    "layouts/python_json_logger.jsonl", "layouts/slog.jsonl", "layouts/clef.jsonl",
                    "openai/odd_shapes.jsonl"]


@pytest.mark.parametrize("fixture", SUGGEST_FIXTURES)
def test_suggest_then_test_matches_every_field(fixture: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    profile = tmp_path / "p.yaml"
    r = cli("formats", "suggest", FIXTURES / fixture, "-o", profile)
    assert r.exit_code == 0, r.output
    text = profile.read_text()
    assert FIXTURE_KEY not in text and "0123456789abcdef0123456789abcdef" not in text  # keys shown redacted only
    assert any(k in text for k in ("sk-…FZND", "azure-…cdef"))
    t = cli("formats", "test", profile, FIXTURES / fixture, "--lines", "20")
    assert t.exit_code == 0, t.output
    assert "every profile field matched" in t.output, t.output
    assert "would be quarantined" not in t.output
    shown = [json.loads(chunk) for chunk in _json_blocks(t.output)]
    assert shown and all(s["ts"].endswith("Z") and "T" in s["ts"] for s in shown)  # ISO 8601


def test_formats_test_names_fields_that_matched_nothing(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    profile = tmp_path / "p.yaml"
    profile.write_text("name: wrong\nfields:\n  user: [who.is.it]\n  route: [route]\n  metadata: {tenant: ctx.tenant}\n")
    t = cli("formats", "test", profile, FIXTURES / "layouts" / "structlog.jsonl")
    assert "fields that matched nothing in 1 records: user, metadata.tenant" in t.output


def test_formats_detect_names_the_wrapper(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("formats", "detect", FIXTURES / "cri" / "container.log", FIXTURES / "layouts" / "slog.jsonl")
    lines = r.output.strip().splitlines()
    assert lines[0].endswith("\topenai\t(2 of 3 sampled records matched)\tinside cri")
    assert lines[1].endswith("\topenai\t(1 of 1 sampled records matched)")


def _json_blocks(output: str) -> list[str]:
    blocks, cur = [], []
    for line in output.splitlines():
        if line.startswith("record ") and line.endswith("{"):
            cur = ["{"]
        elif cur:
            cur.append(line)
            if line == "}":
                blocks.append("\n".join(cur))
                cur = []
    return blocks


def test_azure_sse_transcript_is_one_stream(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Azure's content-filter chunk (empty id) opens the stream; it must not be cut off as a stream of its own."""
    filt = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": [
        {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}]}
    def chunk(text: str, fin: str | None) -> dict[str, Any]:
        return {"choices": [{"delta": {"content": text}, "finish_reason": fin, "index": 0, "logprobs": None,
                             "content_filter_results": {}}], "created": 1741597200, "id": "chatcmpl-AZsse",
                "model": "gpt-4o-2024-08-06", "object": "chat.completion.chunk"}
    log = tmp_path / "azure.sse"
    log.write_text("".join(f"data: {json.dumps(e)}\n\n" for e in [filt, chunk("Hi", None), chunk("", "stop")]) + "data: [DONE]\n\n")
    r = cli("ingest", log, "--warehouse", tmp_path / "wh", "--json")
    assert json.loads(r.output)["calls"] == 1
    rows = run_sql(tmp_path / "wh", "SELECT call_id, model, estimate_flags FROM calls_all").to_pylist()
    assert [(x["call_id"], x["model"]) for x in rows] == [("chatcmpl-AZsse", "gpt-4o-2024-08-06")]
    assert "stream_interrupted" not in rows[0]["estimate_flags"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["Bearer " + FIXTURE_KEY, "2025-03-10T09:00:00Z", json.dumps(REQ), "data: {}", "{", "[1,"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["authorization", "headers", "user", "time", "request", "response", "name", "value", "x"])
        | st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@settings(deadline=None, max_examples=150)
@given(JSON_VALUES)
def test_discover_never_raises_and_stays_bounded(value: Any) -> None:
    f = discover(value)
    assert f.nodes <= MAX_NODES
    if f.key is not None:
        assert f.key.endswith(FIXTURE_KEY)  # only key-shaped values are ever taken as keys


@settings(deadline=None, max_examples=150)
@given(st.lists(st.binary(max_size=200) | st.sampled_from([
    b'{"log":"{\\"a\\":","stream":"stdout","time":"2025-03-10T09:00:00Z"}',
    b"2025-03-10T09:00:00Z stdout P {", b"2025-03-10T09:00:00Z stdout F }", b'{"resourceLogs":[{"scopeLogs":[{}]}]}',
    b'{"messageType":"DATA_MESSAGE","logEvents":[1,{"message":7}]}', b'{"MESSAGE":[300,-1,"x"],"__CURSOR":"c"}',
    b'{"logName":"l","jsonPayload":[],"httpRequest":{"latency":"xs"}}']), max_size=6))
def test_unwrapper_never_raises(lines: list[bytes]) -> None:
    u = Unwrapper()
    for i, line in enumerate(lines):
        for inner in u.feed(line.strip(), i) or []:
            assert inner.error is not None or inner.decoded or inner.data is not None
    u.flush()
    assert u.idle


def test_generic_names_deep_in_unrelated_objects_are_ignored() -> None:
    rec = {"job": {"db": {"conn": {"user": "postgres", "status": 404, "path": "/var/lib/x"}}}, "request": REQ}
    f = discover(rec)
    assert f.values == {}
    ok = discover({"ctx": {"user": "u1", "status": 429}, "request": REQ})
    assert (ok.values["user"], ok.values["status_code"]) == ("u1", 429)
    assert discover({"a": {"b": {"c": {"user": {"id": "u2"}}}}}).values["user"] == "u2"  # `user.id` is specific enough


def test_bodies_and_transcripts_after_leading_whitespace_are_found() -> None:
    """Loggers pretty-print or pad embedded bodies: `"\\n  {...}"` is still a body, `"\\n data: ..."` a stream."""
    sse = "\n  data: " + json.dumps({"id": "chatcmpl-ws", "object": "chat.completion.chunk", "created": 1,
                                    "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "hi"}}]})
    found = discover({"ctx": {"req_text": "\n   " + json.dumps(REQ), "transcript": sse}})
    assert found.request == REQ and found.paths["request"] == "ctx.req_text"
    assert found.response == sse and found.paths["response"] == "ctx.transcript"


def test_go_header_lists_are_read_like_plain_strings() -> None:
    found = discover({"http": {"headers": {"Authorization": [f"Bearer {FIXTURE_KEY}"], "X-Request-Id": ["req_1"]}},
                      "route": "/chat"})
    assert found.key == f"Bearer {FIXTURE_KEY}" and found.values["request_id"] == "req_1"
    assert found.values["route"] == "/chat"
