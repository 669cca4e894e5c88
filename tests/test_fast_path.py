"""The `openai` format's fast path (`ingest.formats.fast_app`) is only an optimisation.

Differential tests: every row of `calls`, `usage` and `quarantine` (and every Call a line becomes) is
the same with the fast path on and off, for the fixtures, the sample logs, generated corpora and
hypothesis-made variations of the app-log envelope. Lines the fast path declines are still parsed
(the general way), and each decline exists for a reason: a case below fails without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_KEY, FIXTURES, REPO, ingest_files, tt_sql
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dispatch import Chunk, FileState, LineDispatcher
from ingest.formats import ParseContext, fast_app, get_format
from ingest.formats.discover import HEADER_CONTAINERS, names_a_leaf, norm
from ingest.formats.profile import DEFAULT_PROFILE
from ingest.keys import KeyHasher
from ingest.sources import Line

SECRET = b"fast-path-differential-secret!!!"
FALLBACK_TS = 1_741_000_000_000_000
BEARER = f"Bearer {FIXTURE_KEY}"


@contextlib.contextmanager
def fast_path(on: bool) -> Iterator[None]:
    before = fast_app.ENABLED
    fast_app.ENABLED = on
    fast_app.COUNTS.reset()
    try:
        yield
    finally:
        fast_app.ENABLED = before


@dataclasses.dataclass
class Outcome:
    calls: list[dict[str, Any]]
    bad: list[dict[str, Any]]
    lines: tuple[int, int, int, int]  # lines, call lines, skipped, repaired
    fast: int
    general: int

    def rows(self) -> tuple[Any, ...]:
        return self.calls, self.bad, self.lines


def outcome(lines: list[bytes], on: bool, fmt: str = "openai") -> Outcome:
    """Feed lines through the real per-line path (unwrapping, the file's format, quarantine) of one file."""
    with fast_path(on):
        ctx = ParseContext("app.log", "f" * 64, KeyHasher(SECRET), fallback_ts=FALLBACK_TS)
        dispatch = LineDispatcher(FileState(ctx, get_format(fmt)))
        chunk = Chunk(0)
        offset = 0
        for data in lines:
            dispatch.handle_line(Line(offset, len(data) + 1, data), chunk)
            offset += len(data) + 1
        dispatch.finish_file(chunk)
        return Outcome([dataclasses.asdict(c) for c in chunk.calls], chunk.bad,
                       (chunk.lines, chunk.call_lines, chunk.skipped, chunk.repaired), fast_app.COUNTS.fast,
                       fast_app.COUNTS.general)


def same_both_ways(lines: list[bytes], fmt: str = "openai") -> Outcome:
    on, off = outcome(lines, True, fmt), outcome(lines, False, fmt)
    assert off.fast == 0
    assert on.rows() == off.rows()
    return on


# -- the envelope and its variations ------------------------------------------------------------

CHAT_REQ = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Review essays."},
                                                 {"role": "user", "content": "Is this good?"}], "user": "stu-1"}
