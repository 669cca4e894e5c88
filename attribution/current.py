"""Which rules and prices are current for a warehouse, and the engine built from them.

The rule and price files last used by `ingest --rules`/`reattribute` are remembered in the
warehouse's `_meta` table (by path, plus each ruleset's canonical text by hash), so a later
`ingest` or `watch` without `--rules` attributes new calls with the same rules instead of
silently falling back to defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from ingest.errors import ConfigError
from ingest.keys import KeyHasher
from ingest.store import Store

from .engine import Engine
from .pricing import Pricer, load_price_file
from .rules import RuleSet, load_rules

RULES_META = "current_rules_path"
PRICES_META = "current_prices_path"


def resolve_paths(store: Store, rules: str | Path | None, prices: str | Path | None) -> tuple[Path | None, Path | None]:
    """Explicit paths win; else the ones remembered for this warehouse. A remembered file that is gone is an
    error, not a quiet fall back to the defaults (which would attribute every new call to `unattributed`, or
    price it without the overrides)."""
    def pick(given: str | Path | None, key: str, what: str, flag: str, reset: str) -> Path | None:
        if given is not None:
            return Path(given).resolve()
        remembered = store.meta.get(key) if store.meta.table.exists() else None
        if remembered and not Path(remembered).exists():
            raise ConfigError(f"{remembered}: the {what} last used with this warehouse is gone; put it back, or "
                              f"give its new place with {flag} FILE to ingest, watch or reattribute ({reset})")
        return Path(remembered) if remembered else None

    return (pick(rules, RULES_META, "rule file", "--rules", "a file holding only `version: 1` for the defaults"),
            pick(prices, PRICES_META, "price file", "--prices", "a file holding only `prices: []` for the built-in prices"))


def check_files(rules: str | Path | None, prices: str | Path | None) -> None:
    """Validate the rule and price files given, before a warehouse is opened for writing: a typo then fails
    without creating a warehouse (and its key secret) on the way. Keys are hashed with a throwaway secret: the
    errors do not depend on it."""
    if rules is not None:
        load_rules(Path(rules), KeyHasher(os.urandom(32)))
    if prices is not None:
        load_price_file(Path(prices))


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
