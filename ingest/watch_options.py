"""What a watcher is told (`WatchOptions`) and what it reports after every pass (`Tick`, `WatchStats`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .pipeline import FileResult


@dataclass
class WatchOptions:
    glob: str | None = None
    flush_seconds: float = 2.0
    flush_rows: int = 10_000
    read_from: str = "beginning"  # or "end": skip what existing files already hold at start-up
    poll: bool = False
    rescan_seconds: float = 1.0
    status_seconds: float = 10.0
    once: bool = False
    compact_every_seconds: float = 3600.0
    final_after_seconds: float = 5.0  # a rotated file unchanged this long is finished: flush its partial line
    max_open: int | None = None  # descriptors held for draining; None: the process limit less a margin


def default_max_open() -> int:
    """Held descriptors stay well under the process limit (DuckDB, Arrow and delta-rs need some too)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(8, min(4096, soft - 96))


@dataclass
class WatchStats:
    files: int = 0
    lines: int = 0
    calls: int = 0
    quarantined: int = 0
    lag_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    with_key: int = 0
    with_user: int = 0
    with_route: int = 0
    with_ts: int = 0

    def coverage(self) -> str:
        """Share of calls with a key, user, route and their own timestamp (what attribution needs)."""
        if not self.calls:
            return "no calls yet"
        return " ".join(f"{name} {n * 100 // self.calls}%" for name, n in (
            ("key", self.with_key), ("user", self.with_user), ("route", self.with_route), ("timestamp", self.with_ts)))

    def line(self, lines_per_s: float) -> str:
        return (f"files {self.files} | {lines_per_s:,.0f} lines/s | calls {self.calls:,} | "
                f"lag {self.lag_bytes:,} B | quarantined {self.quarantined:,} | with {self.coverage()}")


@dataclass
class Tick:
    """Yielded by `Watcher.events()` after every pass: time for periodic work (alerts, metrics)."""

    stats: WatchStats
    status_line: str | None = None  # set every `status_seconds`
    final: bool = False  # the last event: the watcher is stopping
    results: list[FileResult] = field(default_factory=list)  # per-file reads since the last tick (for metrics)