CHAT_REQ_NO_USER = {k: v for k, v in CHAT_REQ.items() if k != "user"}  # what the walk finds for `user` then shows
CHAT_RESP = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini-2024-07-18",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes."}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22}, "service_tier": "default"}
CHUNK = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1741000000, "model": "gpt-4o"}
STREAM = [{**CHUNK, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
          {**CHUNK, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
          {**CHUNK, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}]
REQUESTS: list[Any] = [
    CHAT_REQ,
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True, "metadata": {"team": "t1"}},
    {"model": "text-embedding-3-small", "input": ["a", "b"], "user": "stu-2"},
    {"model": "o4-mini", "instructions": "Summarize.", "input": "text", "safety_identifier": "ops"},
    {"model": "gpt-3.5-turbo-instruct", "prompt": "Once", "max_tokens": 5},
    {"messages": [{"role": "user", "content": "azure, no model"}]},
    {"model": "gpt-4o", "user_id": "u7"},  # not a request body: the walk looks into it
    json.dumps(CHAT_REQ),  # a body logged as a JSON string
    "",
    None,
]
RESPONSES: list[Any] = [
    CHAT_RESP,
    None,
    STREAM,
    STREAM[:1],
    {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
    {"id": "resp_1", "object": "response", "created_at": 1741000000, "status": "in_progress", "model": "o4-mini"},
    {"id": "resp_2", "object": "response", "created_at": 1741000000, "status": "completed", "model": "o4-mini",
     "output": [], "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}},
    {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "m",
     "usage": {"prompt_tokens": 3, "total_tokens": 3}},
    "data: " + json.dumps(STREAM[0]) + "\n\ndata: [DONE]\n\n",
    json.dumps(CHAT_RESP),
    {"id": "x-1", "user": "u2"},  # not a response body
    {**CHAT_RESP, "messages": [{"role": "user", "content": "echo"}]},  # a response that also looks like a request
    [],
    [{"user_id": "u5"}],
]
ODD: list[Any] = [
    "", " ", "plain text", "done", "data: " + json.dumps(STREAM[0]), "event: ping", '{"user_id": "u3"}', " [1, 2]", "{broken",
    "/v1/embeddings", "https://api.example.com/openai/deployments/dep-a/chat/completions?x=1", "/essays/review?q=1",
    "9.9.9.9, 10.0.0.1", "10.1.2.3:5678", "[2001:db8::1]:443", "2025-03-04T05:06:07Z", "1741000000", "not a time",
    BEARER, "0123456789abcdef0123456789abcdef", 0, 1, 200, 429, 700, -3, 1.5, 1741000000, 1741000000123, True, False,
    None, {"user_id": "u3"}, {"path": "/nested"}, {"ip": "5.6.7.8"}, ["v"], ["1.2.3.4"],
    [{"name": "x-request-id", "value": "har-1"}], {"name": "user", "value": "har-user"}, {"error": {"message": "m"}},
    [], {},
]
HEADER_NAMES = ["authorization", "Authorization", "api-key", "x-api-key", "x-request-id", "X-Request-Id", "x_request_id",
                "request-id", "x-forwarded-for", "x-real-ip", "user", "x-user-id", "x-feature", "x-tenant",
                "openai-organization", "OpenAI-Project", "openai-processing-ms", "x-ratelimit-remaining-tokens",
                "cookie", "content-type", "name", "value", "Name", "model", "input", "object", "timestamp", "date",
                "path", "url", "status", "messages"]
HEADER_TEXT = ["req_abc", "", "org-1", "9.9.9.9", "u-header", "/v1/embeddings", "/essays/other", BEARER,
               "https://h.openai.azure.com/openai/deployments/d2/chat/completions", "Bearer not-a-key", "429",
               "0123456789abcdef0123456789abcdef", "2025-03-04T05:06:07Z", ' {"user": "u6"}', '["x"]',
               "data: " + json.dumps(STREAM[0]), "event: ping", "\tdone"]
HEADER_VALUES: list[Any] = ["req_abc", "", "org-1", "proj_1", "text/plain", BEARER, "Bearer not-a-key", "  padded",
                            "0123456789abcdef0123456789abcdef", *ODD]
EXTRA_NAMES = ["url", "uri", "request_url", "endpoint", "path", "user", "user_id", "end_user", "ip", "remote_addr",
               "status", "http_status", "ts", "time", "@timestamp", "t", "request_id", "x_request_id", "api_key",
               "authorization", "key_alias", "org_id", "project", "duration_ms", "metadata", "tags", "context",
               "http", "req", "resp", "result", "chunks", "request_headers", "response_headers", "data", "payload",
               "log", "stream", "level", "event", "error", "msg", "message", "service", "trace_id", "pid",
               "severity", "model", "messages", "object"]
TYPED_VALUES: dict[str, list[Any]] = {
    "timestamp": ["2025-03-03T09:15:02.120Z", "2025-03-03T09:15:02+00:00", 1741000000, 1741000000.5, 1741000000123,
                  "1741000000", "", None, "garbage", True, "1999-01-01T00:00:00Z", {"t": 1}],
    "route": ["/essays/review", "/v1/chat/completions", "/openai/deployments/d1/embeddings", "", None, 5, False,
              {"path": "/x"}, ["/y"]],
    "client_ip": ["203.0.113.10", "1.2.3.4:80", "2001:db8::5", "a, b", "", 0, False, None, {"ip": "5.6.7.8"},
                  ["1.2.3.4"]],
    "status_code": [200, 429, 401, 1, 700, "200", True, None, "", 200.0],
    "latency_ms": [812.4, 3, "12.5", "", None, "slow", {}, True, 1e400],
    "level": ["info", "error", "debug", 30, None, "data: x", '{"user": "u"}', {"user": "u"}],
    "event": ["openai_call", "event: x", "", ["user"]],
    "error": ["client disconnected", {"message": "m"}, {"user_id": "u4"}, None],
}
_ABSENT = object()


@st.composite
def headers_strategy(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["dict", "dict", "dict", "dict", "har", "json", "odd", "absent"]))
    if kind == "absent":
        return _ABSENT
    if kind == "odd":
        return draw(st.sampled_from(ODD))
    pairs = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.sampled_from(HEADER_VALUES)), max_size=6))
    base = {"authorization": BEARER, "x-feature": "essay-review", "openai-organization": "org-a", "x-request-id": "req_1"}
    headers = {**base, **dict(pairs)} if draw(st.booleans()) else dict(pairs)
    if kind == "har":
        return [{"name": k, "value": v} for k, v in headers.items()]
    if kind == "json":
        return json.dumps(headers)
    return headers


