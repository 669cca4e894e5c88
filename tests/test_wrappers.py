"""Container and cloud log wrappers, and the common JSON logging layouts, end to end through `ingest`.

Each fixture reproduces what the tool writes (tests/fixtures/README.md cites the source); every
call must come out with its key (redacted), user, route and timestamp, exactly.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from attribution.query import run_sql
from ingest.wrappers import Unwrapper

KEY_ID = "sk-…FZND"
COLS = "call_id, strftime(ts, '%Y-%m-%dT%H:%M:%S.%f') AS ts, api_key_id, user, route, client_ip, request_id, " \
       "status_code, latency_ms, input_tokens, output_tokens, metadata"


def ingest_rows(cli, wh: Path, *paths: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    r = cli("ingest", *paths, "--warehouse", wh, "--json", "--jobs", "1")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    rows = run_sql(wh, f"SELECT {COLS} FROM calls_all ORDER BY source_file, source_offset").to_pylist()
    out = {}
    for row in rows:
        row["metadata"] = dict(row["metadata"] or [])
        out[row["call_id"]] = row
    return summary, out


# call_id -> (ts, user, route, client_ip)
EXPECTED: dict[str, dict[str, tuple[str, str, str, str | None]]] = {
    "docker/json-file.log": {
        "chatcmpl-docker1": ("2025-03-10T09:00:00.000000", "u-docker-1", "/essays/grade", None),
        "chatcmpl-docker2": ("2025-03-10T09:00:00.000000", "u-docker-2", "/essays/long", None),
    },
    "cri/container.log": {
        "chatcmpl-cri1": ("2025-03-10T09:01:00.500000", "u-cri-1", "/essays/grade", "10.1.2.3"),
        "chatcmpl-cri2": ("2025-03-10T09:01:05.000000", "u-cri-2", "/essays/grade", "10.1.2.3"),
    },
    "journald/export.json": {
        "chatcmpl-journald1": ("2025-03-10T09:00:00.000000", "u-journald", "/essays/grade", None),
    },
    "gcp/cloud_run.jsonl": {
        "chatcmpl-gcp1": ("2025-03-10T09:00:00.000000", "u-gcp", "/essays/grade", "198.51.100.23"),
    },
    "cloudwatch/subscription.jsonl": {
        "chatcmpl-cw1": ("2025-03-10T09:00:00.000000", "u-cw-1", "/essays/grade", None),
        "chatcmpl-cw2": ("2025-03-10T09:00:00.000000", "u-cw-2", "/essays/grade", None),
    },
    "cloudwatch/export.log": {
        "chatcmpl-cw3": ("2025-03-10T09:00:00.000000", "u-cw-3", "/essays/grade", None),
    },
    "otlp/logs.jsonl": {
        "chatcmpl-otlp1": ("2025-03-10T09:00:00.000000", "u-otlp-1", "/essays/grade", "192.0.2.44"),
        "chatcmpl-otlp2": ("2025-03-10T09:00:00.000000", "u-otlp-2", "/essays/outline", None),
    },
    "layouts/ecs.jsonl": {"chatcmpl-ecs1": ("2025-03-10T09:05:00.123000", "u-ecs", "/essays/grade", "203.0.113.5")},
    "layouts/pino.jsonl": {"chatcmpl-pino1": ("2025-03-10T09:06:00.123000", "u-pino", "/essays/grade", "::ffff:203.0.113.9")},
    "layouts/bunyan.jsonl": {"chatcmpl-bunyan1": ("2025-03-10T09:06:00.000000", "u-bunyan", "/essays/grade", "203.0.113.10")},
    "layouts/structlog.jsonl": {"chatcmpl-structlog1": ("2025-03-10T09:07:00.123456", "u-structlog", "/essays/grade", None)},
    "layouts/python_json_logger.jsonl": {
        "chatcmpl-pjl1": ("2025-03-10T09:08:00.123000", "u-pjl", "/essays/grade", "203.0.113.11")},
    "layouts/slog.jsonl": {"chatcmpl-slog1": ("2025-03-10T09:09:00.123456", "u-slog", "/essays/grade", "203.0.113.12")},
    "layouts/clef.jsonl": {"chatcmpl-clef1": ("2025-03-10T09:10:00.123456", "u-clef", "/essays/grade", "203.0.113.13")},
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_wrapper_and_layout_fixtures(fixture: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    summary, rows = ingest_rows(cli, tmp_path / "wh", FIXTURES / fixture)
    assert summary["quarantined"] == 0
    assert set(rows) == set(EXPECTED[fixture])
    for call_id, (ts, user, route, ip) in EXPECTED[fixture].items():
        row = rows[call_id]
        assert (row["ts"], row["api_key_id"], row["user"], row["route"], row["client_ip"]) == (ts, KEY_ID, user, route, ip)
    per_file = summary["per_file"][0]
    n = len(EXPECTED[fixture])
    assert (per_file["with_key"], per_file["with_user"], per_file["with_route"], per_file["with_ts"]) == (n, n, n, n)


def test_wrapper_context_fills_what_the_record_lacks(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, rows = ingest_rows(cli, tmp_path / "wh", FIXTURES / "gcp" / "cloud_run.jsonl", FIXTURES / "otlp" / "logs.jsonl",
                          FIXTURES / "journald" / "export.json", FIXTURES / "cloudwatch" / "subscription.jsonl",
                          FIXTURES / "layouts" / "ecs.jsonl", FIXTURES / "layouts" / "clef.jsonl")
    gcp = rows["chatcmpl-gcp1"]
    assert (gcp["status_code"], gcp["latency_ms"]) == (200, pytest.approx(1234.567))
    assert gcp["metadata"]["service_name"] == "essay-api" and gcp["metadata"]["resource.type"] == "cloud_run_revision"
    assert rows["chatcmpl-otlp1"]["metadata"]["service.name"] == "essay-api"
    assert rows["chatcmpl-otlp1"]["metadata"]["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert rows["chatcmpl-journald1"]["metadata"]["host.name"] == "web-3"
    assert rows["chatcmpl-cw1"]["metadata"]["log_group"] == "/ecs/essay-api"
    assert rows["chatcmpl-ecs1"]["request_id"] == "req-ecs-1"
    assert rows["chatcmpl-clef1"]["request_id"] == "0HMPNHL0JHL76:00000001"


def test_docker_split_line_is_rejoined_and_text_lines_are_skipped(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    summary, rows = ingest_rows(cli, tmp_path / "wh", FIXTURES / "docker" / "json-file.log")
    assert rows["chatcmpl-docker2"]["input_tokens"] == 5000  # the 20 KB record, split at 16 KiB, read whole
    # 5 physical lines: 2 text lines skipped, 1 whole call, 2 pieces of one call; nothing quarantined
    assert (summary["lines"], summary["skipped"], summary["quarantined"], summary["calls"]) == (5, 2, 0, 2)


def test_a_split_line_half_written_waits_for_its_rest(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A growing file whose last Docker record is a 16 KiB piece: nothing is committed past the piece,
    so the next run reads the piece and its rest together (no quarantine, no lost call)."""
    lines = (FIXTURES / "docker" / "json-file.log").read_bytes().splitlines(keepends=True)
    log = tmp_path / "c-json.log"
    log.write_bytes(b"".join(lines[:3]))  # up to and including the first piece
    wh = tmp_path / "wh"
    first, rows = ingest_rows(cli, wh, log)
    assert set(rows) == {"chatcmpl-docker1"} and first["quarantined"] == 0
    with log.open("ab") as fh:
        fh.write(b"".join(lines[3:]))
    second, rows = ingest_rows(cli, wh, log)
    assert set(rows) == {"chatcmpl-docker1", "chatcmpl-docker2"} and second["quarantined"] == 0


