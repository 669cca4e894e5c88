"""Which rules and prices are current for a warehouse, and the engine built from them.

The rule and price files last used by `ingest --rules`/`reattribute` are remembered in the
warehouse's `_meta` table (by path, plus each ruleset's canonical text by hash), so a later
`ingest` or `watch` without `--rules` attributes new calls with the same rules instead of
silently falling back to defaults.
"""

from __future__ import annotations

from pathlib import Path

from ingest.store import Store

from .engine import Engine
from .pricing import Pricer, load_price_file
from .rules import RuleSet, load_rules

RULES_META = "current_rules_path"
PRICES_META = "current_prices_path"


def resolve_paths(store: Store, rules: str | Path | None, prices: str | Path | None) -> tuple[Path | None, Path | None]:
    """Explicit paths win; else the ones remembered for this warehouse (if they still exist)."""
    def pick(given: str | Path | None, key: str) -> Path | None:
        if given is not None:
            return Path(given).resolve()
        remembered = store.meta.get(key) if store.meta.table.exists() else None
        return Path(remembered) if remembered and Path(remembered).exists() else None

    return pick(rules, RULES_META), pick(prices, PRICES_META)


def build_engine(store: Store, rules: str | Path | None = None, prices: str | Path | None = None,
                 remember: bool = False) -> Engine:
    rules_path, prices_path = resolve_paths(store, rules, prices)
    ruleset = load_rules(rules_path, store.hasher)
    pricer = Pricer(*load_price_file(prices_path)) if prices_path else Pricer()
    if remember:
        items = {f"ruleset:{ruleset.hash}": ruleset.canonical}
        if rules_path:
            items[RULES_META] = str(rules_path)
        if prices_path:
            items[PRICES_META] = str(prices_path)
        store.meta.put_many(items)
    return Engine(ruleset, pricer)


def record_ruleset(store: Store, ruleset: RuleSet) -> None:
    """Keep the ruleset's canonical form (keys only as fingerprints) so every hash can be explained."""
    store.meta.put(f"ruleset:{ruleset.hash}", ruleset.canonical)
