"""What a parser hands to the counter for a call whose log lacks usage (`Call.estimate_request`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class EstimateRequest:
    """Hand-off to `ingest.tokens`: what to count for a call that lacks usage."""

    endpoint: str
    model: str | None
    request: dict[str, Any] | None  # the request body, for input tokens
    output_texts: list[str] | None  # generated text, for output tokens (None: unknown)
    flags: list[str] = field(default_factory=list)
    output_tool_calls: int = 0  # tool calls among the outputs (framing tokens each)


def request_endpoint(req: dict[str, Any]) -> str:
    """Which API a request body was sent to, from its shape (when the log gives no URL)."""
    if "messages" in req:
        return "chat.completions"
    if "prompt" in req:
        return "completions"
    model = str(req.get("model", ""))
    if "embedding" in model or "encoding_format" in req or "dimensions" in req:
        return "embeddings"
    return "responses"
