"""The library API, read side: opening the warehouse, queries, reports, rules, re-attribution
and spend controls.

Re-exported by `attribution.api` (and `attribution`); one function per command. Read functions
never create warehouse state: rule files are loaded with the warehouse's existing key secret, or
a throwaway one when there is none yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ingest.errors import BadArgument

if TYPE_CHECKING:
    import pyarrow as pa

    from ingest.store import Location, Store

    from .anomalies import Anomaly
    from .audit import AuditResult
    from .budgets import BudgetStatus
    from .reattribute import ReattributeResult
    from .reconcile import Reconciliation
    from .reports import Coverage
    from .rules import RuleSet


PathLike: TypeAlias = str | Path
WarehouseArg: TypeAlias = "str | Path | Location | Store | None"  # a location, or a store already open


def open_store(warehouse: WarehouseArg, *, write: bool = False) -> Store:
    """A store for reading (it must exist: a typo must not read as an empty warehouse) or for
    writing (validated, created on first use)."""
    from ingest.store import Store

    store = warehouse if isinstance(warehouse, Store) else Store(warehouse)
    return store.prepare_for_writing() if write else store.require()


def parse_as_of(value: str | None) -> int | datetime | None:
    """`--as-of`: a table version (integer, of `usage`) or an ISO timestamp (UTC when it names no zone)."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadArgument(f"--as-of {value!r}: expected a version number or an ISO timestamp "
                              f"such as 2025-03-01T12:00:00Z") from None
    if ts.tzinfo is None:
        from datetime import UTC

        ts = ts.replace(tzinfo=UTC)
    return ts


def _open(warehouse: WarehouseArg) -> Store:
    return open_store(warehouse)


# -- queries and reports ----------------------------------------------------------------------------


def sql(query: str, warehouse: WarehouseArg = None, as_of: int | str | None = None) -> pa.Table:
    """A read-only SQL query over the views `calls`, `usage`, `quarantine` (and the `*_all` views)."""
    from .query import run_sql

    return run_sql(_open(warehouse), query, parse_as_of(as_of) if isinstance(as_of, str) else as_of)


def report(by: Sequence[str] = (), warehouse: WarehouseArg = None, since: date | None = None,
           until: date | None = None, as_of: int | str | None = None) -> pa.Table:
    """Requests, tokens, cost and the share of estimated tokens, grouped by `by`."""
    from .query import connect
    from .reports import report as run

    store = _open(warehouse)
    con = connect(store, as_of=parse_as_of(as_of) if isinstance(as_of, str) else as_of, tables=("usage",))
    return run(store, list(by), since, until, con=con)


def html_report(output: PathLike, warehouse: WarehouseArg = None, since: date | None = None, until: date | None = None,
                rules: PathLike | None = None, at: date | None = None) -> Path:
    """Write a self-contained HTML report (budgets from `rules`, evaluated at the end of `at`)."""
    from .html_report import write_html_report

    write_html_report(_open(warehouse), Path(output), since, until, Path(rules) if rules else None, at)
    return Path(output)


# -- rules and re-attribution -----------------------------------------------------------------------


def read_only_rules(rules: PathLike, warehouse: WarehouseArg = None) -> RuleSet:
    """A rule file, loaded with the warehouse's key secret if it has one (else a random one): creates nothing."""
    from ingest.store import Store

    from .budgets import read_only_ruleset

    return read_only_ruleset(warehouse if isinstance(warehouse, Store) else Store(warehouse), Path(rules))


def check_rules(rules: PathLike, warehouse: WarehouseArg = None) -> RuleSet:
    """`rules check`: the validated rule file (a fixed throwaway secret when there is no warehouse, so
    its hash is stable); creates nothing."""
    from ingest.keys import KeyHasher
    from ingest.store import Store

    from .rules import load_rules

    store = warehouse if isinstance(warehouse, Store) else Store(warehouse)
    hasher = store.hasher if store.exists() else KeyHasher(b"rules-check-only")
    return load_rules(Path(rules), hasher)


def explain_call(rules: PathLike, call_id: str, warehouse: WarehouseArg = None) -> dict[str, Any]:
    """Which rule decided each dimension of one call, and why."""
    from .current import build_engine
    from .reports import explain_call as run

    store = _open(warehouse)
    engine = build_engine(store, rules)
    return run(store, call_id, engine.ruleset, engine.apply)


