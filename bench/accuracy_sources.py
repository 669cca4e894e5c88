"""How tests/accuracy/cases.jsonl was assembled (kept for provenance; run by hand, never by the suite).

Inputs, fetched from public repositories into /tmp/src first:
  * hmarr/openai-chat-tokens tests/token-counts.test.ts (TEST_CASES converted to /tmp/src/hmarr.json with node);
  * pamelafox/openai-messages-token-helper tests/{messages,functions,image_messages}.py (as /tmp/src/pf_*.py);
  * bench/harvest_cases.py output over pydantic/pydantic-ai's cassettes (/tmp/pyd.jsonl);
  * the cookbook cases already cited in tests/test_tokens.py.
Cases are deduplicated by (model, endpoint, request body). Later additions: the VCR cassettes of
Mirascope/mirascope (commit 41d433578653), traceloop/openllmetry (93429cfb9767) and crewAIInc/crewAI
(f4731f5025f8), every countable non-streamed OpenAI interaction of each, appended by
bench/accuracy_harvest_vcr.py (same id and dedup rule).
"""
# ruff: noqa
import json, hashlib, sys, re, ast
sys.path.insert(0, "/work/wt-tokens")
from tests.test_tokens import API_CASES  # cookbook cases (cited there)
cases = []
CB = "OpenAI cookbook examples/How_to_count_tokens_with_tiktoken.ipynb"
for cat, model, body, n, src in API_CASES:
    if n is None: continue
    c = "tools" if "tools" in body else "plain"
    cases.append({"category": c, "endpoint": "chat.completions", "model": model, "request": {"model": model, **body},
                  "input_tokens": n, "source": f"{CB}, {'section 7 (function calling)' if c=='tools' else 'section 6'}: prompt tokens counted by the OpenAI API"})
# hmarr/openai-chat-tokens tests/token-counts.test.ts (counts validated against gpt-3.5-turbo)
H = json.load(open("/tmp/src/hmarr.json"))
for i, ex in enumerate(H):
    req = {"model": "gpt-3.5-turbo", "messages": ex["messages"]}
    if ex.get("functions"): req["functions"] = ex["functions"]
    if ex.get("function_call"): req["function_call"] = ex["function_call"]
    hist = any(m.get("role") == "function" or m.get("function_call") for m in ex["messages"])
    cat = "tool_history" if hist else ("tools" if ex.get("functions") else "plain")
    cases.append({"category": cat, "endpoint": "chat.completions", "model": "gpt-3.5-turbo", "request": req,
                  "input_tokens": ex["tokens"], "source": f"github.com/hmarr/openai-chat-tokens@b8e3b11d4f50:tests/token-counts.test.ts case {i} (API usage.prompt_tokens, gpt-3.5-turbo)"})
PF = "github.com/pamelafox/openai-messages-token-helper@b60075e3b4ec:tests/{}.py {} (API usage.prompt_tokens via tests/verify_*.py, {})"
for fname in ["messages", "functions", "image_messages"]:
    ns = {}
    exec(open(f"/tmp/src/pf_{fname}.py").read(), ns)
    for name, d in ns.items():
        if not isinstance(d, dict) or "count" not in d: continue
        variants = [("count", "gpt-4o" if fname == "image_messages" else "gpt-35-turbo")]
        if "count_omni" in d: variants.append(("count_omni", "gpt-4o"))
        if "count_4o_mini" in d: variants.append(("count_4o_mini", "gpt-4o-mini"))
        for key, model in variants:
            if fname == "functions":
                req = {"model": model, "messages": [d["system_message"]], "tools": d["tools"], "tool_choice": d["tool_choice"]}
                cat = "tools"
            else:
                req = {"model": model, "messages": [d["message"]]}
                cat = "images" if fname == "image_messages" or "image" in name else "plain"
            cases.append({"category": cat, "endpoint": "chat.completions", "model": model, "request": req,
                          "input_tokens": d[key], "source": PF.format(fname, name, f"{key} = {model}")})
for l in open("/tmp/pyd.jsonl"):
    d = json.loads(l); d.pop("id", None); d.pop("served_model", None); cases.append(d)
seen = set(); out = []
for c in cases:
    key = hashlib.sha256(json.dumps([c["model"], c["endpoint"], c["request"]], sort_keys=True).encode()).hexdigest()[:12]
    if key in seen: continue
    seen.add(key); c["id"] = key; out.append(c)
with open("/work/wt-tokens/tests/accuracy/cases.jsonl", "w") as f:
    for c in out: f.write(json.dumps({k: c[k] for k in ["id","category","endpoint","model","input_tokens","source","request"]}, sort_keys=False) + "\n")
print(len(cases), len(out))
