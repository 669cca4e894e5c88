"""Every OpenAI body shape from tests/fixtures/openai, ingested and read back through DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_KEY, ingest_files, tt_sql


def _ingest(wh_path: Path, *paths: Path) -> Any:
    summary = ingest_files(wh_path, *paths)
    return summary


def _rows(wh_path: Path) -> dict[str, dict[str, Any]]:
    rel = tt_sql(wh_path, "SELECT * FROM calls_all")
    return {r["call_id"]: r for r in rel.to_arrow_table().to_pylist()}


@pytest.fixture
def app_rows(wh_path: Path, fixtures: Path) -> dict[str, dict[str, Any]]:
    summary = _ingest(wh_path, fixtures / "openai" / "app_calls.jsonl")
    assert summary.total("lines") == 14
    assert summary.total("quarantined") == 0
    assert summary.total("skipped") == 1  # the /healthz line
    return _rows(wh_path)


def test_chat_completion_usage_details_headers_and_tier(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["chatcmpl-BAy1fixture0001"]
    assert r["endpoint"] == "chat.completions"
    assert (r["model_requested"], r["model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (r["input_tokens"], r["cached_input_tokens"], r["output_tokens"], r["reasoning_tokens"]) == (2006, 1920, 300, 0)
    assert r["total_tokens"] == 2306 and r["token_source"] == "reported"
    assert r["service_tier"] == "default"  # the response's tier wins over the requested "auto"
    assert (r["org_id"], r["project_id"], r["request_id"]) == ("org-fixture", "proj_fixture", "req_6b0e1f9d7c2a4e11")
    assert r["user"] == "stu-0042" and r["route"] == "/essays/review" and r["client_ip"] == "203.0.113.10"
    assert r["latency_ms"] == pytest.approx(812.4) and r["status_code"] == 200
    assert r["api_key_id"] == "sk-…FZND" and len(r["api_key_fp"]) == 64
    md = dict(r["metadata"])
    assert md["x-ratelimit-remaining-tokens"] == "149984" and md["x-feature"] == "essay-review"
    # a header that fills a column is not also metadata (nor when the walk at depth met the same headers again)
    assert not {"openai-organization", "openai-project", "x-request-id"} & set(md)
    assert r["system_prompt_head"] == "You are an essay reviewer." and len(r["system_prompt_fp"]) == 16
    assert str(r["ts"]).startswith("2025-03-03 09:15:02.120")


def test_reasoning_tokens_and_flex(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["chatcmpl-BAy1fixture0002"]
    assert (r["output_tokens"], r["reasoning_tokens"], r["service_tier"]) == (1200, 1024, "flex")
    assert r["system_prompt_head"] == "Summarize."  # developer role counts as the system prompt


def test_audio_tokens(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["chatcmpl-BAy1fixture0003"]
    assert (r["audio_input_tokens"], r["audio_output_tokens"], r["input_tokens"], r["output_tokens"]) == (100, 60, 120, 80)


def test_responses_api(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"]
    assert r["endpoint"] == "responses" and r["model"] == "o3-2025-04-16"
    assert (r["input_tokens"], r["cached_input_tokens"], r["output_tokens"], r["reasoning_tokens"]) == (1000, 256, 700, 640)
    assert r["user"] == "stu-0007"  # safety_identifier stands in for user
    assert r["system_prompt_head"] == "Be terse."  # instructions


def test_embeddings_dated_by_log_and_no_output(app_rows: dict[str, dict[str, Any]]) -> None:
    (r,) = [r for r in app_rows.values() if r["endpoint"] == "embeddings"]
    assert (r["input_tokens"], r["output_tokens"], r["token_source"]) == (9, 0, "reported")
    assert str(r["ts"]).startswith("2025-03-03 09:19:00")
    assert r["call_id"].startswith("tt-")  # embeddings have no id: stable synthetic id


def test_legacy_completions(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7"]
    assert (r["endpoint"], r["input_tokens"], r["output_tokens"]) == ("completions", 5, 7)


def test_errors_keep_their_row_with_zero_tokens(app_rows: dict[str, dict[str, Any]]) -> None:
    errors = {r["status_code"]: r for r in app_rows.values() if r["error_type"]}
    assert set(errors) == {429, 404}
    assert errors[429]["error_type"] == "tokens" and errors[404]["error_type"] == "invalid_request_error"
    for r in errors.values():
        assert (r["input_tokens"], r["output_tokens"], r["token_source"]) == (0, 0, "reported")


def test_stream_with_usage_is_reported(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["chatcmpl-BAy1fixture0009"]
    assert r["stream"] is True and r["token_source"] == "reported"
    assert (r["input_tokens"], r["output_tokens"]) == (24, 7)


def test_stream_without_usage_is_estimated_to_the_same_counts(app_rows: dict[str, dict[str, Any]]) -> None:
    reported = app_rows["chatcmpl-BAy1fixture0009"]
    estimated = app_rows["chatcmpl-BAy1fixture0010"]
    assert estimated["token_source"] == "estimated"
    assert (estimated["input_tokens"], estimated["output_tokens"]) == (reported["input_tokens"], reported["output_tokens"])
    assert estimated["reasoning_tokens"] is None  # cannot be seen in text: never guessed


def test_interrupted_stream_counts_what_was_received(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["chatcmpl-BAy1fixture0011"]
    assert r["token_source"] == "estimated" and "stream_interrupted" in r["estimate_flags"]
    assert r["input_tokens"] == 24 and r["output_tokens"] == 2  # "The deadline"


def test_request_only_log_estimates_input_and_leaves_output_unknown(app_rows: dict[str, dict[str, Any]]) -> None:
    (r,) = [r for r in app_rows.values() if r["route"] == "/counselor/chat" and not r["stream"]]
    assert r["input_tokens"] == 9 and r["output_tokens"] is None
    assert "output_unknown" in r["estimate_flags"]


def test_responses_sse_transcript(app_rows: dict[str, dict[str, Any]]) -> None:
    r = app_rows["resp_fixture14"]
    assert (r["endpoint"], r["input_tokens"], r["output_tokens"], r["stream"]) == ("responses", 12, 2, True)


def test_batch_output_joined_with_input(wh_path: Path, fixtures: Path) -> None:
    summary = _ingest(wh_path, fixtures / "openai" / "batch_input.jsonl", fixtures / "openai" / "batch_output.jsonl")
    assert summary.total("calls") == 3
    rows = _rows(wh_path)
    ok = rows["chatcmpl-batch0002"]
    assert ok["batch"] is True and ok["input_tokens"] == 22 and ok["request_id"] == "4b7e2f6a5c9d8e1f0a3b2c1d4e5f6a7b"
    assert ok["user"] == "eval-2" and ok["model_requested"] == "gpt-4o-mini"  # from the input file, by custom_id
    assert dict(ok["metadata"])["batch_custom_id"] == "task-2"
    failed = rows["batch_req_67b8e2a2d0fc8190b4b6c0d9c0f1e2a2"]
    assert failed["error_type"] == "batch_expired" and failed["input_tokens"] == 0
    # a failed line has no body to date it: it takes the batch's own earliest `created`
    assert str(failed["ts"]).startswith("2025-03-04") and "ts_from_previous_line" in failed["estimate_flags"]


def test_the_raw_key_appears_in_no_parquet_file(app_rows: dict[str, dict[str, Any]], wh_path: Path) -> None:
    secret_tail = FIXTURE_KEY[10:40].encode()
    files = list(wh_path.rglob("*.parquet"))
    assert files
    for f in files:
        data = f.read_bytes()
        assert FIXTURE_KEY.encode() not in data and secret_tail not in data


@pytest.mark.parametrize("layout", ["object", "har list"])
def test_header_columns_are_not_also_metadata_whatever_the_header_layout(layout: str, tmp_path: Path,
                                                                        wh_path: Path) -> None:
    import json

    headers = {"openai-organization": "org-x", "x-request-id": "req_1", "x-feature": "essays"}
    logged: Any = headers if layout == "object" else [{"name": k, "value": v} for k, v in headers.items()]
    response = {"id": "chatcmpl-hdr", "object": "chat.completion", "created": 1741597200, "model": "gpt-4o-mini",
                "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"time": "2025-03-10T09:00:00Z", "headers": logged, "response": response}) + "\n")
    ingest_files(wh_path, log)
    (org, request_id, md), = tt_sql(wh_path, "SELECT org_id, request_id, metadata FROM calls_all").fetchall()
    assert (org, request_id) == ("org-x", "req_1")
    assert dict(md) == {"x-feature": "essays"}