CHANGES = ["field", "field", "headers", "header", "header", "request", "response", "extra", "order"]


@st.composite
def envelope(draw: st.DrawFn) -> dict[str, Any]:
    """The generated app log's envelope with up to three changes: a field's value or type, the headers or
    one header, a body, an extra key, the key order. Few changes at once: most lines still could take
    the fast path, so each change is tried there too."""
    record: dict[str, Any] = {
        "timestamp": "2025-03-03T09:15:02.120Z", "level": "info", "logger": "openai.client", "event": "openai_call",
        "route": "/essays/review", "client_ip": "203.0.113.10", "latency_ms": 812.4,
        "headers": {"authorization": BEARER, "x-feature": "essay-review", "openai-organization": "org-a",
                    "openai-project": "proj_a", "x-request-id": "req_1"},
        "request": draw(st.sampled_from([CHAT_REQ, CHAT_REQ_NO_USER])), "status_code": 200, "response": CHAT_RESP,
    }
    shuffle = False
    for change in draw(st.lists(st.sampled_from(CHANGES), max_size=3)):
        if change == "field":
            name = draw(st.sampled_from(sorted(TYPED_VALUES)))
            record[name] = draw(st.sampled_from([*TYPED_VALUES[name], _ABSENT]))
        elif change == "headers":
            record["headers"] = draw(headers_strategy())
        elif change == "header" and isinstance(record.get("headers"), dict):
            name = draw(st.sampled_from(HEADER_NAMES))
            value = draw(st.sampled_from(HEADER_TEXT) | st.sampled_from(HEADER_VALUES))
            record["headers"] = {**record["headers"], name: value}
        elif change == "request":
            record["request"] = draw(st.sampled_from([*REQUESTS, _ABSENT]))
        elif change == "response":
            record["response"] = draw(st.sampled_from([*RESPONSES, _ABSENT]))
        elif change == "extra":
            record[draw(st.sampled_from(EXTRA_NAMES))] = draw(st.sampled_from(ODD))
        elif change == "order":
            shuffle = True
    record = {k: v for k, v in record.items() if v is not _ABSENT}
    keys = draw(st.permutations(list(record))) if shuffle else list(record)
    return {k: record[k] for k in keys}


@settings(max_examples=400, deadline=None)
@given(st.lists(envelope(), min_size=1, max_size=3))
def test_envelope_variations_give_the_same_rows_either_way(records: list[dict[str, Any]]) -> None:
    same_both_ways([json.dumps(r).encode() for r in records])


