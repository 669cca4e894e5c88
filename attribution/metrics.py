"""Prometheus metrics for `watch --metrics HOST:PORT` (prometheus-client, its own registry).

Exposed at /metrics (names and labels documented in README.md):
  tokentrail_lines_read_total, tokentrail_calls_total, tokentrail_quarantined_total,
  tokentrail_estimated_calls_total, tokentrail_commits_total     counters, no labels
  tokentrail_source_lag_bytes{source}        bytes of a tracked file not yet committed
  tokentrail_seconds_since_last_commit       gauge (since start-up until the first commit)
  tokentrail_cost_usd_total{key_name,feature}, tokentrail_tokens_total{key_name,feature,kind}
      from the warehouse at scrape time (cached `cache_seconds`, dropped on each commit); the `top` (key_name, feature)
      pairs by cost keep their names, the rest are summed as key_name="other", feature="other",
      so cardinality is bounded however many keys and features the rules produce.
`observe(result)` is called once per commit with the committed file's result.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.errors import BadArgument, TokentrailError

from .query import WarehouseRef, connect

TOKEN_KINDS = ("input", "cached_input", "output", "reasoning")


class UsageCollector(Collector):
    """Cost and tokens by key and feature, read from the warehouse when scraped."""

    def __init__(self, root: WarehouseRef, top: int = 20, cache_seconds: float = 15.0) -> None:
        self.root, self.top, self.cache_seconds = root, top, cache_seconds
        self._cached: tuple[float, list[tuple[Any, ...]]] | None = None
        self._lock = threading.Lock()

    def _rows(self) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            con = connect(self.root)
            try:
                rows = con.execute("""
                    WITH g AS (
                        SELECT key_name, feature, sum(coalesce(cost_usd, 0)) AS cost,
                               sum(coalesce(input_tokens, 0)) AS i, sum(coalesce(cached_input_tokens, 0)) AS c,
                               sum(coalesce(output_tokens, 0)) AS o, sum(coalesce(reasoning_tokens, 0)) AS r
                        FROM usage GROUP BY ALL),
                    ranked AS (SELECT *, row_number() OVER (ORDER BY cost DESC, key_name, feature) AS n FROM g)
                    SELECT CASE WHEN n <= ? THEN coalesce(key_name, '') ELSE 'other' END,
                           CASE WHEN n <= ? THEN coalesce(feature, '') ELSE 'other' END,
                           sum(cost), sum(i), sum(c), sum(o), sum(r)
                    FROM ranked GROUP BY 1, 2 ORDER BY 1, 2
                """, [self.top, self.top]).fetchall()
            finally:
                con.close()
            self._cached = (time.monotonic(), rows)
            return rows

    def invalidate(self) -> None:
        """A commit changed the warehouse: the next scrape reads it again."""
        with self._lock:
            self._cached = None

    def collect(self) -> Iterator[Metric]:
        cost = CounterMetricFamily("tokentrail_cost_usd", "Attributed cost in USD by key and feature (top pairs, "
                                   "the rest as other)", labels=["key_name", "feature"])
        tokens = CounterMetricFamily("tokentrail_tokens", "Tokens by key, feature and kind (top pairs, the rest as "
                                     "other)", labels=["key_name", "feature", "kind"])
        try:
            rows = self._rows()
        except TokentrailError:
            rows = []  # a scrape must not fail because a file was compacted away mid-read
        for key, feature, c, *counts in rows:
            cost.add_metric([key, feature], float(c or 0))
            for kind, n in zip(TOKEN_KINDS, counts, strict=True):
                tokens.add_metric([key, feature, kind], float(n or 0))
        yield cost
        yield tokens


class WatchMetrics:
    """The watcher's metrics; `serve()` starts the HTTP endpoint, `observe()` is called per commit."""

    def __init__(self, root: WarehouseRef, top: int = 20, cache_seconds: float = 15.0,
                 clock: Any = time.time) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        self._last_commit = clock()
        r = self.registry
        self.lines = Counter("tokentrail_lines_read", "Log lines read and committed", registry=r)
        self.calls = Counter("tokentrail_calls", "API calls committed", registry=r)
        self.quarantined = Counter("tokentrail_quarantined", "Lines quarantined (unparseable)", registry=r)
        self.estimated = Counter("tokentrail_estimated_calls", "Calls whose tokens were estimated", registry=r)
        self.commits = Counter("tokentrail_commits", "Commits to the warehouse", registry=r)
        self.lag = Gauge("tokentrail_source_lag_bytes", "Bytes of a tracked file not yet committed", ["source"],
                         registry=r)
        since = Gauge("tokentrail_seconds_since_last_commit", "Seconds since the last commit (or start-up)", registry=r)
        since.set_function(lambda: max(self._clock() - self._last_commit, 0.0))
        self.usage = UsageCollector(root, top, cache_seconds)
        r.register(self.usage)
        self._server: Any = None

    def observe(self, result: Any) -> None:
        """One commit of one file: counts, and the bytes still behind in that file."""
        self.lines.inc(getattr(result, "lines", 0) or 0)
        self.calls.inc(getattr(result, "calls", 0) or 0)
        self.quarantined.inc(getattr(result, "quarantined", 0) or 0)
        self.estimated.inc(getattr(result, "estimated", 0) or 0)
        self.commits.inc()
        self._last_commit = self._clock()
        self.usage.invalidate()
        path, offset = getattr(result, "path", None), getattr(result, "offset", None)
        if path is not None and offset is not None:
            try:
                self.set_lag(str(path), max(os.stat(path).st_size - int(offset), 0))
            except OSError:  # the file is gone (rotated away and drained): stop reporting it
                with contextlib.suppress(KeyError):
                    self.lag.remove(str(path))

    def set_lag(self, source: str, lag_bytes: int) -> None:
        self.lag.labels(source=source).set(lag_bytes)

    def serve(self, host: str, port: int) -> int:
        """Start /metrics on a daemon thread; returns the bound port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadArgument(f"--metrics takes HOST:PORT, e.g. 127.0.0.1:9464; got {value!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def metrics_for_watch(address: str | None, root: WarehouseRef) -> WatchMetrics | None:
    """What `watch --metrics HOST:PORT` starts (None without the option)."""
    if not address:
        return None
    host, port = parse_address(address)
    m = WatchMetrics(root)
    try:
        m.serve(host, port)
    except OSError as exc:
        raise TokentrailError(f"--metrics {address}: cannot listen ({exc.strerror or exc})") from None
    return m
