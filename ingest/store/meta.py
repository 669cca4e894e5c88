"""Small key/value state kept in the warehouse itself (`_meta` Delta table), so it travels with it.

Holds the HMAC secret that fingerprints API keys (shared by every host writing the warehouse),
the rule and price files last used, ruleset texts, and alert delivery marks. Append-only:
the newest row per key wins.
"""

from __future__ import annotations

import secrets
import time

import pyarrow as pa

from .table import Table

META_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("value", pa.string(), nullable=False),
    pa.field("written_at", pa.timestamp("us", tz="UTC"), nullable=False),
])
SECRET_KEY = "hmac_secret"


def _row(items: dict[str, str]) -> pa.Table:
    now = int(time.time() * 1_000_000)
    return pa.Table.from_pydict(
        {"key": list(items), "value": list(items.values()), "written_at": [now] * len(items)}, schema=META_SCHEMA)


class Meta:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._cache: dict[str, str] | None = None

    def all(self, refresh: bool = False) -> dict[str, str]:
        if self._cache is None or refresh:
            t = self.table.read()
            out: dict[str, str] = {}
            if t.num_rows:
                for r in sorted(t.to_pylist(), key=lambda r: r["written_at"]):
                    out[r["key"]] = r["value"]
            self._cache = out
        return self._cache

    def get(self, key: str) -> str | None:
        return self.all().get(key)

    def put(self, key: str, value: str) -> None:
        self.put_many({key: value})

    def put_many(self, items: dict[str, str]) -> None:
        if all(self.all().get(k) == v for k, v in items.items()):
            return
        self.table.append(_row(items), {})
        self._cache = None

    def secret(self, create: bool) -> bytes | None:
        """The warehouse's HMAC secret. Two hosts racing to create it both append one; the oldest
        row wins for everyone, so fingerprints agree across hosts."""
        from deltalake.exceptions import CommitFailedError, DeltaError

        for _ in range(5):
            t = self.table.read()
            rows = sorted((r for r in t.to_pylist() if r["key"] == SECRET_KEY), key=lambda r: r["written_at"]) \
                if t.num_rows else []
            if rows:
                return bytes.fromhex(rows[0]["value"])
            if not create:
                return None
            try:
                self.table.append(_row({SECRET_KEY: secrets.token_hex(32)}), {})
            except (CommitFailedError, DeltaError):
                continue
            self._cache = None
        return None
