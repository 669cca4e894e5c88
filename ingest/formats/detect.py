"""Which registered format a record, or a file's first lines, is written in.

Detection asks the formats in registry order (`priority`); a file's format is the one most of
its sampled lines match, so one odd line does not decide how a whole file is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from .base import Format
from .coerce import decode_record
from .registry import REGISTRY


def detect_record(record: Any, candidates: Iterable[Format] | None = None) -> Format | None:
    for f in candidates if candidates is not None else REGISTRY.formats():
        if f.kind == "json":
            try:
                if f.detect(record):
                    return f
            except (TypeError, ValueError, AttributeError, KeyError):
                continue
    return None


@dataclass(slots=True)
class Detection:
    """What sniffing a file's first lines found: the majority format and how many lines were readable."""

    format: Format | None
    matched: int  # sample lines (records) the chosen format recognised
    readable: int  # sample lines that were JSON or matched a text format
    sampled: int  # non-blank sample lines
    jsonish: int = 0  # sample lines starting with `{` or `[` (broken JSON still looks like a log)

    @property
    def not_a_log(self) -> bool:
        """Nothing in the sample is JSON, a known text format, or even looks like JSON (images, unrelated CSV)."""
        return self.sampled > 0 and not self.readable and not self.jsonish


def detect_sample(items: Iterable[Any], sample: int = 50) -> Detection:
    """Pick the format most of a sample matches. Items are raw lines (bytes) or records already
    decoded (by `ingest.wrappers.unwrap_sample`, which takes container/cloud wrappers off)."""
    votes: Counter[str] = Counter()
    by_name: dict[str, Format] = {}
    readable = sampled = jsonish = 0
    formats = REGISTRY.formats()
    for i, item in enumerate(items):
        if i >= sample:
            break
        if isinstance(item, bytes | str):
            line = item.encode() if isinstance(item, str) else item
            line = line.strip()
            if not line:
                continue
            sampled += 1
            jsonish += line.startswith((b"{", b"["))
            text = next((f for f in formats if f.kind == "text" and f.detect(line)), None)
            if text is not None:
                readable += 1
                votes[text.name] += 1
                by_name[text.name] = text
                continue
            try:
                record = decode_record(line)
            except msgspec.DecodeError:
                continue
        else:
            sampled += 1
            record = item
        readable += 1
        found = detect_record(record, formats)
        if found is not None:
            votes[found.name] += 1
            by_name[found.name] = found
    if not votes:
        return Detection(None, 0, readable, sampled, jsonish)
    name, n = votes.most_common(1)[0]
    return Detection(by_name[name], n, readable, sampled, jsonish)


def detect_lines(lines: Iterable[Any], sample: int = 50) -> tuple[Format | None, int]:
    """Pick the format most lines of a file's sample match: (format, lines that matched)."""
    d = detect_sample(lines, sample)
    return d.format, d.matched
