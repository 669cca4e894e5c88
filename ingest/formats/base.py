"""The small interface every log format implements, and helpers they share.

A format sees one decoded JSON record at a time: `detect(record)` says whether it is this
format's shape, `parse(record, ctx)` returns zero or more Calls (zero: a line that is not an
API call, e.g. an ordinary application log line) or raises `RecordError` (quarantine).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from ..errors import RecordError
from ..keys import KeyHasher, looks_like_key, strip_scheme
from ..schema import Call

if TYPE_CHECKING:
    from ..wrappers import Unwrapper


@dataclass(slots=True)
class ParseContext:
    """What a parser needs besides the record: where it came from and how to treat keys."""

    source_file: str
    source_fp: str
    hasher: KeyHasher
    offset: int = 0
    store_system_prompt: bool = True
    fallback_ts: int | None = None  # file mtime, for formats whose records carry no date at all
    extras: dict[str, Any] = field(default_factory=dict)  # per-file state (e.g. batch inputs by custom_id)
    record_index: int = 0  # which of several records one line holds (an OTLP logs batch, a CloudWatch batch)
    unwrap: Unwrapper | None = None  # per-file container/cloud wrapper state (split lines being joined)

    def synthetic_id(self, index: int = 0) -> str:
        """A stable id for a call without a provider id: same file content + offset -> same id."""
        key = f"{self.source_fp}:{self.offset}:{index}"
        if self.record_index:
            key += f":r{self.record_index}"
        raw = key.encode()
        return "tt-" + hashlib.sha256(raw).hexdigest()[:24]

    def new_call(self, call_id: str | None, ts: int, fmt: str, index: int = 0) -> Call:
        return Call(
            call_id=call_id or self.synthetic_id(index),
            ts=ts,
            source_file=self.source_file,
            source_offset=self.offset,
            source_format=fmt,
        )


class Format:
    """Base class for a log format; subclasses set the class attributes and two methods."""

    name: ClassVar[str]
    description: ClassVar[str]
    detection: ClassVar[str]
    # "json": one JSON object per line. "text": the format reads raw lines (SSE, CSV).
    kind: ClassVar[str] = "json"

    def detect(self, record: Any) -> bool:
        raise NotImplementedError

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        """Calls in the record; [] for a record that is not this format's shape (skipped, not an error);
        RecordError for a record of this shape that is broken (quarantined)."""
        raise NotImplementedError

    def excludes(self, record: Any) -> bool:
        """True for a record the format's own filter rules out (a profile's `when:`): skipped, not quarantined."""
        return False

    def prepare_file(self, path: Path, ctx: ParseContext) -> None:
        """Per-file set-up before the first line is parsed (most formats need none)."""

    def at_record_boundary(self, ctx: ParseContext) -> bool:
        """False while a multi-line record (an SSE stream) is half read: no chunk may end here."""
        return True

    def finish_file(self, ctx: ParseContext) -> list[Call]:
        """At the end of a file that will not grow: emit any record still open (e.g. a cut-off stream)."""
        return []


# -- value coercion: logs put numbers in strings, nulls in empty strings ------------------------

MAX_TOKENS = 100_000_000  # no single call bills more; larger counts are corrupt data


def as_int(value: Any, field_name: str = "value") -> int | None:
    if value is None or value == "" or value == "None":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{field_name} is a boolean, expected an integer")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise RecordError(f"{field_name}={value!r} is not a whole number")
        n = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        n = int(value.strip())
    else:
        raise RecordError(f"{field_name}={str(value)[:40]!r} is not an integer")
    return n


def as_token_count(value: Any, field_name: str) -> int | None:
    n = as_int(value, field_name)
    if n is not None and not 0 <= n <= MAX_TOKENS:
        raise RecordError(f"{field_name}={n} is outside 0..{MAX_TOKENS}")
    return n


def as_float(value: Any, field_name: str = "value") -> float | None:
    if value is None or value == "" or value == "None":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{field_name} is a boolean, expected a number")
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            raise RecordError(f"{field_name}={value[:40]!r} is not a number") from None
    else:
        raise RecordError(f"{field_name} has type {type(value).__name__}, expected a number")
    if not math.isfinite(f):
        raise RecordError(f"{field_name} is not finite")
    return f


def as_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
    if isinstance(value, int):
        return bool(value)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TS = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
_ISO_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


def parse_ts(value: Any, field_name: str = "timestamp", unit: str | None = None) -> int | None:
    """Timestamps as logs write them -> µs since epoch, UTC.

    Numbers are seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude
    unless `unit` says); strings are ISO 8601 (naive means UTC) or numeric strings.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        s = value.strip()
        if s.replace(".", "", 1).isdigit():
            return parse_ts(float(s) if "." in s else int(s), field_name, unit)
        if not _ISO_NAIVE.match(s):
            raise RecordError(f"{field_name}={s[:40]!r} is not a timestamp")
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"{field_name}={s[:40]!r} is not a timestamp") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return _check_ts((dt - _EPOCH) // timedelta(microseconds=1), field_name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{field_name} has type {type(value).__name__}, expected a timestamp")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{field_name} is not finite")
    v = float(value)
    if unit is None:
        a = abs(v)
        unit = "s" if a < 1e11 else "ms" if a < 1e14 else "us" if a < 1e17 else "ns"
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}[unit]
    if unit == "ns":
        return _check_ts(int(value) // 1000, field_name)
    return _check_ts(int(round(v * scale)), field_name)


def _check_ts(us: int, field_name: str) -> int:
    now = datetime.now(UTC).timestamp() * 1_000_000
    if us < _MIN_TS or us > now + 86_400 * 1_000_000:
        raise RecordError(f"{field_name} {datetime.fromtimestamp(us / 1e6, UTC):%Y-%m-%d} is implausible")
    return us


MAX_EMBEDDED_JSON = 4 << 20  # a JSON-encoded string longer than this is not decoded while looking up a path


def embedded_json(value: Any) -> Any:
    """A string that holds a JSON object or array (a body logged as text) -> the decoded value, else None."""
    if not isinstance(value, str) or len(value) > MAX_EMBEDDED_JSON:
        return None
    s = value.lstrip()
    if not s.startswith(("{", "[")):
        return None
    try:
        out = msgspec.json.decode(s)
    except (msgspec.DecodeError, RecursionError):
        return None
    return out if isinstance(out, dict | list) else None


def get_path(record: Any, path: str) -> Any:
    """Dotted-path lookup (`a.b.c`); a key may itself contain dots (`ai.proxy`) and is tried whole first.

    A number selects a list element (`events.0.body`); a string holding JSON is looked into as if it
    were the object it encodes (`body.request.model` where `body` was logged as a JSON string).
    """
    if isinstance(record, dict) and path in record:
        return record[path]
    cur = record
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if isinstance(cur, str):
            cur = embedded_json(cur)
        if isinstance(cur, list):
            if not parts[i].isdigit() or int(parts[i]) >= len(cur):
                return None
            cur = cur[int(parts[i])]
            i += 1
            continue
        if not isinstance(cur, dict):
            return None
        # longest key made of the remaining parts first: handles keys with dots in them
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in cur:
                cur = cur[key]
                i = j
                break
        else:
            return None
    return cur


_AZURE_KEY = re.compile(r"[A-Za-z0-9]{32,100}")


def reduce_key(call: Call, raw: Any, hasher: KeyHasher, azure: bool = False) -> None:
    """Fill api_key_id/api_key_fp from a raw key or Authorization value; anything else is ignored.

    `azure`: the value came from an `api-key` header, where Azure OpenAI keys (32+ alphanumerics,
    no `sk-` prefix) are accepted too; they are shown as `azure-…AbCd`. The key itself is never kept.
    """
    s = as_str(raw)
    if not s:
        return
    hit = hasher.cached(s)
    if hit is None:
        key = strip_scheme(s)
        if looks_like_key(key):
            hit = hasher.reduce(s)
        elif azure and _AZURE_KEY.fullmatch(key):
            hit = ("azure-…" + key[-4:], hasher.fingerprint(key))
        else:
            return
    call.api_key_id, call.api_key_fp = hit


_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def clean_model(value: Any, field_name: str = "model") -> str | None:
    s = as_str(value)
    if s is None:
        return None
    if _CTRL.search(s) or len(s) > 200:
        raise RecordError(f"{field_name} contains control characters or is over 200 characters")
    return s