def rules_coverage(rules: PathLike, warehouse: WarehouseArg = None) -> list[Coverage]:
    """Per dimension: the share of calls, tokens and cost left at the default, and the top unmatched values."""
    from .current import build_engine
    from .reports import rules_coverage as run

    store = _open(warehouse)
    engine = build_engine(store, rules)
    return run(store, engine.ruleset, engine.apply)


def rules_sql(rules: PathLike, dialect: str, warehouse: WarehouseArg = None, prices: PathLike | None = None,
              view: str = "tokentrail_usage", source: str = "calls") -> str:
    """The rules and prices as one `CREATE VIEW` over the calls table, in another engine's dialect."""
    from .pricing import Pricer, load_price_file
    from .rules_sql import create_view_sql

    store = _open(warehouse)
    ruleset = read_only_rules(rules, store)
    pricer = Pricer(*load_price_file(Path(prices))) if prices else Pricer()
    return create_view_sql(store, ruleset, pricer, dialect, view, source)


def reattribute(rules: PathLike, warehouse: WarehouseArg = None, prices: PathLike | None = None,
                since: date | None = None, until: date | None = None, dry_run: bool = False,
                progress: Callable[[str, int], None] | None = None) -> ReattributeResult:
    """Recompute usage from calls with new rules (and prices) in one atomic commit; a dry run writes
    nothing and reports what would move."""
    from .current import build_engine
    from .reattribute import reattribute as run

    store = _open(warehouse)
    engine = build_engine(store, rules, prices, remember=not dry_run)
    return run(store, engine, since, until, dry_run=dry_run, progress=progress)


# -- spend controls and finance ---------------------------------------------------------------------


def budgets(rules: PathLike, warehouse: WarehouseArg = None, at: date | None = None) -> list[BudgetStatus]:
    """Spend against each budget of the rule file, as of the end of `at` (default: now)."""
    from .budgets import evaluate

    store = _open(warehouse)
    return evaluate(store, read_only_rules(rules, store), at)


@dataclass
class AuditReport:
    result: AuditResult
    allowlists: int  # how many allowlists were checked


def audit_ips(rules: PathLike, warehouse: WarehouseArg = None, since: date | None = None,
              until: date | None = None) -> AuditReport:
    """Calls from outside their key's IP allowlist."""
    from .audit import audit_ips as run

    store = _open(warehouse)
    ruleset = read_only_rules(rules, store)
    return AuditReport(run(store, ruleset, since, until), len(ruleset.allowlists))


@dataclass
class AnomalyReport:
    history_days: int  # days of data there are
    needed_days: int  # days needed for a baseline
    found: list[Anomaly]


def anomalies(warehouse: WarehouseArg = None, by: str | None = None, since: date | None = None,
              metric: str = "tokens", granularity: str = "day", threshold: float = 4.0,
              min_ratio: float = 2.0) -> AnomalyReport:
    """Periods whose tokens or cost jump far above the same weekday's recent baseline (none is
    looked for until there is enough history)."""
    from .anomalies import check_dimension, find_anomalies, history
    from .query import connect

    store = _open(warehouse)
    con = connect(store, tables=("usage",))  # one snapshot for the check, the history and the search
    try:
        check_dimension(con, by)
        have, need = history(store, granularity, con=con)
        if have < need:
            return AnomalyReport(have, need, [])
        return AnomalyReport(have, need, find_anomalies(store, by, since, metric, granularity, threshold, min_ratio,
                                                        con=con))
    finally:
        con.close()


def reconcile(costs: PathLike, warehouse: WarehouseArg = None, usage: PathLike | None = None,
              by_project: bool = False, tolerance: float = 0.02, keys: PathLike | None = None) -> Reconciliation:
    """The provider's own cost (and usage) exports compared with what was attributed."""
    from .reconcile import reconcile as run

    return run(_open(warehouse), Path(costs), Path(usage) if usage else None, by_project, tolerance,
               keys_file=Path(keys) if keys else None)


def export_focus(output: PathLike, file_format: str, warehouse: WarehouseArg = None, since: date | None = None,
                 until: date | None = None) -> int:
    """Write usage as a FinOps FOCUS 1.2 dataset (`csv` or `parquet`); the number of rows written."""
    from .export import export_focus as run

    return run(_open(warehouse), Path(output), file_format, since, until)
