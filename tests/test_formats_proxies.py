"""Proxy, gateway, telemetry and stream formats, read from fixtures shaped like the real tools' output."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_KEY, FIXTURES, ingest_files, tt_sql

from ingest.formats import REGISTRY, all_formats, detect_lines
from ingest.sources import open_binary


def ingest(wh_path: Path, *paths: Path, fmt: str | None = None) -> Any:
    s = ingest_files(wh_path, *paths, fmt=fmt)
    return s


def rows(wh_path: Path) -> dict[str, dict[str, Any]]:
    rel = tt_sql(wh_path, "SELECT * FROM calls_all")
    return {r["call_id"]: r for r in rel.to_arrow_table().to_pylist()}


@pytest.mark.parametrize(("path", "expected"), [
    ("litellm/standard_payload.jsonl", "litellm"), ("litellm/spend_logs.jsonl", "litellm"),
    ("litellm/spend_logs.csv", "litellm-spend-csv"), ("otel/traces.jsonl", "otel"), ("kong/file_log.jsonl", "kong"),
    ("nginx/access.jsonl", "nginx"), ("sse/streams.sse", "sse"), ("openai/app_calls.jsonl", "openai"),
    ("openai/batch_output.jsonl", "openai-batch"), ("openai/batch_input.jsonl", "openai-batch"),
])
def test_detection_per_fixture(path: str, expected: str) -> None:
    with open_binary(FIXTURES / path) as fh:
        fmt, n = detect_lines(list(fh))
    assert fmt is not None and fmt.name == expected and n > 0


def test_a_directory_mixing_every_format(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    mixed = tmp_path / "mixed"
    shutil.copytree(FIXTURES, mixed, ignore=shutil.ignore_patterns("*.md"))
    r = cli("formats", "detect", mixed)
    detected = dict(line.split("\t")[:2] for line in r.output.strip().splitlines())
    assert detected[str(mixed / "kong" / "file_log.jsonl")] == "kong"
    assert detected[str(mixed / "otel" / "traces.jsonl")] == "otel"
    assert "unknown" not in detected.values()
    summary = ingest(wh_path, mixed)
    by_file = {Path(f.path).relative_to(mixed).as_posix(): f.format for f in summary.files}
    assert by_file["sse/streams.sse"] == "sse" and by_file["litellm/spend_logs.csv"] == "litellm-spend-csv"
    assert summary.total("quarantined") == 0


def test_litellm_standard_payload(wh_path: Path) -> None:
    ingest(wh_path, FIXTURES / "litellm" / "standard_payload.jsonl")
    r = rows(wh_path)
    ok = r["chatcmpl-litellm0001"]
    assert (ok["input_tokens"], ok["cached_input_tokens"], ok["output_tokens"]) == (1500, 1024, 20)
    assert (ok["model"], ok["model_requested"], ok["endpoint"]) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "chat.completions")
    assert (ok["user"], ok["client_ip"], ok["key_alias"]) == ("stu-0042", "203.0.113.10", "essay-backend-key")
    assert ok["api_key_id"] == "litellm:…6b4b" and len(ok["api_key_fp"]) == 64
    assert "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b" not in str(ok)  # LiteLLM's hash is re-keyed
    md = dict(ok["metadata"])
    assert md["team_id"] == "team-essays" and md["tag.feature"] == "essay-review" and md["spend_logs_metadata.feature"] == "essay-review"
    assert md["litellm_cost_usd"] == "0.0001485" and md["x-ratelimit-remaining-tokens"] == "198500"
    assert ok["latency_ms"] == pytest.approx(1500) and str(ok["ts"]).startswith("2025-03-05 10:00:00.25")
    assert ok["system_prompt_head"] == "You are an essay reviewer."
    naive = r["chatcmpl-litellm0002"]
    assert str(naive["ts"]).startswith("2025-03-05 10:05:00.123456") and naive["cached_input_tokens"] == 1024
    failed = r["7b1e4c9a-failure"]
    assert (failed["error_type"], failed["status_code"], failed["input_tokens"]) == ("RateLimitError", 429, 0)
    # billed as rejected: zero, reported, nothing flagged (its messages are no reason to say "no_response")
    assert (failed["output_tokens"], failed["token_source"], failed["estimate_flags"]) == (0, "reported", None)
    emb = r["litellm-emb-0001"]
    assert (emb["endpoint"], emb["input_tokens"], emb["output_tokens"]) == ("embeddings", 7, 0)


def test_litellm_spend_logs_json_and_csv(wh_path: Path) -> None:
    ingest(wh_path, FIXTURES / "litellm" / "spend_logs.jsonl", FIXTURES / "litellm" / "spend_logs.csv")
    r = rows(wh_path)
    row = r["chatcmpl-spend0001"]
    assert (row["input_tokens"], row["output_tokens"], row["user"], row["client_ip"]) == (40, 12, "stu-0099", "2001:db8:10::5")
    assert row["key_alias"] == "counselor-key" and dict(row["metadata"])["tag.feature"] == "counselor-chat"
    assert row["latency_ms"] == pytest.approx(2500)
    assert r["chatcmpl-spend0002"]["error_type"] == "AuthenticationError" and r["chatcmpl-spend0002"]["status_code"] == 401
    assert (r["chatcmpl-csv0002"]["input_tokens"], r["chatcmpl-csv0002"]["output_tokens"]) == (80, 12)
    assert dict(r["chatcmpl-csv0002"]["metadata"])["litellm_cost_usd"] == "0.00032"


def test_otel_genai_spans(wh_path: Path) -> None:
    s = ingest(wh_path, FIXTURES / "otel" / "traces.jsonl")
    assert s.total("calls") == 4 and s.total("skipped") == 1  # the HTTP span is skipped, the HTTP-only line too
    r = rows(wh_path)
    chat = r["chatcmpl-otel0001"]
    assert (chat["input_tokens"], chat["output_tokens"], chat["cached_input_tokens"]) == (1200, 80, 1024)
    assert (chat["model"], chat["model_requested"], chat["user"]) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "stu-0042")
    assert chat["latency_ms"] == pytest.approx(1250) and chat["service_tier"] == "default"
    md = dict(chat["metadata"])
    assert (md["service.name"], md["deployment.environment"], md["gen_ai.provider"]) == ("essay-api", "prod", "openai")
    emb = r["otel-5b8efff798038103d269b633813fc60c-aaa19b7ec3c1b175"]
    assert (emb["endpoint"], emb["input_tokens"], emb["output_tokens"]) == ("embeddings", 9, 0)  # deprecated names, int numbers
    est = r["otel-6c8efff798038103d269b633813fc60d-ccc19b7ec3c1b177"]
    assert est["token_source"] == "estimated" and est["input_tokens"] == 9 and est["output_tokens"] > 0
    assert est["stream"] is True and est["user"] == "stu-0007"
    err = r["otel-7d8efff798038103d269b633813fc60e-ddd19b7ec3c1b178"]
    assert (err["error_type"], err["input_tokens"]) == ("NotFoundError", 0)
    assert (err["output_tokens"], err["token_source"], err["estimate_flags"]) == (0, "reported", None)


def test_kong_ai_proxy(wh_path: Path) -> None:
    ingest(wh_path, FIXTURES / "kong" / "file_log.jsonl")
    r = rows(wh_path)
    ok = r["chatcmpl-kong0001"]
    assert (ok["input_tokens"], ok["output_tokens"], ok["model"], ok["model_requested"]) == (320, 45, "gpt-4o-mini-2024-07-18", "gpt-4o-mini")
    assert (ok["route"], ok["client_ip"], ok["key_alias"], ok["status_code"]) == ("essay-review", "198.51.100.23", "essay-backend", 200)
    assert str(ok["ts"]).startswith("2025-03-07 09:00:00.123") and ok["latency_ms"] == 1215
    assert ok["system_prompt_head"] == "You are an essay reviewer." and ok["api_key_id"] is None  # Kong logs the key as REDACTED
    old = r["kong-1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"]
    assert (old["input_tokens"], old["output_tokens"]) == (100, 10)  # Kong 3.7-3.9 singular field names
    err = r["kong-aa0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"]
    assert (err["status_code"], err["error_type"], err["input_tokens"]) == (429, "http_429", 0)


def test_nginx_json_access_log(wh_path: Path) -> None:
    s = ingest(wh_path, FIXTURES / "nginx" / "access.jsonl")
    assert (s.total("calls"), s.total("skipped")) == (3, 1)  # /healthz is not an API call
    r = rows(wh_path)
    chat = r["req_5f3a9c0b1e2d4f6a8b7c"]
    assert chat["output_tokens"] is None and "output_unknown" in chat["estimate_flags"]
    assert (chat["client_ip"], chat["user"], chat["api_key_id"], chat["org_id"]) == ("203.0.113.77", "stu-0101", "sk-…FZND", "org-fixture")
    assert chat["latency_ms"] == pytest.approx(1204)
    emb = r["req_6a4b0d1c2f3e5a7b9c8d"]
    assert "request_body_not_logged" in emb["estimate_flags"] and emb["input_tokens"] is None
    assert (r["req_7b5c1e2d3a4f6b8c0d9e"]["error_type"], r["req_7b5c1e2d3a4f6b8c0d9e"]["input_tokens"]) == ("http_429", 0)
    for f in wh_path.rglob("*.parquet"):
        assert FIXTURE_KEY.encode() not in f.read_bytes()


def test_nginx_escaped_body_counts_like_the_same_request_body(wh_path: Path) -> None:
    from ingest.tokens import count_request_input

    ingest(wh_path, FIXTURES / "nginx" / "access.jsonl")
    expected, _ = count_request_input({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say \"hi\"\n twice"}]})
    assert rows(wh_path)["req_5f3a9c0b1e2d4f6a8b7c"]["input_tokens"] == expected


def test_sse_transcripts(tmp_path: Path, wh_path: Path) -> None:
    fresh = tmp_path / "streams.sse"  # written just now: its open stream is not yet open_record_timeout old
    shutil.copyfile(FIXTURES / "sse" / "streams.sse", fresh)
    s = ingest(wh_path, fresh)
    r = rows(wh_path)
    assert (r["chatcmpl-sse0001"]["input_tokens"], r["chatcmpl-sse0001"]["output_tokens"]) == (24, 7)
    tools = r["chatcmpl-sse0002"]
    assert tools["token_source"] == "estimated" and tools["output_tokens"] > 0 and tools["input_tokens"] is None
    assert (r["resp_sse0003"]["endpoint"], r["resp_sse0003"]["input_tokens"]) == ("responses", 30)
    assert "chatcmpl-sse0004" not in r  # a stream still open in a file that may grow is held back
    assert s.files[0].held_bytes > 0
    final = ingest(wh_path.parent / "wh2", fresh, fmt="sse")
    assert final.total("calls") == 3


def test_sse_stream_completed_later_is_not_split(tmp_path: Path, wh_path: Path) -> None:
    text = (FIXTURES / "sse" / "streams.sse").read_text()
    cut = text.index("data: [DONE]")  # end of the first stream
    f = tmp_path / "s.sse"
    f.write_text(text[: cut - 60])
    assert ingest(wh_path, f).total("calls") == 0
    f.write_text(text)
    ingest(wh_path, f)
    r = rows(wh_path)
    assert r["chatcmpl-sse0001"]["token_source"] == "reported" and len(r) == 3


def test_gzip_sse_counts_a_cut_off_stream_as_interrupted(tmp_path: Path, wh_path: Path) -> None:
    import gzip

    g = tmp_path / "streams.sse.gz"
    with gzip.open(g, "wb") as fh:
        fh.write((FIXTURES / "sse" / "streams.sse").read_bytes())
    ingest(wh_path, g)
    cut = rows(wh_path)["chatcmpl-sse0004"]
    assert "stream_interrupted" in cut["estimate_flags"] and cut["output_tokens"] == 3


def test_same_call_from_app_and_proxy_counts_once(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The app logged chatcmpl-litellm0001 and so did LiteLLM: `calls`/`usage` fold it, `calls_all` keeps both."""
    import json

    app = tmp_path / "app.log"
    app.write_text(json.dumps({"timestamp": "2025-03-05T10:00:00Z", "route": "/essays/review", "response": {
        "id": "chatcmpl-litellm0001", "object": "chat.completion", "created": 1741168801, "model": "gpt-4o-mini",
        "choices": [], "usage": {"prompt_tokens": 1500, "completion_tokens": 20, "total_tokens": 1520}}}) + "\n")
    cli("ingest", app, FIXTURES / "litellm" / "standard_payload.jsonl", "--warehouse", wh_path)
    out = cli("sql", "select (select count(*) from calls_all where call_id = 'chatcmpl-litellm0001') as raw, "
              "(select count(*) from usage where call_id = 'chatcmpl-litellm0001') as folded", "--warehouse", wh_path,
              "--format", "csv").output.split()
    assert out == ["raw,folded", "2,1"]


