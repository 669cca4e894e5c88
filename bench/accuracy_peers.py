"""Runs inside bench/.venv-peers: LiteLLM's token_counter and tokencost on the accuracy cases.

Reads tests/accuracy/cases.jsonl, prints one JSON line per case: {"id", "litellm", "tokencost"}
(null where the library raised). Responses requests are handed over as the equivalent chat
messages (instructions as a system message), since neither library reads Responses bodies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def as_chat(case: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, Any]:
    req = case["request"]
    if case["endpoint"] != "responses":
        tools = req.get("tools") or ([{"type": "function", "function": f} for f in req["functions"]]
                                     if req.get("functions") else None)
        return req.get("messages") or [], tools, req.get("tool_choice")
    msgs: list[dict[str, Any]] = []
    if isinstance(req.get("instructions"), str):
        msgs.append({"role": "system", "content": req["instructions"]})
    inp = req.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    for item in inp if isinstance(inp, list) else ():
        t = item.get("type")
        if t == "function_call":
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})
        elif t == "function_call_output":
            out = item.get("output")
            msgs.append({"role": "tool", "tool_call_id": item.get("call_id"),
                         "content": out if isinstance(out, str) else json.dumps(out)})
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = [{"type": "text", "text": p.get("text", "")} if p.get("type") in ("input_text", "output_text")
                           else {"type": "image_url", "image_url": {"url": p.get("image_url"), "detail": p.get("detail", "auto")}}
                           if p.get("type") == "input_image" else p for p in content if isinstance(p, dict)]
            msgs.append({"role": item["role"], "content": content})
    tools = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
             for t in req.get("tools") or () if t.get("type") == "function"] or None
    return msgs, tools, req.get("tool_choice")


def main(path: str) -> None:
    import litellm
    import tokencost

    for line in Path(path).read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        msgs, tools, choice = as_chat(case)
        row: dict[str, Any] = {"id": case["id"]}
        try:
            kw: dict[str, Any] = {"tools": tools} if tools else {}
            if tools and choice is not None:
                kw["tool_choice"] = choice
            row["litellm"] = litellm.token_counter(model=case["model"], messages=msgs, **kw)
        except Exception:  # noqa: BLE001 - a peer failing on a case counts as a miss
            row["litellm"] = None
        try:
            row["tokencost"] = tokencost.count_message_tokens(msgs, case["model"])
        except Exception:  # noqa: BLE001
            row["tokencost"] = None
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
