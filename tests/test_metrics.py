"""`watch --metrics`: /metrics scraped over real HTTP, per-commit counters, lag and bounded cost labels."""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from controls_data import RULES, call_line  # noqa: E402

from attribution.metrics import WatchMetrics, parse_address  # noqa: E402
from ingest.errors import TokentrailError  # noqa: E402


@dataclass
class Committed:  # the fields of ingest.pipeline.FileResult that metrics read
    path: str
    lines: int
    calls: int
    quarantined: int
    estimated: int
    offset: int


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_endpoint_scraped_by_a_real_http_client(tmp_path: Path, wh_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = tmp_path / "app.log"
    t = datetime(2025, 3, 10, 12, tzinfo=UTC)
    # 25 features for alpha: more than the label budget (top 3 here), so the rest must fold into "other".
    lines = [call_line(t, "alpha", 1000 * (i + 1), 10, route=f"/f{chr(97 + i)}/x", i=i) for i in range(25)]
    lines.append(call_line(t, "beta", 5, 1, route="/essays/1", i=99))
    log.write_text("".join(lines) + "partial")
    assert cli("ingest", log, "--warehouse", wh_path, "--rules", rules).exit_code == 0
    now = [1000.0]
    m = WatchMetrics(wh_path, top=3, cache_seconds=3600, clock=lambda: now[0])
    port = m.serve("127.0.0.1", 0)
    assert scrape(port).get("tokentrail_commits_total") == 0  # a scrape before any commit…
    try:
        size = log.stat().st_size
        m.observe(Committed(str(log), lines=26, calls=26, quarantined=0, estimated=2, offset=size - len("partial")))
        now[0] += 12.5
        got = scrape(port)
        assert got["tokentrail_lines_read_total"] == 26 and got["tokentrail_calls_total"] == 26
        assert got["tokentrail_estimated_calls_total"] == 2 and got["tokentrail_commits_total"] == 1
        assert got[f'tokentrail_source_lag_bytes{{source="{log}"}}'] == len("partial")
        assert got["tokentrail_seconds_since_last_commit"] == 12.5
        cost = {k: v for k, v in got.items() if k.startswith("tokentrail_cost_usd_total{")}
        assert len(cost) == 4  # top 3 (key, feature) pairs + other: bounded however many features exist
        assert 'tokentrail_cost_usd_total{feature="other",key_name="other"}' in cost
        assert 'tokentrail_cost_usd_total{feature="fy",key_name="alpha"}' in cost  # the biggest keep their names
        total_in = sum(v for k, v in got.items() if k.startswith("tokentrail_tokens_total{") and 'kind="input"' in k)
        assert total_in == sum(1000 * (i + 1) for i in range(25)) + 5  # nothing lost in the fold
        log.unlink()
        m.observe(Committed(str(log), lines=0, calls=0, quarantined=0, estimated=0, offset=size))
        assert not any(k.startswith("tokentrail_source_lag_bytes{") for k in scrape(port))  # a gone file is dropped
    finally:
        m.close()


def test_metrics_address_errors() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    with pytest.raises(TokentrailError, match="HOST:PORT"):
        parse_address("localhost")


@pytest.mark.slow
def test_watch_serves_metrics_while_it_runs(tmp_path: Path, wh_path: Path) -> None:
    import contextlib
    import signal
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = tmp_path / "logs"
    logs.mkdir()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    t = datetime(2025, 3, 10, 12, tzinfo=UTC)
    (logs / "app.log").write_text("".join(call_line(t, "alpha", 100, 1, i=i) for i in range(3)))
    proc = subprocess.Popen([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh_path),
                             "--rules", str(rules), "--metrics", f"127.0.0.1:{port}", "--flush-seconds", "0.2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        got: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and got.get("tokentrail_calls_total") != 3:
            with contextlib.suppress(OSError):  # not listening yet
                got = scrape(port)
            time.sleep(0.2)
        assert got.get("tokentrail_calls_total") == 3, got
        assert got['tokentrail_cost_usd_total{feature="unattributed",key_name="alpha"}'] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
