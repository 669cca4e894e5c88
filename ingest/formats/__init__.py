"""Log formats: the interface (`Format`, `FileParser`), the registry, and detection.

`get_format("kong")` / `get_format("profile:app.yaml")` resolve a `--format` spec; `all_formats()`
lists the registered formats in detection order; `register(MyFormat())` adds one at run time
(third-party packages use the `tokentrail.formats` entry-point group instead, see `registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .base import FileParser, Format, ParseContext
from .coerce import decode_line, decode_record
from .detect import Detection, detect_lines, detect_record, detect_sample
from .registry import ENTRY_POINT_GROUP, REGISTRY, FormatRegistry, RunInputs, SpecPrefix


def register(fmt: Format, priority: int | None = None) -> None:
    REGISTRY.register(fmt, priority)


def all_formats() -> list[Format]:
    return list(REGISTRY.formats())


def get_format(spec: str) -> Format:
    return REGISTRY.get(spec)


def scan_run(paths: Sequence[Path]) -> RunInputs:
    return REGISTRY.scan_run(paths)


__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "Detection", "FileParser", "Format", "FormatRegistry", "ParseContext",
           "RunInputs", "SpecPrefix", "all_formats", "decode_line", "decode_record", "detect_lines", "detect_record",
           "detect_sample", "get_format", "register", "scan_run"]
