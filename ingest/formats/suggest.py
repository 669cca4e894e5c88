"""`formats suggest`: a starter mapping profile written from a sample of a log.

Every sample record (wrappers already taken off) is walked by `discover`; for each field the
paths where it was found are counted, with an example value (keys shown redacted, never whole).
The most frequent path becomes the profile's entry; the others are listed as comments.
`formats test` reads the result back with every listed field matched.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..keys import display_id, scrub_text, strip_scheme
from .discover import discover

# profile field -> key in Found.paths (same names except where noted)
PROFILE_FIELDS = ("timestamp", "api_key", "user", "route", "url", "client_ip", "request_id", "status_code",
                  "request", "response")


@dataclass(slots=True)
class Candidate:
    path: str
    count: int
    example: str


@dataclass(slots=True)
class Suggestion:
    """What the sample showed: records read, records holding a call, candidates per field."""

    records: int = 0
    calls: int = 0
    fields: dict[str, list[Candidate]] = field(default_factory=dict)

    def profile_yaml(self, name: str) -> str:
        """The profile as YAML text, candidates and examples as comments."""
        out = [f"# Starter profile written by `tokentrail formats suggest` from {self.calls} calls in {self.records} records.",
               "# Check it with: tokentrail formats test THIS_FILE LOGFILE",
               f"name: {json.dumps(name)}", "fields:"]
        for fname in PROFILE_FIELDS:
            cands = self.fields.get(fname)
            if not cands:
                always = {"user": " (a request body's own `user`/`safety_identifier` is read all the same)",
                          "timestamp": " (a wrapper's time or the response's `created` is used)"}.get(fname, "")
                out.append(f"  # {fname}: not found in the sample{always}")
                continue
            paths = ", ".join(json.dumps(c.path) for c in cands[:4])  # tried in order, first non-empty wins
            out.append(f"  {fname}: [{paths}]")
            for c in cands[:4]:
                out.append(f"  #   {json.dumps(c.path)}: {c.count}/{self.calls} calls, e.g. {c.example}")
        return "\n".join(out) + "\n"


def _example(fname: str, value: Any) -> str:
    if fname == "api_key":
        key = strip_scheme(str(value))
        return display_id(key) if key.startswith("sk-") else "azure-…" + key[-4:]  # never the key itself
    if fname in ("request", "response"):
        if isinstance(value, dict):
            return json.dumps({k: value[k] for k in ("model", "object", "id") if k in value})[:80]
        return "a stream" if isinstance(value, list | str) else type(value).__name__
    return scrub_text(json.dumps(value))[:60]  # a URL or id may carry a key: never shown whole


def suggest(records: list[Any]) -> Suggestion:
    """Count, over decoded sample records, where each field was found."""
    s = Suggestion()
    counts: dict[str, Counter[str]] = {f: Counter() for f in PROFILE_FIELDS}
    examples: dict[tuple[str, str], str] = {}
    for rec in records:
        if not isinstance(rec, dict):
            continue
        s.records += 1
        found = discover(rec)
        if found.request is None and found.response is None:
            continue
        s.calls += 1
        values: dict[str, Any] = dict(found.values)
        values["request"], values["response"], values["api_key"] = found.request, found.response, found.key
        for fname in PROFILE_FIELDS:
            path = found.paths.get(fname)
            if path is None or values.get(fname) is None:
                continue
            counts[fname][path] += 1
            examples.setdefault((fname, path), _example(fname, values[fname]))
    for fname, c in counts.items():
        if c:
            s.fields[fname] = [Candidate(p, n, examples[(fname, p)]) for p, n in c.most_common()]
    return s
