"""Input-token estimates against counts the API reported, gathered from public sources.

tests/accuracy/cases.jsonl holds each request body as it was sent, the `usage.prompt_tokens`
(Chat) or `usage.input_tokens` (Responses) the API answered, and where it was published:
OpenAI's cookbook, hmarr/openai-chat-tokens and pamelafox/openai-messages-token-helper
(counts checked against the API by their own scripts), and recorded HTTP cassettes of
pydantic/pydantic-ai, Mirascope/mirascope, traceloop/openllmetry, crewAIInc/crewAI, Arize-ai/openinference,
simonw/llm, pydantic/logfire, open-telemetry/opentelemetry-python-contrib, posit-dev/chatlas,
elastic/elastic-otel-python-instrumentations, DataDog/dd-trace-py and langchain-ai/langsmith-sdk (every
countable non-streamed OpenAI call in each; bench/harvest_cases.py, bench/accuracy_harvest_vcr.py).
`bench/accuracy.py` prints the same rates next to LiteLLM and tokencost.

The floors below are the exact-match counts reached when they were written; a change to the
renderer that loses an exact case fails here. `responses_builtin` (web search results, code
interpreter, MCP, tool search, compaction, encrypted reasoning) cannot be counted from the
request and is only required to be flagged.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from ingest.tokens import count_request_input

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from harvest_cases import below_its_own_text, countable  # noqa: E402

CASES = [json.loads(line) for line in (Path(__file__).parent / "accuracy" / "cases.jsonl").read_text().splitlines()]
FLOORS = {"plain": 587, "reasoning": 26, "images": 13, "tools": 204, "tool_history": 179, "structured": 173, "responses": 300,
          "responses_builtin": 8}


def _exact_by_category() -> tuple[Counter[str], Counter[str]]:
    exact: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for c in CASES:
        n, _ = count_request_input(c["request"], model=c["model"], endpoint=c["endpoint"])
        total[c["category"]] += 1
        exact[c["category"]] += n == c["input_tokens"]
    return exact, total


def test_every_case_names_its_source_and_is_unique() -> None:
    assert len(CASES) > 300
    assert all(c["source"] and c["category"] and isinstance(c["input_tokens"], int) for c in CASES)
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_no_countable_case_reports_fewer_tokens_than_its_message_texts() -> None:
    """A count below the tokens of the request's own texts was not made for that request (the harvester skips
    such calls): pydantic-ai's test_yaml_document_url_input reported 3,152 for a request whose two text parts
    alone are 3,164 (o200k), so the recorded body is not the one the API counted."""
    low = [c["id"] for c in CASES
           if c["category"] != "responses_builtin" and below_its_own_text(c["model"], c["request"], c["input_tokens"])]
    assert low == []


def test_the_harvester_leaves_out_a_count_below_the_texts_but_not_a_compacted_responses_call() -> None:
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "tokens " * 40}]}
    assert countable("chat.completions", chat, {"usage": {"prompt_tokens": 39}}) is None
    assert countable("chat.completions", chat, {"usage": {"prompt_tokens": 47}}) == ("plain", "gpt-4o", 47)
    compacted = {"model": "gpt-4.1", "input": [{"role": "user", "content": "tokens " * 40},
                                                {"type": "compaction", "encrypted_content": "…"}]}
    assert countable("responses", compacted, {"usage": {"input_tokens": 12}}) == ("responses_builtin", "gpt-4.1", 12)


def test_exact_match_floors_per_category() -> None:
    exact, total = _exact_by_category()
    below = {cat: f"{exact[cat]}/{total[cat]} < {floor}" for cat, floor in FLOORS.items() if exact[cat] < floor}
    assert not below, below


@pytest.mark.parametrize("source", ["How_to_count_tokens_with_tiktoken", "hmarr/openai-chat-tokens"])
def test_the_documented_references_are_all_exact(source: str) -> None:
    """The cookbook's and hmarr's API-checked examples (plain, names, functions, function history)."""
    misses = [c["id"] for c in CASES if source in c["source"]
              and count_request_input(c["request"], model=c["model"], endpoint=c["endpoint"])[0] != c["input_tokens"]]
    assert misses == []


def test_uncountable_responses_items_are_flagged() -> None:
    for c in CASES:
        if c["category"] == "responses_builtin":
            _, flags = count_request_input(c["request"], model=c["model"], endpoint=c["endpoint"])
            assert any(f.endswith("not_counted") for f in flags), c["id"]
