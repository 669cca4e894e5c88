"""Inputs that used to stop or hang a run: each is now one file's or one line's problem, named in the output.

Runs that could hang (FIFOs, devices) go through a subprocess with a timeout, so a regression fails
the test instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import run

from attribution.query import run_sql
from ingest.errors import ConfigError
from ingest.sources import sample_lines

PY = [sys.executable, "-m", "attribution"]


def _call(i: int, user: str = "u") -> bytes:
    return json.dumps({"timestamp": "2025-03-03T10:00:00Z", "user": f"{user}{i}", "response": {
        "id": f"chatcmpl-f{i}", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini",
        "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}).encode()


def _lines(start: int, n: int) -> bytes:
    return b"".join(_call(i) + b"\n" for i in range(start, start + n))


def _ingest_json(*args: Any) -> dict[str, Any]:
    r = run("ingest", *args, "--json", "-j", "1")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def _counts_add_up(summary: dict[str, Any]) -> None:
    for f in summary["per_file"]:
        assert f["lines"] == f["call_lines"] + f["quarantined"] + f["skipped"], f


def _subprocess(*args: Any, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, *map(str, args)], capture_output=True, text=True, timeout=timeout)


# -- bad bytes inside a line --------------------------------------------------------------------


def test_invalid_utf8_inside_a_string_is_that_lines_problem(tmp_path: Path, wh_path: Path) -> None:
    lines = [_call(i) for i in range(100)]
    lines[50] = lines[50].replace(b'"u50"', b'"u\xff50"')  # one bad byte inside a JSON string
    lines[70] = b'{"timestamp": \xfe}'  # and one outside any string: not JSON at all
    log = tmp_path / "bad-bytes.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    s = _ingest_json(log, "--warehouse", wh_path)
    assert (s["calls"], s["quarantined"], s["repaired"]) == (99, 1, 1)
    _counts_add_up(s)
    users = {r["user"] for r in run_sql(wh_path, "SELECT user FROM calls").to_pylist()}
    assert "u\ufffd50" in users and "u49" in users and "u99" in users


def test_invalid_utf8_is_repaired_whichever_way_the_decoder_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec before 0.23 raised UnicodeDecodeError for invalid UTF-8 inside a string, 0.23 a DecodeError
    (pyproject allows both); a line whose JSON itself is broken stays an error either way."""
    import msgspec

    from ingest.formats.coerce import decode_line

    real = msgspec.json.decode
    bad = b'{"user": "u\xff50"}'
    assert decode_line(bad) == ({"user": "u\ufffd50"}, True)

    def older(data: bytes) -> object:  # msgspec < 0.23: a UnicodeDecodeError of its own
        data.decode("utf-8")
        return real(data)

    monkeypatch.setattr(msgspec.json, "decode", older)
    assert decode_line(bad) == ({"user": "u\ufffd50"}, True)
    monkeypatch.setattr(msgspec.json, "decode", real)
    with pytest.raises(msgspec.DecodeError):
        decode_line(b'{"user": "u50"')  # valid UTF-8, broken JSON: not retried as a repair


def test_invalid_utf8_in_a_batch_input_file_does_not_stop_the_index(tmp_path: Path, wh_path: Path) -> None:
    inp = tmp_path / "batch_input.jsonl"
    inp.write_bytes(b'{"custom_id": "t-0", "method": "POST", "url": "/v1/chat/completions", "body": '
                    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "caf\xe9"}]}}\n')
    s = _ingest_json(inp, "--warehouse", wh_path)
    assert s["calls"] == 0 and s["quarantined"] == 0  # input lines are not calls


# -- damaged compressed files -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbled", "not-gzip"])
def test_a_damaged_gz_is_named_and_later_files_are_read(tmp_path: Path, wh_path: Path, damage: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    data = gzip.compress(_lines(0, 2000))
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbled":
        data = data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:]
    else:
        data = b"\x1f\x8b\x09" + data[3:]  # gzip magic, unknown compression method
    (logs / "a-damaged.log.gz").write_bytes(data)
    (logs / "b-later.log").write_bytes(_lines(5000, 30))
    r = run("ingest", logs, "--warehouse", wh_path, "-j", "1")
    assert r.exit_code == 0, r.output
    assert "a-damaged.log.gz: compressed file is truncated or corrupt" in r.output
    s = _ingest_json(logs, "--warehouse", wh_path.parent / "again")
    _counts_add_up(s)
    later = run_sql(wh_path, "SELECT count(*) AS n FROM calls WHERE source_file LIKE '%b-later.log'").to_pylist()
    assert later == [{"n": 30}]
    if damage == "truncated":  # the lines before the damage are kept
        damaged = next(f for f in s["per_file"] if f["path"].endswith(".gz"))
        assert damaged["calls"] > 500 and damaged["note"]


# -- only regular files -------------------------------------------------------------------------


def test_fifos_sockets_and_devices_are_skipped_by_name(tmp_path: Path, wh_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.log").write_bytes(_lines(0, 5))
    os.mkfifo(logs / "pipe.log")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(logs / "sock.log"))
    try:
        t0 = time.monotonic()
        r = _subprocess("ingest", logs, "/dev/zero", "--warehouse", wh_path, "--json")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        notes = {Path(f["path"]).name: f["note"] for f in s["per_file"]}
        assert notes["pipe.log"] == "a FIFO, not a regular file: skipped"
        assert notes["sock.log"] == "a socket, not a regular file: skipped"
        assert notes["zero"] == "a character device, not a regular file: skipped"
        assert s["calls"] == 5
        d = _subprocess("formats", "detect", logs)
        assert d.returncode == 0 and "pipe.log\tskipped" in d.stdout and "good.log\topenai" in d.stdout
        assert time.monotonic() - t0 < 50
    finally:
        sock.close()


