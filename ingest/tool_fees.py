"""Built-in tool calls a response billed per call, counted from the bodies the formats parse.

OpenAI prices some built-in tools per call on top of tokens (pricing page, "Built-in tools"):
web search per call, file search per call, code interpreter per container. The counts come from
what the API returned, never from what was offered:

* Responses output items: each `web_search_call` and `file_search_call` item is one call; each
  distinct `container_id` among `code_interpreter_call` items is one container (an item without a
  container id counts as its own container). Streamed Responses are read from their
  `response.output_item.done` events, or the `response.completed` event's full response.
* Chat Completions with `web_search_options`: the search models search once per request (the
  request asked for it and the response came back), so one web search call.

The counts are the call's columns `web_search_calls`, `file_search_calls` and
`code_interpreter_sessions` (NULL when none); `attribution.pricing.cost_select` prices them with the
dated per-call fees. Rows written before those columns existed carried the counts in `metadata`
under `TOOL_CALL_KEYS`; pricing still reads them there, so re-attributing old rows keeps their fees.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import Call

# tool -> the call's column
TOOL_CALL_FIELDS = {"web_search": "web_search_calls", "file_search": "file_search_calls",
                    "code_interpreter": "code_interpreter_sessions"}
# tool -> the metadata key rows written before the columns existed carry the count under (read only)
TOOL_CALL_KEYS = {"web_search": "tokentrail.web_search_calls", "file_search": "tokentrail.file_search_calls",
                  "code_interpreter": "tokentrail.code_interpreter_sessions"}
_ITEM_TOOLS = {"web_search_call": "web_search", "file_search_call": "file_search"}


def _output_items(response: Any) -> Iterable[dict[str, Any]]:
    """Output items of a Responses body, or of a list of streamed events."""
    if isinstance(response, dict):
        for item in response.get("output") or ():
            if isinstance(item, dict):
                yield item
        return
    if not isinstance(response, list):
        return
    done: list[dict[str, Any]] = []
    for event in response:
        if not isinstance(event, dict):
            continue
        if event.get("type") == "response.completed" and isinstance(event.get("response"), dict):
            yield from _output_items(event["response"])  # the full response: it lists every item
            return
        if event.get("type") == "response.output_item.done" and isinstance(event.get("item"), dict):
            done.append(event["item"])
    yield from done


def builtin_tool_calls(request: dict[str, Any] | None, response: Any) -> dict[str, int]:
    """{tool: calls} billed per call by one response (tools with no calls are left out)."""
    counts: dict[str, int] = {}
    containers: set[str] = set()
    anonymous = 0
    for item in _output_items(response):
        itype = item.get("type")
        if itype in _ITEM_TOOLS:
            counts[_ITEM_TOOLS[itype]] = counts.get(_ITEM_TOOLS[itype], 0) + 1
        elif itype == "code_interpreter_call":
            cid = item.get("container_id")
            if isinstance(cid, str) and cid:
                containers.add(cid)
            else:
                anonymous += 1
    if containers or anonymous:
        counts["code_interpreter"] = len(containers) + anonymous
    served = response is not None  # a request alone (no response logged) billed no search
    if served and isinstance(request, dict) and isinstance(request.get("web_search_options"), dict) \
            and "web_search" not in counts:
        counts["web_search"] = 1
    return counts


def record_builtin_tool_calls(call: Call, request: dict[str, Any] | None, response: Any) -> None:
    """Set the call's per-call tool counts (left NULL for tools with no calls)."""
    for tool, n in builtin_tool_calls(request, response).items():
        setattr(call, TOOL_CALL_FIELDS[tool], n)