def test_cri_partial_lines_are_joined() -> None:
    u = Unwrapper()
    assert u.feed(b"2025-03-10T09:01:05.1Z stdout P {\"a\":", 0) is None and not u.idle
    assert u.feed(b"2025-03-10T09:01:05.2Z stdout P  1,", 40) is None
    out = u.feed(b"2025-03-10T09:01:05.3Z stdout F \"b\": 2}", 80)
    assert out is not None and u.idle
    assert [(i.offset, i.record) for i in out] == [(0, {"a": 1, "b": 2})]
    assert out[0].envelope is not None and out[0].envelope.ts == 1741597265100000


def test_a_piece_whose_rest_never_comes_is_given_up_as_its_own_line() -> None:
    u = Unwrapper()
    assert u.feed(b'{"log":"{\\"a\\":1","stream":"stdout","time":"2025-03-10T09:00:00Z"}', 0) is None
    out = u.feed(b'{"not":"docker"}', 70)
    assert out is not None and u.idle
    assert out[0].error is not None and out[0].offset == 0  # the orphan piece: bad JSON, quarantined
    assert out[1].record == {"not": "docker"}


def test_journald_byte_array_message_is_not_a_call_and_not_quarantined(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    summary, _ = ingest_rows(cli, tmp_path / "wh", FIXTURES / "journald" / "export.json")
    assert (summary["calls"], summary["skipped"], summary["quarantined"]) == (1, 1, 0)


def test_otlp_batch_gives_each_record_its_own_call(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    summary, rows = ingest_rows(cli, tmp_path / "wh", FIXTURES / "otlp" / "logs.jsonl")
    assert summary["calls"] == 2 and rows["chatcmpl-otlp2"]["input_tokens"] == 12


def test_final_line_without_newline_is_read_once_the_file_is_quiet(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    src = (FIXTURES / "layouts" / "pino.jsonl").read_bytes().rstrip(b"\n")
    other = (FIXTURES / "layouts" / "bunyan.jsonl").read_bytes()
    log = tmp_path / "app.log"
    log.write_bytes(other + src)  # the last line has no newline
    fresh, rows = ingest_rows(cli, tmp_path / "wh1", log)
    assert set(rows) == {"chatcmpl-bunyan1"}  # still being written, perhaps: held
    old = time.time() - 60
    os.utime(log, (old, old))
    quiet, rows = ingest_rows(cli, tmp_path / "wh2", log)
    assert set(rows) == {"chatcmpl-bunyan1", "chatcmpl-pino1"}


def test_a_split_line_over_the_cap_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.wrappers as w

    monkeypatch.setattr(w, "MAX_JOINED", 100)
    u = Unwrapper()
    piece = b'{"log":"' + b"x" * 60 + b'","stream":"stdout","time":"2025-03-10T09:00:00Z"}'
    assert u.feed(piece, 0) is None
    out = u.feed(piece, 120)
    assert out is not None and u.idle and out[0].error == "docker split line over 100 bytes"


def test_wrapper_time_is_the_call_time_when_the_record_has_none(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A request-only record without a timestamp: the wrapper's time, not the file's mtime."""
    inner = {"route": "/x", "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}
    log = tmp_path / "c-json.log"
    log.write_text(json.dumps({"log": json.dumps(inner) + "\n", "stream": "stdout",
                               "time": "2025-03-10T09:30:00.250000001Z"}) + "\n")
    r = cli("ingest", log, "--warehouse", tmp_path / "wh", "--json")
    assert json.loads(r.output)["per_file"][0]["with_ts"] == 1
    rows = run_sql(tmp_path / "wh", "SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f') AS ts, estimate_flags FROM calls").to_pylist()
    assert rows[0]["ts"] == "2025-03-10T09:30:00.250000"
    assert "ts_from_file_mtime" not in (rows[0]["estimate_flags"] or "")


def test_a_batch_line_with_bad_records_is_one_quarantine_row(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Forcing a format the records of an OTLP batch do not have: one row for the line, each record's reason."""
    r = cli("ingest", FIXTURES / "otlp" / "logs.jsonl", "--warehouse", tmp_path / "wh", "--format", "kong", "--json")
    s = json.loads(r.output)
    assert (s["lines"], s["quarantined"], s["calls"]) == (1, 1, 0)
    (reason,) = [x["reason"] for x in run_sql(tmp_path / "wh", "SELECT reason FROM quarantine").to_pylist()]
    assert reason.startswith("record 0: record does not have the shape of format kong (it reads as openai); record 1: ")


def test_docker_attrs_never_carry_a_key_into_metadata(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """`--log-opt env=OPENAI_API_KEY` copies the key into every line's attrs: it must not reach the warehouse."""
    from conftest import FIXTURE_KEY

    inner = {"ts": "2025-03-10T09:00:00Z", "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}}
    log = tmp_path / "c-json.log"
    log.write_text(json.dumps({"log": json.dumps(inner) + "\n", "stream": "stdout", "time": "2025-03-10T09:00:00Z",
                               "attrs": {"OPENAI_API_KEY": FIXTURE_KEY, "tag": "essay-api", "note": "k=" + FIXTURE_KEY}}) + "\n")
    cli("ingest", log, "--warehouse", tmp_path / "wh")
    (md,) = [dict(r["metadata"]) for r in run_sql(tmp_path / "wh", "SELECT metadata FROM calls").to_pylist()]
    assert md == {"stream": "stdout", "tag": "essay-api", "note": "k=sk-…FZND"}