@settings(max_examples=60, deadline=None)
@given(envelope())
def test_envelope_variations_in_a_docker_wrapper_give_the_same_rows(record: dict[str, Any]) -> None:
    line = json.dumps({"log": json.dumps(record) + "\n", "stream": "stdout", "time": "2025-03-03T09:15:03Z"})
    same_both_ways([line.encode()])


# Exhaustive: every header name and every extra key with every value, on envelopes where what the walk
# finds shows (no user in the request; no route, client IP or status; no response).
BASES = [{}, {"request": CHAT_REQ_NO_USER, "route": None, "client_ip": None, "status_code": None},
         {"request": CHAT_REQ_NO_USER, "response": None, "status_code": None}]


def test_every_header_name_with_every_value_gives_the_same_rows() -> None:
    base_headers = {"authorization": BEARER, "x-feature": "essay-review", "x-request-id": "req_1"}
    lines = [line(**base, headers={**base_headers, name: value})
             for base in BASES for name in HEADER_NAMES for value in HEADER_TEXT + ODD]
    got = same_both_ways(lines)
    assert 0 < got.fast < len(lines)


def test_every_extra_key_with_every_value_gives_the_same_rows() -> None:
    lines = [line(**{**base, name: value}) for base in BASES for name in EXTRA_NAMES + sorted(TYPED_VALUES)
             for value in ODD + HEADER_TEXT]
    got = same_both_ways(lines)
    assert 0 < got.fast < len(lines)


def test_every_request_with_every_response_gives_the_same_rows() -> None:
    lines = [line(**{**base, "request": request, "response": response}) for base in BASES
             for request in [*REQUESTS, CHAT_REQ_NO_USER] for response in RESPONSES]
    got = same_both_ways(lines)
    assert 0 < got.fast < len(lines)


# -- what takes the fast path, what declines, and why ---------------------------------------------

def line(**changes: Any) -> bytes:
    """One line of the generated app log's envelope; a value of None in `changes` removes the key."""
    record: dict[str, Any] = {
        "timestamp": "2025-03-03T09:15:02.120Z", "level": "info", "logger": "openai.client", "event": "openai_call",
        "route": "/essays/review", "client_ip": "203.0.113.10", "latency_ms": 812.4,
        "headers": {"authorization": BEARER, "x-feature": "essay-review", "openai-organization": "org-a",
                    "x-request-id": "req_1"},
        "request": CHAT_REQ, "status_code": 200, "response": CHAT_RESP,
    }
    order = changes.pop("_order", None)
    record.update(changes)
    record = {k: v for k, v in record.items() if v is not None}
    if order:
        record = {k: record[k] for k in order}
    return json.dumps(record).encode()


TAKEN = {
    "envelope": line(),
    "stream": line(response=STREAM),
    "request only": line(response=None, status_code=None),
    "error body": line(status_code=429, response=RESPONSES[4]),
    "no headers": line(headers=None),
    "epoch timestamp": line(timestamp=1741000000),
    "logger fields": line(error="client disconnected", severity="INFO", trace_id="abc", pid=7),
    "null route and ip": line(route="", client_ip=""),
    "status out of range": line(status_code=1),
    "plain headers": line(headers={"x-tenant": "t1", "cookie": "c", "x-ratelimit-limit": "5", "Authorization": BEARER}),
    "null latency": line(latency_ms=""),
}


@pytest.mark.parametrize("data", TAKEN.values(), ids=TAKEN.keys())
def test_the_envelope_takes_the_fast_path(data: bytes) -> None:
    got = same_both_ways([data])
    assert (got.fast, got.general) == (1, 0)
    assert len(got.calls) == 1


