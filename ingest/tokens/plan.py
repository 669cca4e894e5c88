"""A counting plan: the texts the model reads plus the tokens that need no encoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec


@dataclass(slots=True)
class Plan:
    """Texts to encode plus a fixed number of tokens that need no encoding (overheads, images)."""

    texts: list[str] = field(default_factory=list)
    fixed: int = 0
    flags: list[str] = field(default_factory=list)

    def add(self, value: Any) -> None:
        if isinstance(value, str):
            if value:
                self.texts.append(value)
        elif value is not None:
            self.texts.append(msgspec.json.encode(value).decode())


def _as_dict(value: Any, default: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else `default` (keeps JSON walking total and typed)."""
    return value if isinstance(value, dict) else default


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
