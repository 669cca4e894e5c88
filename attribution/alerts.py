"""Budget alerts that fire: evaluated on a timer and at shutdown, delivered once per sink.

`AlertEvaluator.tick(now)` evaluates every budget (as of the end of the day of the newest
committed call, so replayed logs alert for their own period) and delivers each crossed
threshold x period to every sink that has not had it yet. Delivery state lives behind a
tiny `StateStore` protocol (a JSON file here; a Delta table in the warehouse later), never in
the warehouse's own files, and a key is written only after its sink accepted the alert: a
failed delivery is retried on the next tick, a delivered one is never sent again, across
restarts. Sinks: a JSON-lines file and a webhook (Slack-compatible body), retried with
exponential backoff. `AlertLoop` runs ticks on a thread for `watch`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ingest.errors import BadArgument, DeliveryError, TokentrailError

from .budgets import BudgetStatus, evaluate
from .output import format_cost
from .query import WarehouseRef, connect
from .rules import RuleSet


class StateStore(Protocol):
    """Where delivered alert keys are remembered: `get` a key's value, `put` one (durably)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


class JsonFileStateStore:
    """A JSON object in one file, replaced atomically on each `put` (write, fsync, rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: dict[str, str] = {}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text("utf-8") or "{}")
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokentrailError(f"{self.path}:1: alert state is not a JSON object ({exc}); move it away to "
                                      f"start over (alerts already sent would be sent again)") from None
            if not isinstance(loaded, dict):
                raise TokentrailError(f"{self.path}:1: alert state is not a JSON object")
            self._data = {str(k): str(v) for k, v in loaded.items()}

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def put(self, key: str, value: str) -> None:
        self._data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(self._data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class WarehouseStateStore:
    """Delivery marks kept in the warehouse's `_meta` table: shared by every host writing the
    warehouse, so a threshold crossed once is announced once, whichever watcher sees it first."""

    PREFIX = "alert:"

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, key: str) -> str | None:
        found = self.store.meta.all(refresh=True).get(self.PREFIX + key)
        return None if found is None else str(found)

    def put(self, key: str, value: str) -> None:
        self.store.meta.put(self.PREFIX + key, value)


def default_state_path(warehouse: str | Path) -> Path:
    """Outside the warehouse (which may be object storage): one file per warehouse location."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tokentrail"
    digest = hashlib.sha256(str(Path(warehouse).resolve()).encode()).hexdigest()[:16]
    return base / f"alerts-{digest}.json"


def _num(v: Decimal | int | float) -> int | float:
    return v if isinstance(v, int) else float(v)


def alert_from_status(st: BudgetStatus, threshold: float, now: datetime) -> dict[str, Any]:
    def amount(v: Any) -> str:
        return f"${format_cost(v)}" if st.unit == "usd" else f"{int(v):,} tokens"

    kind = "exceeded" if threshold >= 1.0 else f"reached {threshold:.0%} of"
    text = (f"tokentrail: budget {st.id} ({st.scope}, {st.period} from {st.period_start[:10]}) {kind} its limit: "
            f"{amount(st.spent)} of {amount(st.limit)} ({st.share:.0%}), projected {amount(st.projected)}")
    return {"alert": "budget_threshold", "key": f"budget|{st.id}|{threshold}|{st.period_start}", "budget": st.id,
            "threshold": threshold, "status": st.status, "scope": st.scope, "period": st.period,
            "period_start": st.period_start, "period_end": st.period_end, "unit": st.unit, "spent": _num(st.spent),
            "limit": _num(st.limit), "share": st.share, "projected": _num(st.projected),
            "at": now.astimezone(UTC).isoformat(), "text": text}


