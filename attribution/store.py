"""Opening a warehouse for attribution: which rules and prices are current, and the attributor.

The rule and price files last used by `ingest --rules`/`reattribute` are remembered in
`_state/` (by path and hash), so a later `ingest` or `watch` without `--rules` attributes new
calls with the same rules instead of silently falling back to defaults.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ingest.warehouse import Warehouse

from .engine import Engine
from .pricing import Pricer, load_price_file
from .rules import RuleSet, load_rules

RULES_META = "current_rules_path"
PRICES_META = "current_prices_path"


def resolve_paths(wh: Warehouse, rules: str | Path | None, prices: str | Path | None) -> tuple[Path | None, Path | None]:
    """Explicit paths win; else the ones remembered for this warehouse (if they still exist)."""
    def pick(given: str | Path | None, key: str) -> Path | None:
        if given is not None:
            return Path(given).resolve()
        remembered = wh.checkpoints.get_meta(key)
        return Path(remembered) if remembered and Path(remembered).exists() else None

    return pick(rules, RULES_META), pick(prices, PRICES_META)


def build_engine(wh: Warehouse, rules: str | Path | None = None, prices: str | Path | None = None,
                 remember: bool = False) -> Engine:
    rules_path, prices_path = resolve_paths(wh, rules, prices)
    ruleset = load_rules(rules_path, wh.hasher)
    pricer = Pricer(*load_price_file(prices_path)) if prices_path else Pricer()
    if remember:
        record_ruleset(wh, ruleset)
        if rules_path:
            wh.checkpoints.set_meta(RULES_META, str(rules_path))
        if prices_path:
            wh.checkpoints.set_meta(PRICES_META, str(prices_path))
    return Engine(ruleset, pricer)


def record_ruleset(wh: Warehouse, ruleset: RuleSet) -> None:
    """Keep the ruleset's canonical form (keys only as fingerprints) so every hash can be explained."""
    wh.checkpoints.record_ruleset(ruleset.hash, ruleset.canonical, ruleset.source)


def make_attributor(root: str, rules: str | None, prices: str | None):  # type: ignore[no-untyped-def]
    """Build an attributor from paths: what worker processes call (picklable with functools.partial)."""
    return attributor(build_engine(Warehouse(root), rules, prices))


def attributor(engine: Engine):  # type: ignore[no-untyped-def]
    con = engine.connect()

    def attribute(calls: pa.Table) -> pa.Table:
        return engine.apply(calls, con)

    return attribute
