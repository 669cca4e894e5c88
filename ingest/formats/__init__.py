"""The one registry of log formats, and per-file format detection.

Built-ins register the same way a plugin would: `register(FormatClass())`. Order matters
for detection: more specific shapes first, the generic `openai` app-log shape last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import FormatError
from .base import Format, ParseContext
from .gateways import KongAIFormat, NginxJsonFormat
from .litellm import LiteLLMFormat, LiteLLMSpendCsvFormat
from .openai_app import OpenAIAppFormat
from .openai_batch import OpenAIBatchOutputFormat
from .otel import OtelGenAIFormat
from .sse import SseTranscriptFormat

_REGISTRY: list[Format] = []


def register(fmt: Format) -> None:
    if any(f.name == fmt.name for f in _REGISTRY):
        raise ValueError(f"format {fmt.name!r} is registered twice")
    _REGISTRY.append(fmt)


def all_formats() -> list[Format]:
    return list(_REGISTRY)


def get_format(name: str) -> Format:
    if name.startswith("profile:"):
        from .profile import load_profile

        return OpenAIAppFormat(load_profile(name.split(":", 1)[1]))
    for f in _REGISTRY:
        if f.name == name:
            return f
    names = ", ".join(f.name for f in _REGISTRY)
    raise FormatError(f"unknown format {name!r}; known formats: {names}, or profile:PATH for a mapping profile")


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
    try:
        return msgspec.json.decode(line.decode("utf-8", "replace").encode()), True
    except RecursionError:
        raise msgspec.DecodeError("JSON nesting is too deep") from None


def detect_record(record: Any, candidates: Iterable[Format] | None = None) -> Format | None:
    for f in candidates if candidates is not None else _REGISTRY:
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
            text = next((f for f in _REGISTRY if f.kind == "text" and f.detect(line)), None)
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
        found = detect_record(record)
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


# Most specific shapes first; the generic app-log shape (bodies found anywhere) last.
for _fmt in (OtelGenAIFormat(), LiteLLMFormat(), KongAIFormat(), NginxJsonFormat(), OpenAIBatchOutputFormat(),
             SseTranscriptFormat(), LiteLLMSpendCsvFormat(), OpenAIAppFormat()):
    register(_fmt)

__all__ = ["Format", "ParseContext", "Detection", "register", "all_formats", "get_format", "detect_lines",
           "detect_sample", "detect_record", "decode_record", "decode_line"]