# Each of these must decline; each one's general result differs from what the fast path would read
# without its decline (the mutation tried is named), so deleting the branch fails the test.
DECLINED = {
    # not an envelope key (`record.keys() <= ENVELOPE_KEYS`): the URL names an Azure deployment
    "url key": line(url="https://x.openai.azure.com/openai/deployments/dep-a/chat/completions"),
    "user key": line(user_id="u9"),
    # the request is not a request body (`is_request_like(request)`): the walk looks into it
    "not a request": line(request={"model": "gpt-4o", "user_id": "u7"}),
    "request as JSON text": line(request=json.dumps(CHAT_REQ)),
    # the response is not a response body (`is_response(response)`)
    "not a response": line(response={"id": "x-1", "user": "u2"}),
    # a response that is also request-shaped, logged before the request: the walk then looks into the request
    "response like a request": line(response={**CHAT_RESP, "messages": [{"role": "user", "content": "e"}]},
                                    request={**CHAT_REQ, "user": None, "user_id": "u7"},
                                    _order=["timestamp", "response", "request", "route", "headers", "status_code"]),
    # a list that is not a stream (`is_stream(response)`); a body logged as JSON text
    "list not a stream": line(response=[{"user_id": "u5"}]),
    "response as JSON text": line(response=json.dumps(CHAT_RESP)),
    # typed fields of another type (`type(route) is not str`, client_ip, status_code)
    "route a number": line(route=5),
    "route an object": line(route={"path": "/x"}),
    "route JSON text": line(request=CHAT_REQ_NO_USER, route='{"user_id": "u3"}'),
    "client ip JSON text after blanks": line(request=CHAT_REQ_NO_USER, client_ip=' {"user": "u6"}'),
    "client ip zero": line(client_ip=0),
    "status a bool": line(status_code=True),
    # logger fields the walk would read (`_plain`, `_inert`)
    "level an object": line(level={"user_id": "u3"}),
    "event JSON text": line(event='{"user_id": "u3"}'),
    "event JSON text after blanks": line(event=' \t{"user_id": "u3"}'),
    "error an SSE transcript": line(response=None, error="data: " + json.dumps(STREAM[0])),
    # headers (`type(headers)`, `is_har_pair`, request/response-shaped, header names and values)
    "HAR header list": line(headers=[{"name": "x-request-id", "value": "har-1"}]),
    "one HAR pair": line(headers={"name": "x-request-id", "value": "har-1"}),
    "headers like a request": line(headers={"model": "m", "input": "x", "x-request-id": "req_h"}),
    "headers like a response": line(headers={"object": "response", "x-request-id": "req_h"}),
    "header a discovery name": line(client_ip=None, headers={"x-forwarded-for": "9.9.9.9"}),
    "header user": line(headers={"user": "u8"}),
    "header value a number": line(headers={"x-feature": 5}),
    "header value JSON text": line(headers={"x-feature": '{"user": "u6"}'}),
    "header value JSON text after blanks": line(headers={"x-feature": '\n {"user": "u6"}'}),
    "header value a stream": line(response=None, headers={"x-feature": "data: " + json.dumps(STREAM[0])}),
    "header value an SSE event": line(response=None, headers={"x-feature": "event: ping\ndata: " + json.dumps(STREAM[0])}),
    # a value that fails to parse: the general parser quarantines it
    "timestamp not a time": line(timestamp="garbage"),
    "latency not a number": line(latency_ms="slow"),
    "created far beyond any date": line(timestamp=None, response={**CHAT_RESP, "created": 67_768_036_191_676_796}),
}


@pytest.mark.parametrize("data", DECLINED.values(), ids=DECLINED.keys())
def test_declined_lines_are_parsed_the_general_way(data: bytes) -> None:
    got = same_both_ways([data])
    assert (got.fast, got.general) == (0, 1)
    assert len(got.calls) + len(got.bad) == 1 or got.lines[2] == 1  # a call, quarantined, or skipped: never lost


def test_no_logger_field_is_a_name_the_general_parser_reads() -> None:
    """The fast path passes over `PLAIN_KEYS`: none may be a discovery name, header container or profile path."""
    profile_paths = {p for paths in DEFAULT_PROFILE.fields.model_dump().values() if isinstance(paths, list) for p in paths}
    for key in fast_app.PLAIN_KEYS:
        assert not names_a_leaf("", key) and norm(key) not in HEADER_CONTAINERS and key not in profile_paths, key


