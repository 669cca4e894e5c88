"""`formats test` and `formats detect` as library functions: read a file's first records (container
and cloud wrappers taken off), parse them with a profile, say which profile fields matched nothing.
Nothing is written anywhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RecordError
from .formats import Detection, ParseContext, detect_sample, get_format
from .formats.coerce import get_path
from .formats.profile import load_profile
from .keys import KeyHasher
from .schema import Call

if TYPE_CHECKING:
    from .wrappers import Inner

SHOWN_COLUMNS = ("call_id", "ts", "endpoint", "model", "api_key_id", "user", "route", "client_ip", "request_id",
                 "status_code", "input_tokens", "output_tokens", "token_source", "metadata")
_NOT_PATHS = {"timestamp_unit", "metadata"}


def read_inners(path: Path, lines: int = 50) -> tuple[list[Inner], dict[str, int]]:
    """The application records of a file's first lines (with their wrappers' context), and which
    wrappers carried them."""
    from .sources import sample_lines
    from .wrappers import Unwrapper

    unwrapper = Unwrapper()
    out: list[Inner] = []
    for i, raw in enumerate(sample_lines(path, lines)):  # bounded: an overlong line is never held whole
        line = raw.strip()
        if line:
            out.extend(unwrapper.feed(line, i) or [])
    out.extend(unwrapper.flush())
    return out, unwrapper.seen


def read_sample(path: Path, lines: int = 50) -> tuple[list[Any], dict[str, int]]:
    """Decoded records (or raw text) of a file's first lines, wrappers taken off."""
    inners, seen = read_inners(path, lines)
    return [_value(i) for i in inners], seen


def _value(inner: Inner) -> Any:
    return inner.record if inner.decoded and inner.record is not None else inner.data


def detect_file(path: Path, lines: int = 50) -> tuple[Detection, str | None]:
    """The format a file is read as, and the wrapper around its lines (None: no wrapper)."""
    records, seen = read_sample(path, lines)
    wrapper = max(seen, key=lambda k: seen[k]) if seen else None
    return detect_sample(records, sample=len(records) or 1), wrapper


@dataclass(slots=True)
class TrialLine:
    index: int
    outcome: str  # "call" | "skipped" | "quarantined"
    detail: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass(slots=True)
class Trial:
    lines: list[TrialLine] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # profile fields whose paths found nothing in any record
    records: int = 0


def iso(us: int | None) -> str | None:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z") if us else None


def _shown(call: Call) -> dict[str, Any]:
    d = {k: getattr(call, k) for k in SHOWN_COLUMNS}
    d["ts"] = iso(call.ts)
    if call.estimate_flags:
        d["estimate_flags"] = call.estimate_flags
    return d


def try_profile(profile_path: Path, log_path: Path, show: int = 5, sample: int = 200) -> Trial:
    """Parse the first records of `log_path` with the profile; which explicitly set fields matched nothing."""
    from .sources import identify

    profile = load_profile(profile_path)
    fmt = get_format(f"profile:{profile_path}")
    from .wrappers import apply_envelope

    inners, _ = read_inners(log_path, sample)
    records = [_value(i) for i in inners]
    ctx = ParseContext(str(log_path), identify(log_path).fp, KeyHasher(secrets.token_bytes(32)))
    trial = Trial(records=len(records))
    for i, (inner, rec) in enumerate(zip(inners[:show], records, strict=False)):
        ctx.offset = i
        if inner.error is not None or not isinstance(rec, dict):
            trial.lines.append(TrialLine(i, "quarantined" if inner.error else "skipped",
                                         reason=inner.error or "text, not a JSON object"))
            continue
        try:
            calls = fmt.parse(rec, ctx)
            apply_envelope(calls, inner.envelope)
        except (RecordError, TypeError, ValueError, KeyError, AttributeError) as exc:
            trial.lines.append(TrialLine(i, "quarantined", reason=str(exc)))
            continue
        if not calls:
            why = "excluded by the profile's `when:` filter" if fmt.excludes(rec) else "not an API call"
            trial.lines.append(TrialLine(i, "skipped", reason=why))
        for c in calls:
            trial.lines.append(TrialLine(i, "call", _shown(c)))
    f = profile.fields
    considered = [r for r in records if isinstance(r, dict) and not fmt.excludes(r)]
    for name in sorted(f.model_fields_set - _NOT_PATHS):
        paths: list[str] = getattr(f, name)
        if not any(_hit(r, p) for r in considered for p in paths):
            trial.unmatched.append(name)
    for name, dotted in f.metadata.items():
        if not any(_hit(r, dotted) for r in considered):
            trial.unmatched.append(f"metadata.{name}")
    return trial


def _hit(record: Any, path: str) -> bool:
    v = get_path(record, path)
    return v is not None and v != "" and v != [] and v != {}
