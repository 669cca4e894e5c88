"""Log lines and a rule file for the controls tests (alerts, export, metrics, rules sql).

The line shape is the `openai` format's app log: a structured-logger record embedding a Chat
Completions response body (see tests/fixtures/README.md, `openai/app_calls.jsonl`).
"""

from __future__ import annotations

import json
from datetime import datetime

KEYS = {"alpha": "sk-proj-" + "A" * 40 + "ALFA", "beta": "sk-proj-" + "B" * 40 + "BETA"}
RULES = """
version: 1
rules:
  key_name:
    - {id: alpha, when: {api_key_id: {suffix: ALFA}}, value: alpha}
    - {id: beta, when: {api_key_id: {suffix: BETA}}, value: beta}
  feature:
    - {id: essays, when: {route: {glob: "/essays/*"}}, value: essay-review}
    - {id: area, when: {route: {regex: "^/(?P<area>[a-z]+)/"}}, value: "{area}"}
    - {id: tagged, when: {"metadata.x-feature": {exists: true}}, value: "{metadata.x-feature}"}
  end_user:
    - {id: user, when: {user: {exists: true}}, value: "{user}"}
  team:
    - {id: product, when: {key_name: {in: [alpha]}}, value: product}
    - {id: big, when: {all: [{input_tokens: {gte: 1000}}, {not: {model: {prefix: "gpt-4o-mini"}}}]}, value: heavy}
budgets:
  - {id: alpha-month, scope: {key_name: alpha}, limit_usd: 1.0, period: month, warn_at: [0.5]}
"""


def call_line(ts: datetime, key: str, tokens_in: int, tokens_out: int = 0, route: str = "/r", model: str = "gpt-4o-mini",
              i: int = 0, user: str | None = None, cached: int = 0, headers: dict[str, str] | None = None,
              ip: str = "203.0.113.1") -> str:
    usage: dict[str, object] = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                                "total_tokens": tokens_in + tokens_out}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    record: dict[str, object] = {
        "timestamp": ts.isoformat(), "route": route, "client_ip": ip,
        "headers": {"authorization": f"Bearer {KEYS[key]}", **(headers or {})},
        "request": {"model": model, "messages": [{"role": "user", "content": "hi"}], **({"user": user} if user else {})},
        "response": {"id": f"chatcmpl-{key}-{ts.timestamp():.0f}-{i}", "object": "chat.completion",
                     "created": int(ts.timestamp()), "model": model, "choices": [], "usage": usage},
    }
    return json.dumps(record) + "\n"