def test_the_request_id_is_the_first_non_empty_one() -> None:
    """Kills `request_id is None` and `and value` in the header loop (the walk keeps the first non-empty)."""
    for headers in ({"X-Request-Id": "r1", "x-request-id": "r2"}, {"X-Request-Id": "", "x-request-id": "r2"}):
        got = same_both_ways([line(headers=headers)])
        assert got.fast == 1 and got.calls[0]["request_id"] in ("r1", "r2")


def test_a_split_container_line_being_joined_is_finished_first() -> None:
    """Kills `ctx.unwrap.idle` in the dispatcher: while a Docker or CRI line is being joined, no raw line is read
    directly (the held pieces are given up as a line of their own first, in order)."""
    whole = line().decode()
    docker = json.dumps({"log": whole[:200], "stream": "stdout", "time": "2025-03-03T09:15:03Z"}).encode()
    cri = b"2025-03-03T09:15:03.000000000Z stdout P " + whole[:200].encode()
    for first in (docker, cri):
        got = same_both_ways([first, line(route="/after")])
        assert got.fast == 1 and [c["route"] for c in got.calls] == ["/after"] and len(got.bad) == 1


def test_invalid_utf8_is_repaired_the_usual_way() -> None:
    """A raw line the fast path cannot decode goes the usual way: repaired (and counted), then read."""
    data = line(headers={"x-feature": "caf\u00e9"}).replace(b"caf\\u00e9", b"caf\xe9")
    got = same_both_ways([data])
    assert got.lines[3] == 1 and got.fast == 1 and got.calls[0]["metadata"]["x-feature"] == "caf\ufffd"


def test_a_profile_never_takes_the_fast_path(tmp_path: Path) -> None:
    """Kills `profile is DEFAULT_PROFILE` in `OpenAIAppFormat.record_parser`: a profile's `when:` filter decides."""
    profile = tmp_path / "warn-only.yaml"
    profile.write_text("name: warn-only\nwhen: {field: level, equals: warn}\n")
    got = same_both_ways([line(), line(level="warn")], fmt=f"profile:{profile}")
    assert got.fast == 0 and len(got.calls) == 1


# -- whole runs: every table, fast path on and off --------------------------------------------------

def table_rows(wh: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of calls, usage and quarantine, without `ingested_at` (the time of the run)."""
    order = {"calls_all": "source_file, source_offset, call_id", "usage_all": "source_file, source_offset, call_id",
             "quarantine": "source_file, source_offset"}
    return {t: tt_sql(wh, f"SELECT * EXCLUDE (ingested_at) FROM {t} ORDER BY {o}").fetchall() for t, o in order.items()}


def corpus(out: Path, calls: int, seed: int) -> Path:
    sys.path.insert(0, str(REPO / "sample_logs"))
    from make_samples import write_corpus

    write_corpus(out, calls, seed=seed, missing_usage=0.3)
    return out


INPUTS = {
    "fixtures": lambda tmp: [FIXTURES],
    "sample_logs": lambda tmp: [REPO / "sample_logs"],
    "corpus": lambda tmp: [corpus(tmp / "corpus", 600, seed=3)],
}


@pytest.mark.parametrize("name", INPUTS)
def test_every_table_is_the_same_with_the_fast_path_on_and_off(name: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One HMAC secret for both warehouses, so `api_key_fp` is compared too."""
    monkeypatch.setattr(secrets, "token_hex", lambda n=32: "5e" * n)
    inputs = INPUTS[name](tmp_path)
    rules = REPO / "sample_logs" / "rules.yaml"
    with fast_path(False):
        off = ingest_files(tmp_path / "off", *inputs, rules=rules)
    with fast_path(True):
        on = ingest_files(tmp_path / "on", *inputs, rules=rules)
        fast, general = fast_app.COUNTS.fast, fast_app.COUNTS.general
    assert on.as_dict()["calls"] == off.as_dict()["calls"] > 0
    rows_on, rows_off = table_rows(tmp_path / "on"), table_rows(tmp_path / "off")
    for table in rows_off:
        assert rows_on[table] == rows_off[table], table
    assert fast > 0
    if name != "fixtures":  # the generated app logs: every call line has the envelope; the health checks decline
        assert fast == sum(f.calls for f in on.files if f.format == "openai") and general > 0
