"""Budget alerts delivered to a real HTTP server on 127.0.0.1: once per threshold x period, across restarts,
retried with backoff, after traffic stops (timer) and at SIGTERM (shutdown tick)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from controls_data import RULES, call_line  # noqa: E402

from attribution.alerts import (  # noqa: E402
    AlertEvaluator,
    AlertLoop,
    DeliveryError,
    JsonFileStateStore,
    JsonLinesSink,
    WebhookSink,
)
from attribution.budgets import read_only_ruleset  # noqa: E402

M = 1_000_000  # gpt-4o-mini: $0.15 per 1M input tokens


class Hook:
    """A webhook receiver: records JSON bodies; `fail_next` answers 503 that many times first."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.fail_next = 0
        self.fail_status = 503
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                data = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                if hook.fail_next > 0:
                    hook.fail_next -= 1
                    self.send_response(hook.fail_status)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(data))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [str(b["text"]) for b in self.bodies]


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


def ingest(cli, tmp_path: Path, wh: Path, rules: Path, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / f"in-{len(list(tmp_path.glob('in-*')))}.log"
    log.write_text("".join(lines))
    assert cli("ingest", log, "--warehouse", wh, "--rules", rules).exit_code == 0


def test_webhook_once_per_threshold_across_restarts_with_retries(cli, tmp_path: Path, wh_path: Path, rules: Path,
                                                                 hook: Hook) -> None:  # type: ignore[no-untyped-def]
    ingest(cli, tmp_path, wh_path, rules, [call_line(datetime(2025, 3, 10, tzinfo=UTC), "alpha", 4 * M)])  # $0.60 of $1
    rs = read_only_ruleset(wh_path, rules)
    state = tmp_path / "state.json"
    slept: list[float] = []

    def evaluator() -> AlertEvaluator:  # a fresh process: new objects, the same state file
        return AlertEvaluator(wh_path, rs, [WebhookSink(hook.url, sleep=slept.append), JsonLinesSink(tmp_path / "a.jsonl")],
                              JsonFileStateStore(state))

    hook.fail_next = 2  # two 503s, then accepted: retried with exponential backoff within one tick
    r = evaluator().tick()
    assert [a["threshold"] for _, a in r.delivered] == [0.5, 0.5] and not r.failed
    assert slept == [0.5, 1.0] and hook.attempts == 3
    assert hook.texts() == ["tokentrail: budget alpha-month (key_name=alpha, month from 2025-03-01) reached 50% of its limit: "
                            "$0.600000 of $1.000000 (60%), projected $1.860000"]  # 10 of 31 days
    assert evaluator().tick().delivered == []  # restart: nothing is sent twice
    ingest(cli, tmp_path, wh_path, rules, [call_line(datetime(2025, 3, 11, tzinfo=UTC), "alpha", 4 * M)])  # $1.20
    assert [a["threshold"] for _, a in evaluator().tick().delivered] == [1.0, 1.0]
    assert evaluator().tick().delivered == []
    assert len(hook.bodies) == 2 and all(set(b) == {"text"} for b in hook.bodies)  # Slack-compatible body
    assert "secret-token" not in state.read_text()  # the hook URL (often the secret) is not stored
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2


def test_failed_delivery_is_retried_on_the_next_tick_not_lost(cli, tmp_path: Path, wh_path: Path, rules: Path,
                                                              hook: Hook) -> None:  # type: ignore[no-untyped-def]
    ingest(cli, tmp_path, wh_path, rules, [call_line(datetime(2025, 3, 10, tzinfo=UTC), "alpha", 8 * M)])  # $1.20
    rs = read_only_ruleset(wh_path, rules)
    state = JsonFileStateStore(tmp_path / "state.json")
    ev = AlertEvaluator(wh_path, rs, [WebhookSink(hook.url, retries=1, sleep=lambda s: None)], state)
    hook.fail_next = 10
    r = ev.tick()
    assert r.delivered == [] and len(r.failed) == 2 and "HTTP 503" in r.failed[0][2]
    assert hook.url.split("/hooks")[1] not in r.failed[0][2]  # the secret part of the URL is never in a message
    hook.fail_next = 0
    assert sorted(a["threshold"] for _, a in ev.tick().delivered) == [0.5, 1.0]
    assert ev.tick().delivered == []


def test_a_tick_that_cannot_evaluate_the_budgets_is_said_once_not_silently_skipped() -> None:
    """A failing evaluation (here one that raises; before, an unknown budget time zone) must reach the watcher's
    stderr: once while it keeps failing, again when it fails anew after a good tick."""
    from ingest.errors import ConfigError

    class Flaky:
        outcomes: list[Exception | None] = [ConfigError("budget b: broken"), ConfigError("budget b: broken"), None,
                                            ConfigError("budget b: broken")]

        def tick(self) -> object:
            outcome = self.outcomes.pop(0)
            if outcome is not None:
                raise outcome
            from attribution.alerts import TickResult
            return TickResult()

    said: list[str] = []
    loop = AlertLoop(Flaky(), 0, on_error=said.append)  # type: ignore[arg-type]
    for _ in range(4):
        loop.poll()  # interval 0: every poll ticks
    assert said == ["budgets not evaluated, no alert sent (retried next tick): budget b: broken"] * 2


def test_the_watchers_alert_loop_reports_a_failed_evaluation(tmp_path: Path) -> None:
    from attribution.alerts import alert_loop_for_watch
    from attribution.rules import load_rules
    from ingest.keys import KeyHasher

    (tmp_path / "r.yaml").write_text("version: 1\nbudgets:\n  - {id: b, limit_usd: 1}\n")
    rs = load_rules(tmp_path / "r.yaml", KeyHasher(b"k" * 32))
    said: list[str] = []
    loop = alert_loop_for_watch(tmp_path / "gone", rs, tmp_path / "alerts.jsonl", [], "json", 0, tmp_path / "state.json",
                                report=said.append, start=False)
    assert loop is not None
    loop.poll()
    assert len(said) == 1 and said[0].startswith("budgets not evaluated, no alert sent (retried next tick): no warehouse")


def test_client_errors_are_not_retried(hook: Hook) -> None:
    sink = WebhookSink(hook.url, retries=3, sleep=lambda s: None)
    hook.fail_next, hook.fail_status = 10, 404
    with pytest.raises(DeliveryError, match="webhook at 127.0.0.1:[0-9]+: HTTP 404"):
        sink.send({"text": "x"})
    assert hook.attempts == 1  # a 404 will not get better by retrying


def _watch(wh: Path, logs: Path, rules: Path, url: str, state: Path | None, seconds: str) -> subprocess.Popen[str]:
    """`state` None: delivery marks in the warehouse's `_meta` table (the default, shared by hosts)."""
    extra = ["--alert-state", str(state)] if state is not None else []
    return subprocess.Popen([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh),
                             "--rules", str(rules), "--webhook", url, *extra,
                             "--alert-seconds", seconds, "--flush-seconds", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(pred, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_watch_alerts_after_traffic_stops_and_at_sigterm_once_across_restart(tmp_path: Path, wh_path: Path, rules: Path,
                                                                             hook: Hook) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    state = None  # the warehouse keeps the delivery marks
    (logs / "app.log").write_text(call_line(datetime(2025, 3, 10, tzinfo=UTC), "alpha", 4 * M))  # crosses 50%
    proc = _watch(wh_path, logs, rules, hook.url, state, "0.5")
    try:
        # No further lines after the first commit: the timer alone delivers the alert.
        assert _until(lambda: len(hook.bodies) == 1), "no alert after traffic stopped"
        assert "reached 50%" in hook.texts()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # Restart with a timer too slow to fire: the 100% crossing is delivered by the shutdown tick, the 50% never again.
    with (logs / "app.log").open("a") as fh:
        fh.write(call_line(datetime(2025, 3, 11, tzinfo=UTC), "alpha", 4 * M))
    proc = _watch(wh_path, logs, rules, hook.url, state, "3600")
    try:
        from attribution.query import run_sql

        assert _until(lambda: run_sql(wh_path, "select count(*) as n from calls").column("n")[0].as_py() == 2)
        time.sleep(0.3)
        assert len(hook.bodies) == 1  # the timer has not fired yet
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert len(hook.bodies) == 2 and "exceeded its limit" in hook.texts()[1]


def test_two_hosts_sharing_the_warehouse_announce_a_crossing_once(cli, tmp_path: Path, wh_path: Path, rules: Path,
                                                                 hook: Hook) -> None:  # type: ignore[no-untyped-def]
    """Without --alert-state the marks live in the warehouse: a second host's watcher sends nothing again."""
    from attribution.alerts import WarehouseStateStore
    from ingest.store import Store

    ingest(cli, tmp_path, wh_path, rules, [call_line(datetime(2025, 3, 10, tzinfo=UTC), "alpha", 8 * M)])  # $1.20
    rs = read_only_ruleset(wh_path, rules)

    def host() -> AlertEvaluator:  # each host opens the shared warehouse itself
        store = Store(wh_path)
        return AlertEvaluator(store, rs, [WebhookSink(hook.url, retries=1, sleep=lambda s: None)],
                              WarehouseStateStore(store))

    first, second = host(), host()
    assert sorted(a["threshold"] for _, a in first.tick().delivered) == [0.5, 1.0]
    assert second.tick().delivered == [] and len(hook.bodies) == 2