class Sink(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


class JsonLinesSink:
    """Appends one JSON object per alert to a file (fsynced before the alert counts as delivered)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path.resolve()}"

    def send(self, alert: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host (the message shows only the scheme: the URL is often the secret)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadArgument(f"webhook URL must be http(s)://host/…, got {parts.scheme or 'no scheme'}")
    return url


class WebhookSink:
    """POSTs JSON to a URL. `slack`: `{"text": …}` (Slack/Mattermost/Teams-compatible incoming
    webhooks); `json`: the whole alert object (which also has `text`). Connection errors, 429 and
    5xx are retried with exponential backoff; other 4xx fail at once (retrying will not help)."""

    def __init__(self, url: str, body: str = "slack", retries: int = 3, backoff: float = 0.5, timeout: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(check_webhook_url(url))
        self.url, self.body, self.retries, self.backoff, self.timeout, self._sleep = url, body, retries, backoff, timeout, sleep
        # The URL is often the secret (Slack hook tokens): name the sink by a digest, show only the host.
        self.name = "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]
        self.where = parts.netloc

    def payload(self, alert: dict[str, Any]) -> bytes:
        body = {"text": alert["text"]} if self.body == "slack" else alert
        return json.dumps(body).encode()

    def send(self, alert: dict[str, Any]) -> None:
        data = self.payload(alert)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "tokentrail"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) checked above
                    resp.read()
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
        raise DeliveryError(f"webhook at {self.where}: {last}")


@dataclass
class TickResult:
    delivered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (sink name, alert)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (sink name, alert key, reason)


class AlertEvaluator:
    """Call `tick()` on a timer, after commits and once at shutdown; it is cheap when nothing crossed."""

    def __init__(self, root: WarehouseRef, ruleset: RuleSet, sinks: Sequence[Sink], state: StateStore) -> None:
        self.root, self.ruleset, self.sinks, self.state = root, ruleset, list(sinks), state
        self._lock = threading.Lock()

    def tick(self, now: datetime | None = None) -> TickResult:
        now = now or datetime.now(UTC)
        result = TickResult()
        if not self.ruleset.budgets or not self.sinks:
            return result
        with self._lock:
            con = connect(self.root)
            try:
                (newest,), = con.sql("SELECT max(ts) FROM usage").fetchall()
                if newest is None:
                    return result
                newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
                statuses = evaluate(self.root, self.ruleset, min(newest, now).astimezone(UTC).date(), con)
            finally:
                con.close()
            for st in statuses:
                for threshold in st.thresholds_crossed:
                    alert = alert_from_status(st, threshold, now)
                    for sink in self.sinks:
                        key = f"{sink.name}|{alert['key']}"
                        if self.state.get(key) is not None:
                            continue
                        try:
                            sink.send(alert)
                        except (DeliveryError, OSError) as exc:
                            result.failed.append((sink.name, alert["key"], str(exc)))
                            continue
                        self.state.put(key, alert["at"])
                        result.delivered.append((sink.name, alert))
        return result


class AlertLoop:
    """Ticks every `interval` seconds, on a daemon thread (`start()`) or driven by the caller's own loop
    (`poll()`, as `watch` does on every pass: no second thread touching the tables); `stop()` ticks once
    more (shutdown)."""

    def __init__(self, evaluator: AlertEvaluator, interval: float,
                 on_result: Callable[[TickResult], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.evaluator, self.interval, self.on_result, self.on_error = evaluator, interval, on_result, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokentrail-alerts", daemon=True)
        self._said: str | None = None  # the failure last reported: the same one every tick is said once
        self._last = time.monotonic()

    def poll(self) -> None:
        """Tick if `interval` has passed since the last tick (for a caller that loops anyway)."""
        if time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            self._once()

    def _once(self) -> None:
        try:
            result = self.evaluator.tick()
        except TokentrailError as exc:  # e.g. a file removed under a reader: next tick reads again
            if self.on_error is not None and str(exc) != self._said:
                self.on_error(f"budgets not evaluated, no alert sent (retried next tick): {exc}")
            self._said = str(exc)
            return
        self._said = None
        if self.on_result is not None:
            self.on_result(result)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._once()

    def start(self) -> AlertLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(self.interval, 1.0) + 30)
        self._once()


def alert_loop_for_watch(root: WarehouseRef, ruleset: RuleSet, alerts_file: Path | None, webhooks: Sequence[str],
                         webhook_body: str, interval: float, state_path: Path | None,
                         report: Callable[[str], None], start: bool = True) -> AlertLoop | None:
    """What `watch` starts: None when no sink is configured; `report` gets one line per failure."""
    sinks: list[Sink] = [JsonLinesSink(alerts_file)] if alerts_file is not None else []
    sinks += [WebhookSink(url, webhook_body) for url in webhooks]
    if not sinks:
        return None
    if not ruleset.budgets:
        raise TokentrailError("--alerts/--webhook need budgets: the rule file (--rules) defines none")
    from ingest.store import Store

    state: StateStore = (JsonFileStateStore(state_path) if state_path is not None
                         else WarehouseStateStore(root) if isinstance(root, Store)
                         else JsonFileStateStore(default_state_path(root)))
    evaluator = AlertEvaluator(root, ruleset, sinks, state)

    def on_result(result: TickResult) -> None:
        for sink, key, reason in result.failed:
            report(f"alert {key} not delivered to {sink.split(':')[0]} yet (retried next tick): {reason}")

    loop = AlertLoop(evaluator, interval, on_result, on_error=report)
    return loop.start() if start else loop
