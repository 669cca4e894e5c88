"""Coverage: what share of calls has a key, user, route and timestamp, and what to do when few do.

Per-key and per-user attribution is the point of the tool; a log whose calls carry no key (or the
key sits where no format looks) must say so, not produce an empty report silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .schema import Call

WARN_BELOW = 0.5  # warn when fewer than half the calls have a field

FIELDS = ("key", "user", "route", "timestamp")
_FIX = {
    "key": "no Authorization/api-key header or key field was found: log the request headers, or name the "
           "key's path in a profile (`tokentrail formats suggest FILE`)",
    "user": "no user was found: pass `user`/`safety_identifier` in requests or log the end user; "
            "`tokentrail formats suggest FILE` shows candidate fields",
    "route": "no route or URL was found: log the app's request path; `tokentrail formats suggest FILE` "
             "shows candidate fields",
    "timestamp": "no timestamp was found, the file's modification time was used: log one, or name it in a profile",
}


class _Counts(Protocol):
    path: str
    calls: int
    with_key: int
    with_user: int
    with_route: int
    with_ts: int


def add_coverage(result: _Counts, calls: Iterable[Call]) -> None:
    """Count, into a FileResult, the calls whose key, user, route and own timestamp were found."""
    for c in calls:
        result.with_key += c.api_key_fp is not None
        result.with_user += c.user is not None
        result.with_route += c.route is not None
        result.with_ts += not (c.estimate_flags and "ts_from_file_mtime" in c.estimate_flags)


def coverage_summary(results: Sequence[_Counts]) -> tuple[str, list[str]]:
    """One line (`coverage: key 4/4 (100%), user …`) and a warning per field most calls lack.

    Rejected calls (4xx) count like any other: their key and user matter for attribution too.
    """
    total = sum(r.calls for r in results)
    if total == 0:
        return "coverage: no calls", []
    found = {
        "key": sum(r.with_key for r in results),
        "user": sum(r.with_user for r in results),
        "route": sum(r.with_route for r in results),
        "timestamp": sum(r.with_ts for r in results),
    }
    line = "coverage: " + ", ".join(f"{name} {n}/{total} ({n * 100 // total}%)" for name, n in found.items())
    warnings = []
    for name, n in found.items():
        if n < total * WARN_BELOW:
            files = [r.path for r in results if r.calls and _share(r, name) < WARN_BELOW]
            where = f" (in {', '.join(files[:3])}{' and others' if len(files) > 3 else ''})" if files else ""
            warnings.append(f"{total - n} of {total} calls have no {name}{where}: {_FIX[name]}")
    return line, warnings


def _share(r: _Counts, name: str) -> float:
    n = {"key": r.with_key, "user": r.with_user, "route": r.with_route, "timestamp": r.with_ts}[name]
    return n / r.calls if r.calls else 1.0
