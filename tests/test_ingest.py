"""Batch ingest end to end: idempotence, appends, quarantine, gzip, partial lines, SQL results."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_KEY, REPO, ingest_files, tt_sql

from ingest.keys import display_id, scrub_bytes, scrub_text
from ingest.pipeline import IngestSummary
from ingest.tokens import count_request_input


def ingest(wh_path: Path, *paths: Path, **opts: Any) -> IngestSummary:
    summary: IngestSummary = ingest_files(wh_path, *paths, **opts)
    return summary


def count_calls(wh_path: Path) -> int:
    return int(tt_sql(wh_path, "SELECT count(*) FROM calls_all").fetchall()[0][0])


def app_line(i: int, ts: str = "2025-03-03T10:00:00Z", **extra: object) -> str:
    return json.dumps({
        "timestamp": ts, "route": "/r", "api_key": FIXTURE_KEY,
        "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"message {i}"}]},
        "response": {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini",
                     "choices": [], "usage": {"prompt_tokens": 10 + i, "completion_tokens": 5, "total_tokens": 15 + i}},
        **extra,
    }) + "\n"


def test_reingest_adds_nothing_and_append_adds_exactly_the_new_calls(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(app_line(i) for i in range(5)))
    assert ingest(wh_path, log).total("calls") == 5
    again = ingest(wh_path, log)
    assert again.total("calls") == 0 and again.total("lines") == 0
    with log.open("a") as fh:
        fh.write("".join(app_line(i) for i in range(5, 8)))
    assert ingest(wh_path, log).total("calls") == 3
    ids = tt_sql(wh_path, "SELECT call_id FROM calls_all").fetchall()
    assert sorted(i for (i,) in ids) == sorted(f"chatcmpl-{i}" for i in range(8))


def test_partial_last_line_is_held_until_completed(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "app.log"
    full = app_line(1)
    log.write_text(app_line(0) + full[:40])
    s = ingest(wh_path, log)
    assert s.total("calls") == 1 and s.files[0].held_bytes == 40
    with log.open("a") as fh:
        fh.write(full[40:])
    assert ingest(wh_path, log).total("calls") == 1
    assert count_calls(wh_path) == 2


def test_malformed_lines_go_to_quarantine_with_file_offset_reason(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "mixed.log"
    good = app_line(0)
    bad_json = '{"timestamp": "2025-03-03T10:00:00Z", "request": {"model": "gpt\n'
    bad_type = app_line(1).replace('"prompt_tokens": 11', '"prompt_tokens": "eleven"')
    negative = app_line(2).replace('"prompt_tokens": 12', '"prompt_tokens": -5')
    keyed = '{"oops": "' + FIXTURE_KEY + '", "trunc\n'
    log.write_text(good + bad_json + bad_type + negative + keyed)
    s = ingest(wh_path, log)
    assert (s.total("calls"), s.total("quarantined")) == (1, 4)
    rows = tt_sql(wh_path, "SELECT source_file, source_offset, reason, raw FROM quarantine ORDER BY 2"
    ).fetchall()
    offsets = [len(good), len(good) + len(bad_json), len(good) + len(bad_json) + len(bad_type),
               len(good) + len(bad_json) + len(bad_type) + len(negative)]
    assert [r[1] for r in rows] == offsets
    assert all(r[0] == str(log) for r in rows)
    assert "invalid JSON" in rows[0][2]
    assert "prompt_tokens='eleven' is not an integer" in rows[1][2]
    assert "outside 0.." in rows[2][2]
    assert FIXTURE_KEY.encode() not in rows[3][3] and display_id(FIXTURE_KEY).encode() in rows[3][3]


@pytest.mark.parametrize("forced", [None, "openai"])
def test_a_forced_format_skips_what_is_no_api_call_and_quarantines_another_formats_call(
        tmp_path: Path, cli, forced: str | None) -> None:  # type: ignore[no-untyped-def]
    """Forcing the format detection would pick reads the file the same way: a health-check line is skipped, not
    quarantined. A line another format reads as an API call (an OpenTelemetry span) is quarantined when the forced
    format cannot read it, so forcing the wrong format never drops calls unseen; and a record reporting token usage
    that no format reads is quarantined either way, never skipped as "not an API call"."""
    log = tmp_path / "app.log"
    span = (REPO / "tests" / "fixtures" / "otel" / "traces.jsonl").read_text().splitlines()[0]
    # a billed call of an endpoint no format parses (audio transcription): quarantined, never skipped unseen
    transcription = json.dumps({"ts": "2025-03-01T00:00:00Z", "request": {"model": "gpt-4o-transcribe"}, "response": {
        "text": "hi", "usage": {"type": "tokens", "input_tokens": 10, "output_tokens": 2, "total_tokens": 12}}})
    log.write_text(app_line(0) + '{"level": "info", "msg": "GET /healthz 200"}\n' + span + "\n" + transcription + "\n")
    args = ["--format", forced] if forced else []
    s = json.loads(cli("ingest", log, "--warehouse", tmp_path / "wh", "--json", *args).output)
    reasons = sorted(r[0] for r in tt_sql(tmp_path / "wh", "SELECT reason FROM quarantine").fetchall())
    if forced:
        assert (s["calls"], s["skipped"], s["quarantined"]) == (1, 1, 2)
        assert reasons == ["record does not have the shape of format openai (it reads as otel)",
                           "record reports token usage but no format reads it"]
    else:
        assert (s["calls"], s["skipped"], s["quarantined"]) == (5, 1, 1)  # detection reads the line's four spans too
        assert reasons == ["record reports token usage but no format reads it"]


def test_overlong_line_is_quarantined_by_reference_and_offset_advances(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "long.log"
    long_line = app_line(0).replace("message 0", "x" * 5000)
    log.write_text(app_line(1) + long_line + app_line(2))
    s = ingest(wh_path, log, max_line=2000)
    assert (s.total("calls"), s.total("quarantined")) == (2, 1)
    (reason, raw, length), = tt_sql(wh_path, "SELECT reason, raw, length FROM quarantine").fetchall()
    assert "exceeds the cap of 2000 bytes" in reason and raw is None and length == len(long_line)
    assert ingest(wh_path, log, max_line=2000).total("lines") == 0


def test_gzip_and_directories_are_read_recursively(tmp_path: Path, wh_path: Path) -> None:
    d = tmp_path / "logs" / "nested"
    d.mkdir(parents=True)
    with gzip.open(d / "old.log.gz", "wt") as fh:
        fh.write(app_line(0) + app_line(1))
    (tmp_path / "logs" / "new.log").write_text(app_line(2))
    s = ingest(wh_path, tmp_path / "logs")
    assert s.total("calls") == 3
    assert ingest(wh_path, tmp_path / "logs").total("calls") == 0


def test_renamed_file_is_recognised_by_fingerprint(tmp_path: Path, wh_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(app_line(i) for i in range(3)))
    ingest(wh_path, log)
    rotated = tmp_path / "app.log.1"
    log.rename(rotated)
    with rotated.open("a") as fh:
        fh.write(app_line(3))
    assert ingest(wh_path, rotated).total("calls") == 1
    assert count_calls(wh_path) == 4


def test_a_rewritten_file_with_a_new_first_line_is_read_as_a_new_source(tmp_path: Path, wh_path: Path) -> None:
    """(Truncation below the offset with the same first bytes: test_store::test_a_file_truncated_to_less_than_its_offset_is_read_from_zero.)"""
    log = tmp_path / "app.log"
    log.write_text("".join(app_line(i) for i in range(3)))
    ingest(wh_path, log)
    log.write_text(app_line(10, ts="2025-03-04T00:00:00Z"))  # a new first line: a new source, read from 0
    s = ingest(wh_path, log)
    assert s.total("calls") == 1 and count_calls(wh_path) == 4


def test_sql_counts_match_an_independent_count_of_the_input(wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """`select endpoint, count(*), sum(input_tokens)` checked against a plain-Python count of sample_logs/."""
    logs = REPO / "sample_logs"
    r = cli("ingest", logs, "--warehouse", wh_path)
    assert r.exit_code == 0, r.output
    expected_calls: Counter[str] = Counter()
    expected_input: Counter[str] = Counter()
    for path in sorted((logs / "app").iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", errors="replace") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                req = rec.get("request")
                if not isinstance(req, dict):
                    continue
                resp = rec.get("response")
                usage = None
                if isinstance(resp, dict):
                    if "error" in resp:
                        n = 0
                    else:
                        usage = resp.get("usage")
                elif isinstance(resp, list):
                    usage = next((c["usage"] for c in resp if c.get("usage")), None)
                if isinstance(resp, dict) and "error" in resp:
                    n = 0
                elif usage:
                    n = usage.get("prompt_tokens", usage.get("input_tokens"))
                    if not isinstance(n, int):
                        continue  # the corrupt line, quarantined
                else:
                    n = count_request_input(req)[0]
                ep = {"messages": "chat.completions", "prompt": "completions"}.get(
                    next((k for k in ("messages", "prompt") if k in req), ""),
                    "embeddings" if "embedding" in req["model"] else "responses")
                expected_calls[ep] += 1
                expected_input[ep] += n
    for path in (logs / "batch").glob("*output*"):
        for raw in path.read_text().splitlines():
            rec = json.loads(raw)
            body = (rec.get("response") or {}).get("body") or {}
            expected_calls["chat.completions"] += 1
            expected_input["chat.completions"] += (body.get("usage") or {}).get("prompt_tokens", 0)
    r = cli("sql", "select endpoint, count(*) as n, sum(input_tokens) as tokens from calls group by 1 order by 1",
            "--warehouse", wh_path, "--format", "json")
    assert r.exit_code == 0, r.output
    got = {row["endpoint"]: (row["n"], row["tokens"]) for row in json.loads(r.output)}
    assert got == {ep: (expected_calls[ep], expected_input[ep]) for ep in expected_calls}


def test_no_full_key_in_any_file_or_output(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from conftest import FIXTURES

    log = tmp_path / "k.log"
    log.write_text((FIXTURES / "openai" / "app_calls.jsonl").read_text() + '{"bad": "' + FIXTURE_KEY + '\n')
    outputs = [cli("ingest", log, "--warehouse", wh_path, "--json").output]
    outputs.append(cli("sql", "select * from calls", "--warehouse", wh_path, "--format", "json").output)
    outputs.append(cli("sql", "select * from quarantine", "--warehouse", wh_path, "--format", "csv").output)
    outputs.append(cli("report", "--by", "api_key_id", "--warehouse", wh_path).output)
    for out in outputs:
        assert FIXTURE_KEY not in out
    body = FIXTURE_KEY[12:52]
    for f in wh_path.rglob("*"):
        if f.is_file() and f.name != "hmac.key":
            assert body.encode() not in f.read_bytes(), f


def test_the_fingerprint_secret_lives_in_the_warehouse_and_is_shared(tmp_path: Path, wh_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.store import Store

    log = tmp_path / "a.log"
    log.write_text(app_line(0))
    ingest(wh_path, log)
    monkeypatch.chdir(tmp_path)
    relative = Store("warehouse").hasher.fingerprint("sk-test")
    absolute = Store(wh_path.resolve()).hasher.fingerprint("sk-test")
    assert relative == absolute  # every spelling (and every host) fingerprints keys alike
    (fp,) = {r[0] for r in tt_sql(wh_path, "SELECT api_key_fp FROM calls").fetchall()}
    assert fp == Store(wh_path).hasher.fingerprint(FIXTURE_KEY)


def test_scrubbers() -> None:
    text = f"Authorization: Bearer {FIXTURE_KEY} and sk-svcacct-abcdefghijklmnopqrstuv1234"
    assert FIXTURE_KEY not in scrub_text(text) and "sk-…FZND" in scrub_text(text) and "sk-…1234" in scrub_text(text)
    assert FIXTURE_KEY.encode() not in scrub_bytes(text.encode())


def test_without_estimation_missing_usage_stays_null_and_says_so(tmp_path: Path) -> None:
    """`estimate=False` (`--no-estimate`): no re-count, NULL tokens, token_source 'missing', flagged."""
    log = tmp_path / "app.log"
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]}
    response = {"id": "chatcmpl-noest", "object": "chat.completion", "created": 1741597200, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}
    log.write_text(json.dumps({"time": "2025-03-10T09:00:00Z", "request": request, "response": response}) + "\n")
    with_est, without = tmp_path / "wh-est", tmp_path / "wh-none"
    assert ingest_files(with_est, log).total("estimated") == 1
    assert ingest_files(without, log, estimate=False).total("estimated") == 0
    q = "SELECT input_tokens, output_tokens, token_source, estimate_flags FROM calls_all"
    (inp, out, source, _), = tt_sql(with_est, q).fetchall()
    assert inp and out and source == "estimated"
    assert tt_sql(without, q).fetchall() == [(None, None, "missing", "not_estimated")]
