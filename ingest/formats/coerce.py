"""Values as logs write them -> typed values, once for every format.

Logs put numbers in strings, nulls in empty strings, bodies in JSON strings and the same field
under several names. Every format and wrapper coerces through these helpers, so "what counts as
empty", "what is a token count" and "how metadata is merged" are decided in one place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ..errors import RecordError
from ..keys import KeyHasher, looks_like_key, strip_scheme
from ..schema import Call


def decode_record(line: bytes) -> Any:
    """JSON -> Python; nesting too deep for the decoder is a decode error like any other."""
    return decode_line(line)[0]


def decode_line(line: bytes) -> tuple[Any, bool]:
    """(record, repaired). Invalid UTF-8 inside a string is that line's problem only: the bytes are
    replaced by U+FFFD and the record kept (`repaired` True, so the caller can count it)."""
    try:
        return msgspec.json.decode(line), False
    except RecursionError:
        raise msgspec.DecodeError("JSON nesting is too deep") from None
    except UnicodeDecodeError:
        pass
    except msgspec.DecodeError:  # msgspec 0.23 reports invalid UTF-8 as a DecodeError ("Invalid UTF-8 encoded string")
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise  # valid UTF-8: the JSON itself is broken
    try:
        return msgspec.json.decode(line.decode("utf-8", "replace").encode()), True
    except RecursionError:
        raise msgspec.DecodeError("JSON nesting is too deep") from None


# -- scalars: logs put numbers in strings, nulls in empty strings ------------------------------

MAX_TOKENS = 100_000_000  # no single call bills more; larger counts are corrupt data


def as_int(value: Any, field_name: str = "value") -> int | None:
    if type(value) is int:  # the common case first (a bool is no int here)
        return value
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
    if type(value) is str:  # the common case first
        return value or None
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
        try:
            when = f"{datetime.fromtimestamp(us / 1e6, UTC):%Y-%m-%d}"
        except (OverflowError, OSError, ValueError):  # beyond what the platform's time functions take
            when = f"{us} µs after 1970"
        raise RecordError(f"{field_name} {when} is implausible")
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


def maybe_json(value: Any) -> Any:
    """A proxy field that may hold a JSON body as text: decoded if it looks like JSON (None if broken),
    any other value as it is."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return None
    return value


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


def first_non_empty(record: Mapping[str, Any], keys: Iterable[str], *, dotted: bool = False) -> Any:
    """The first value among `keys` that is neither missing, None nor "".

    `dotted`: a key with dots that is not a plain key of `record` is looked up as a path (`get_path`);
    a plain key stays one dict lookup (the hot path).
    """
    for key in keys:
        v = record.get(key)
        if v is None and dotted and "." in key:
            v = get_path(record, key)
        if v is not None and v != "":
            return v
    return None


def merge_metadata(call: Call, items: Iterable[tuple[Any, Any]], *, overwrite: bool = True,
                   drop: tuple[str, ...] = ()) -> None:
    """Add name -> value pairs to `call.metadata` as strings; values that are not scalars (or are
    in `drop`, e.g. nginx's "-") are left out. `overwrite=False` keeps a value already there.
    An empty result leaves metadata None."""
    md = call.metadata if call.metadata is not None else {}
    for k, v in items:
        sv = (v or None) if type(v) is str else as_str(v)  # most values are strings already: no call
        if sv is None or sv in drop:
            continue
        if overwrite:
            md[str(k)] = sv
        else:
            md.setdefault(str(k), sv)
    call.metadata = md or None


_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def clean_model(value: Any, field_name: str = "model") -> str | None:
    s = as_str(value)
    if s is None:
        return None
    if _CTRL.search(s) or len(s) > 200:
        raise RecordError(f"{field_name} contains control characters or is over 200 characters")
    return s


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