def test_mapping_profile_and_formats_test_command(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import json

    log = tmp_path / "custom.log"
    log.write_text("\n".join(json.dumps(x) for x in [
        {"@t": 1741600000000, "kind": "llm", "ctx": {"tenant": "acme", "who": "u-9", "path": "/x/y", "creds": f"Bearer {FIXTURE_KEY}"},
         "payload": {"in": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                     "out": {"id": "chatcmpl-prof1", "object": "chat.completion", "created": 1741600000, "model": "gpt-4o",
                             "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}}}},
        {"@t": 1741600001000, "kind": "audit", "msg": "login"}]) + "\n")
    profile = tmp_path / "profile.yaml"
    profile.write_text("name: acme-app\nwhen: {field: kind, equals: llm}\nfields:\n  timestamp: ['@t']\n  timestamp_unit: ms\n"
                       "  api_key: [ctx.creds]\n  user: [ctx.who]\n  route: [ctx.path]\n  request: [payload.in]\n"
                       "  response: [payload.out]\n  metadata: {tenant: ctx.tenant}\n")
    r = cli("formats", "test", profile, log)
    assert r.exit_code == 0 and '"call_id": "chatcmpl-prof1"' in r.output and "skipped: excluded by the profile's `when:` filter" in r.output
    assert FIXTURE_KEY not in r.output
    assert cli("ingest", log, "--warehouse", wh_path, "--format", f"profile:{profile}").exit_code == 0
    row = rows(wh_path)["chatcmpl-prof1"]
    assert (row["user"], row["route"], row["api_key_id"], dict(row["metadata"])["tenant"]) == ("u-9", "/x/y", "sk-…FZND", "acme")
    assert str(row["ts"]).startswith("2025-03-10")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields:\n  timestmp: [x]\n")
    r = cli("formats", "test", bad, log)
    assert r.exit_code == 1 and "bad.yaml:2: fields.timestmp: unknown field" in r.output


def test_formats_list_names_every_registered_format(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("formats", "list").output
    first_cells = {line.split("│")[1].strip() for line in out.splitlines() if line.count("│") >= 3}
    expected = {f.name for f in all_formats()} | {f"{p.prefix}:FILE" for p in REGISTRY.prefixes()}
    assert expected >= {"openai", "openai-batch", "litellm", "litellm-spend-csv", "otel", "kong", "nginx", "sse",
                        "profile:FILE"}
    assert expected <= first_cells  # each name is a row of its own, not a substring of another (openai-batch)