def test_a_fifo_put_in_place_after_discovery_is_refused_at_open(tmp_path: Path) -> None:
    import threading

    from ingest.sources import NotRegularFile, open_binary

    fifo = tmp_path / "late.log"
    os.mkfifo(fifo)

    def unblock() -> None:  # should open_binary block (the bug), a writer lets it return and the test fail
        time.sleep(3)
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        with contextlib.suppress(OSError), open(fifo, "wb"):
            pass

    threading.Thread(target=unblock, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(NotRegularFile, match="a FIFO"):
        open_binary(fifo)  # would block forever with a plain open()
    assert time.monotonic() - t0 < 2


def test_symlinks_are_followed_only_inside_the_roots(tmp_path: Path, wh_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:PLANTED-SHADOW-LINE:19000:0:99999:7:::\n")
    (outside / "other.log").write_bytes(_lines(100, 3))
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "sub" / "real.log").write_bytes(_lines(0, 4))
    (logs / "app.log").symlink_to(outside / "secret.txt")
    (logs / "other.log").symlink_to(outside / "other.log")
    (logs / "inside.log").symlink_to(logs / "sub" / "real.log")
    s = _ingest_json(logs, "--warehouse", wh_path)
    notes = {Path(f["path"]).name: f["note"] for f in s["per_file"] if f["note"]}
    assert set(notes) == {"app.log", "other.log"} and all("symlink leading outside" in n for n in notes.values())
    assert s["quarantined"] == 0 and s["calls"] == 4  # the inside link is followed: real.log's identity, read once
    assert run_sql(wh_path, "SELECT count(*) AS n FROM quarantine").to_pylist() == [{"n": 0}]
    for f in wh_path.rglob("*"):
        assert not f.is_file() or b"PLANTED-SHADOW" not in f.read_bytes()


# -- long lines ---------------------------------------------------------------------------------


def test_detection_sampling_never_holds_an_overlong_line(tmp_path: Path) -> None:
    log = tmp_path / "long.log"
    with open(log, "wb") as fh:
        fh.write(b'{"pad": "' + b"x" * (48 << 20) + b'"}\n')
        fh.write(_lines(0, 3))
    tracemalloc.start()
    try:
        lines = sample_lines(log, max_scan=64 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [json.loads(x)["response"]["id"] for x in lines] == ["chatcmpl-f0", "chatcmpl-f1", "chatcmpl-f2"]
    assert peak < 8 << 20, peak  # the line is 48 MiB


def _peak_rss_kb(*args: Any) -> int:
    """Peak RSS of one CLI process (measured by a parent that runs nothing else)."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
            "assert r.returncode == 0, r.stderr; print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *PY, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_a_huge_first_line_does_not_grow_memory(tmp_path: Path) -> None:
    small = tmp_path / "small.log"
    small.write_bytes(_lines(0, 3))
    big = tmp_path / "big.log"
    with open(big, "wb") as fh:
        fh.write(b'{"pad": "' + b"x" * (160 << 20) + b'"}\n')
        fh.write(_lines(0, 3))
    base = _peak_rss_kb("ingest", small, "--warehouse", tmp_path / "w1", "-j", "1")
    grown = _peak_rss_kb("ingest", big, "--warehouse", tmp_path / "w2", "-j", "1")
    detect = _peak_rss_kb("formats", "detect", big)
    assert grown - base < 80 << 10 and detect - base < 80 << 10, (base, grown, detect)  # KiB; the line is 160 MiB


# -- YAML alias bombs ---------------------------------------------------------------------------

BOMB = "version: 1\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
) + "rules: {feature: [{id: x, when: {route: {in: *i}}, value: v}]}\n"


def test_a_rule_file_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    from attribution.rules import load_rules

    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    assert len(BOMB) < 1000
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml:\d+: YAML aliases expand this file to over"):
        load_rules(f)
    assert time.perf_counter() - t0 < 0.5
    r = run("rules", "check", f)
    assert r.exit_code == 1 and "alias bomb" in r.output and "Traceback" not in r.output


def test_profile_and_price_file_alias_bombs_are_refused(tmp_path: Path) -> None:
    from attribution.pricing import load_price_file
    from ingest.formats.profile import load_profile

    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    for load in (load_profile, load_price_file):
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="alias bomb"):
            load(f)
        assert time.perf_counter() - t0 < 0.5


def test_ordinary_aliases_and_self_reference(tmp_path: Path) -> None:
    from attribution.rules import load_rules

    ok = tmp_path / "ok.yaml"
    ok.write_text("version: 1\nrules:\n  feature:\n    - {id: a, when: &w {route: {prefix: /x}}, value: x}\n"
                  "    - {id: b, when: *w, value: y}\n")
    assert load_rules(ok).rule_count == 2  # aliases as people use them still work
    loop = tmp_path / "loop.yaml"
    loop.write_text("version: 1\nx: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=r"loop\.yaml:2: YAML alias refers to itself"):
        load_rules(loop)
