"""The library API: one function per `tokentrail` command, returning plain results.

The CLI parses options, calls one of these and renders what it returns; tests and other programs
call them directly (`from attribution import report`). Nothing here prints, exits or handles
signals; failures are the `ingest.errors` classes.

Composition (docs/architecture.md): ingest reads logs into chunks and commits `calls` (and
`quarantine`) through `ingest.store`; attribution then derives `usage` from the committed calls
with rules and prices and commits it with its own per-source versions. Ingest never calls back
into attribution: it yields what it committed, and this module consumes it.

Imports of the heavy libraries (pyarrow, deltalake, duckdb, tiktoken) happen inside the
functions, so importing this module (and starting the CLI) stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ingest.errors import TokentrailError

from .api_read import (
    AnomalyReport,
    AuditReport,
    PathLike,
    WarehouseArg,
    anomalies,
    audit_ips,
    budgets,
    check_rules,
    explain_call,
    export_focus,
    html_report,
    open_store,
    parse_as_of,
    read_only_rules,
    reattribute,
    reconcile,
    report,
    rules_coverage,
    rules_sql,
    sql,
)

if TYPE_CHECKING:
    import threading

    from ingest.pipeline import IngestOptions, IngestSummary
    from ingest.store import Store
    from ingest.trial import Trial
    from ingest.watch import Tick, Watcher, WatchOptions

    from .engine import Engine


# -- the warehouse ----------------------------------------------------------------------------------


@dataclass
class Compaction:
    optimized: dict[str, dict[str, int]]  # table -> {"removed": files, "added": files}
    vacuumed: int | None  # files deleted, or None when vacuum was not asked for


def compact(warehouse: WarehouseArg, vacuum_hours: int | None = 168) -> Compaction:
    """Merge small files, prune old source records, then (unless `vacuum_hours` is None) vacuum."""
    store = open_store(warehouse)
    done = store.optimize()
    removed = None if vacuum_hours is None else sum(store.vacuum(vacuum_hours).values())
    return Compaction(done, removed)


# -- ingest and watch -------------------------------------------------------------------------------


@dataclass
class IngestReport:
    summary: IngestSummary
    unpriced_models: list[str] = field(default_factory=list)
    usage_rows: int = 0
    repaired_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = self.summary.as_dict()
        data["unpriced_models"] = self.unpriced_models
        data["usage_rows"] = self.usage_rows
        if self.repaired_rows:
            data["usage_repaired"] = self.repaired_rows
        return data


class Progress(Protocol):
    """What `ingest` reports its progress to (a progress bar): the bytes to read, then bytes as read."""

    def start(self, total_bytes: int) -> None: ...

    def advance(self, n_bytes: int) -> None: ...


def ingest(paths: Sequence[PathLike], warehouse: WarehouseArg = None,
           rules: PathLike | None = None, prices: PathLike | None = None, options: IngestOptions | None = None,
           progress: Progress | None = None) -> IngestReport:
    """Ingest files and directories; attribute and price what was committed."""
    from ingest.files import ingest_batches
    from ingest.pipeline import IngestOptions, IngestSummary
    from ingest.sources import discover

    from .current import build_engine, check_files
    from .derive import attribute_committed, repair_usage

    check_files(rules, prices)
    store = open_store(warehouse, write=True)
    engine = build_engine(store, rules, prices, remember=True)
    options = options or IngestOptions(jobs=os.cpu_count() or 1)
    files = [Path(p) for p in paths]
    if progress is not None:
        progress.start(sum(p.stat().st_size for p in discover(files, options.glob)))
    report = IngestReport(IngestSummary())
    report.repaired_rows = repair_usage(store, engine)
    con = engine.connect()
    advance = progress.advance if progress is not None else None
    for committed in ingest_batches(store, list[str | Path](files), options, report.summary, advance):
        report.usage_rows += attribute_committed(store, engine, committed, con)
    report.unpriced_models = sorted(engine.pricer.unpriced)
    return report


def make_watcher(paths: Sequence[PathLike], warehouse: WarehouseArg = None,
                 rules: PathLike | None = None, prices: PathLike | None = None,
                 ingest_options: IngestOptions | None = None,
                 options: WatchOptions | None = None) -> tuple[Watcher, Engine, Store]:
    """A watcher over `paths` and the engine that attributes what it commits.
    Drive it with `run_watcher` (a `Tick` per pass); stop it with `watcher.stop.set()`."""
    from ingest.pipeline import IngestOptions
    from ingest.watch import Watcher, WatchOptions

    from .current import build_engine, check_files
    from .derive import repair_usage

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise TokentrailError(f"{missing[0]}: no such file or directory (watch needs paths that exist)")
    check_files(rules, prices)
    store = open_store(warehouse, write=True)
    engine = build_engine(store, rules, prices, remember=True)
    repair_usage(store, engine)
    watcher = Watcher(store, [Path(p) for p in paths], ingest_options or IngestOptions(), options or WatchOptions())
    return watcher, engine, store


def run_watcher(watcher: Watcher, engine: Engine, store: Store) -> Iterator[Tick]:
    """Attribute each commit of the watcher; yield its ticks (status, stats) to the caller."""
    from ingest.store import CommitResult

    from .derive import attribute_committed

    con = engine.connect()
    try:
        for event in watcher.events():
            if isinstance(event, CommitResult):
                attribute_committed(store, engine, event, con)
            else:
                yield event
    finally:
        watcher.close()


@dataclass
class AlertSettings:
    """Where `watch` delivers budget alerts (no file and no webhook: no alerting)."""

    file: Path | None = None
    webhooks: Sequence[str] = ()
    webhook_body: str = "slack"
    seconds: float = 30.0
    state: Path | None = None


def watch(paths: Sequence[PathLike], warehouse: WarehouseArg = None,
          rules: PathLike | None = None, prices: PathLike | None = None,
          ingest_options: IngestOptions | None = None, options: WatchOptions | None = None, *,
          stop: threading.Event | None = None, alerts: AlertSettings | None = None, metrics_addr: str | None = None,
          on_message: Callable[[str], None] = lambda m: None) -> Generator[Tick, None, None]:
    """Tail `paths` and commit new calls until `stop` is set (or once, with `options.once`): a
    `Tick` per pass (the last has `final`). Budget alerts and the Prometheus endpoint run alongside;
    `on_message` gets a line per alert that could not be delivered yet."""
    from .alerts import alert_loop_for_watch
    from .metrics import metrics_for_watch

    watcher, engine, store = make_watcher(paths, warehouse, rules, prices, ingest_options, options)
    if stop is not None:
        watcher.stop = stop
    a = alerts or AlertSettings()
    # polled on every watcher pass (about once a second, traffic or not): no second thread reads the tables
    loop = alert_loop_for_watch(store, engine.ruleset, a.file, a.webhooks, a.webhook_body, a.seconds, a.state,
                                on_message, start=False)
    metrics = metrics_for_watch(metrics_addr, store)
    try:
        for tick in run_watcher(watcher, engine, store):
            if metrics is not None:
                for res in tick.results:
                    metrics.observe(res)
            yield tick
            if loop is not None and not tick.final:
                loop.poll()
    finally:
        if loop is not None:
            loop.stop()
        if metrics is not None:
            metrics.close()


# -- formats ----------------------------------------------------------------------------------------


@dataclass
class FormatInfo:
    name: str
    reads: str
    detected_by: str


def list_formats() -> tuple[list[FormatInfo], list[tuple[str, str]]]:
    """The log formats (and the `profile:FILE` pseudo-format), and the line wrappers taken off first."""
    from ingest.formats import all_formats
    from ingest.wrappers import WRAPPERS

    found = [FormatInfo(f.name, f.description, f.detection) for f in all_formats()]
    found.append(FormatInfo("profile:FILE", "Custom app logs through a YAML mapping profile",
                            "never auto-detected: --format profile:FILE"))
    return found, [(w[0], w[1]) for w in WRAPPERS]


@dataclass
class Detected:
    path: Path
    format: str | None = None  # a format name, "not a log", "unknown"; None when skipped
    matched: int = 0
    sampled: int = 0
    wrapper: str | None = None
    skipped: str | None = None  # why the file was not read


def detect_formats(paths: Sequence[PathLike]) -> list[Detected]:
    """Which format each file (each file under a directory) is read as; skipped files last."""
    from ingest.sources import discover
    from ingest.trial import detect_file

    skipped: list[tuple[Path, str]] = []
    out: list[Detected] = []
    for path in discover([Path(p) for p in paths], skipped=skipped):
        try:
            d, wrapper = detect_file(path)
        except OSError as exc:  # e.g. replaced by a FIFO since discovery
            out.append(Detected(path, skipped=str(exc.strerror or exc)))
            continue
        name = d.format.name if d.format else ("not a log" if d.not_a_log else "unknown")
        out.append(Detected(path, name, d.matched, d.sampled, wrapper))
    return out + [Detected(path, skipped=why) for path, why in skipped]


def try_profile(profile: PathLike, logfile: PathLike, show: int = 5) -> Trial:
    """How the first records of `logfile` parse with a mapping profile; nothing is written."""
    from ingest.trial import try_profile as trial

    return trial(Path(profile), Path(logfile), show=show)


@dataclass
class SuggestedProfile:
    text: str  # the profile, YAML
    calls: int
    records: int


def suggest_profile(logfile: PathLike, lines: int = 200, name: str | None = None) -> SuggestedProfile:
    """A starter mapping profile from a sample of `logfile`."""
    from ingest.formats.suggest import suggest
    from ingest.trial import read_sample

    path = Path(logfile)
    records, _ = read_sample(path, lines)
    s = suggest(records)
    if s.calls == 0:
        raise TokentrailError(f"{path}: no OpenAI request or response body found in the first {lines} lines; "
                              "a profile needs at least one call in the sample")
    return SuggestedProfile(s.profile_yaml(name or path.stem), s.calls, s.records)


@dataclass
class TokenCount:
    model: str
    endpoint: str
    encoding: str
    input_tokens: int
    flags: list[str]


def count_tokens(body: dict[str, Any], model: str | None = None) -> TokenCount:
    """Estimated input tokens of one request body, counted the way the API would."""
    from ingest.tokens import count_request_input, encoding_for_model
    from ingest.tokens.request import request_endpoint

    model = model or body.get("model")
    if not model or not isinstance(model, str):
        raise TokentrailError("the body has no `model`; pass --model")
    n, flags = count_request_input(body, model)
    return TokenCount(model, request_endpoint(body), encoding_for_model(model)[0], n, list(flags))


__all__ = [
    "AlertSettings", "AnomalyReport", "AuditReport", "Compaction", "Detected", "FormatInfo", "IngestReport", "Progress",
    "SuggestedProfile", "TokenCount", "anomalies", "audit_ips", "budgets", "check_rules", "compact", "count_tokens",
    "detect_formats", "explain_call", "export_focus", "html_report", "ingest", "list_formats",
    "make_watcher", "open_store", "parse_as_of", "read_only_rules", "reattribute", "reconcile", "report",
    "rules_coverage", "rules_sql", "run_watcher", "sql", "suggest_profile", "try_profile", "watch",
]
