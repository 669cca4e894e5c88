"""Where a warehouse lives: a local directory or an object-store URI, validated before writing.

delta-rs reads credentials and endpoints from the environment itself (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`, `GOOGLE_*`,
`AZURE_*`), so a location is only a normalized URI plus the storage options we add.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WarehouseError

REMOTE_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://")
TABLES = ("calls", "usage", "quarantine")
# Our own small tables: per-chunk source records, and key/value state (HMAC secret, rules, alerts).
INTERNAL_TABLES = ("_sources", "_meta")


def default_location() -> str:
    return os.environ.get("TOKENTRAIL_WAREHOUSE") or "warehouse"


@dataclass(frozen=True)
class Location:
    """A warehouse root. Local paths are made absolute, so every spelling names the same place."""

    uri: str
    path: Path | None  # local directory, else None
    storage_options: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, value: str | Path | None) -> Location:
        raw = str(value) if value is not None else default_location()
        if raw.startswith(REMOTE_SCHEMES):
            opts: dict[str, str] = {}
            if raw.startswith(("s3://", "s3a://")) and os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true":
                opts["allow_http"] = "true"
            return cls(raw.rstrip("/"), None, opts)
        if "://" in raw:
            raise WarehouseError(f"unsupported warehouse location {raw!r}: use a directory, s3://, gs:// or az://")
        path = Path(raw).expanduser().resolve()
        if "[" in str(path) or "]" in str(path):
            raise WarehouseError(f"warehouse {path}: the Delta Lake library cannot use a path containing '[' or ']'; "
                                 f"choose a directory without them")
        return cls(str(path), path)

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def table_uri(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def __str__(self) -> str:
        return self.uri


def check_writable_location(loc: Location) -> None:
    """Refuse places that are clearly not a warehouse: `/`, a home directory, a non-empty foreign directory."""
    if loc.path is None:
        return
    p = loc.path
    home = Path(os.environ.get("HOME", "/root")).expanduser().resolve()
    if p == Path("/") or p == home or p.parent == Path("/home") or p in (Path("/etc"), Path("/usr"), Path("/var")):
        raise WarehouseError(f"refusing to use {p} as a warehouse: pick a dedicated directory such as ./warehouse")
    if p.exists() and not p.is_dir():
        raise WarehouseError(f"warehouse {p} is a file, not a directory: pass --warehouse DIR")
    if p.is_dir():
        entries = [e.name for e in p.iterdir() if not e.name.startswith(".")]
        ours = set(TABLES) | set(INTERNAL_TABLES)
        if entries and not any(e in ours for e in entries):
            raise WarehouseError(
                f"{p} is not empty and holds no tokentrail tables; refusing to write there. "
                f"Pass --warehouse with a new or existing warehouse directory."
            )
