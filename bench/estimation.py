"""Estimation speed: tokentrail's counter against raw tiktoken and against LiteLLM / tokencost.

`run(scale)` returns paired ratios measured in one process run (see bench/README.md, "Estimation
and peers"):

* `ratio_vs_raw_tiktoken`: seconds raw `tiktoken.encode_ordinary` takes over every text of the
  requests' counting plans, divided by the seconds tokentrail takes to plan and count the same
  requests with its memo (`count_request_input`, one fresh `TokenCounter`). > 1: the memo saves
  more than planning and bookkeeping cost.
* `vocabulary_load_s`: building both vocabularies in a fresh interpreter (cold, loaded once).
* `ratio_vs_litellm`, `ratio_vs_tokencost`: the peers' seconds over tokentrail's on the same chat
  requests, every library's vocabulary loaded before the clock starts (a warm-up call each), and
  the counts compared: `*_same_counts` says how many requests got the same count as tokentrail.
  The peers run in bench/.venv-peers (created by bench/accuracy.py), never in the project's venv.

    .venv/bin/python bench/estimation.py [scale]
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_PY = ROOT / "bench" / ".venv-peers" / "bin" / "python"
WORDS = ["token", "cost", "model", "usage", "request", "reply", "budget", "invoice", "customer", "order", "weather",
         "city", "report", "summary", "function", "schema", "answer", "question", "context", "window", "latency",
         "cache", "batch", "flex", "priority"]


def requests(n: int, seed: int = 5, systems_n: int = 12) -> list[dict[str, Any]]:
    """Chat requests shaped like an app's traffic: a few long system prompts and tool sets that
    repeat, short distinct user turns, some history. Deterministic for a seed. `systems_n=n` gives
    every request its own system prompt (nothing long repeats: the memo's worst case)."""
    rnd = random.Random(seed)
    systems = [f"{k} " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(150, 600))) for k in range(systems_n)]
    tools = [[{"type": "function", "function": {"name": f"tool_{k}_{j}",
                                                "description": " ".join(rnd.choice(WORDS) for _ in range(12)),
               "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"},
                                                               "days": {"type": "integer"}}, "required": ["city"]}}}
              for j in range(3)] for k in range(4)]
    out = []
    for i in range(n):
        msgs: list[dict[str, Any]] = [{"role": "system", "content": systems[i % len(systems)]}]
        for _ in range(rnd.randint(0, 2)):
            msgs.append({"role": "user", "content": " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 40)))})
            msgs.append({"role": "assistant", "content": " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 80)))})
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 60)))
        msgs.append({"role": "user", "content": f"question {i}: {words}"})
        req: dict[str, Any] = {"model": ("gpt-4o-mini", "gpt-4.1", "gpt-3.5-turbo")[i % 3], "messages": msgs}
        if i % 3 == 0:
            req["tools"] = tools[i % len(tools)]
        out.append(req)
    return out


def _best(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def vocabulary_load_s() -> float:
    code = ("import time; t=time.perf_counter(); from ingest.tokens.vocab import get_encoding; "
            "get_encoding('o200k_base'); get_encoding('cl100k_base'); print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


_PEER_SCRIPT = r"""
import json, sys, time
import litellm, tokencost
reqs = json.load(open(sys.argv[1]))
litellm.token_counter(model="gpt-4o-mini", messages=[{"role": "user", "content": "warm"}])
litellm.token_counter(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "warm"}])
tokencost.count_message_tokens([{"role": "user", "content": "warm"}], "gpt-4o-mini")
tokencost.count_message_tokens([{"role": "user", "content": "warm"}], "gpt-3.5-turbo")
def ll():
    return [litellm.token_counter(model=r["model"], messages=r["messages"],
                                  **({"tools": r["tools"]} if r.get("tools") else {})) for r in reqs]
def tc():
    out = []
    for r in reqs:
        try:
            out.append(tokencost.count_message_tokens(r["messages"], r["model"]))
        except Exception:
            out.append(None)
    return out
res = {}
for name, fn in (("litellm", ll), ("tokencost", tc)):
    best, counts = float("inf"), None
    for _ in range(3):
        t = time.perf_counter(); counts = fn(); best = min(best, time.perf_counter() - t)
    res[name] = {"s": best, "counts": counts}
print(json.dumps(res))
"""


def peers(reqs: list[dict[str, Any]], work: Path) -> dict[str, Any] | None:
    if not PEERS_PY.exists():
        return None
    from bench.accuracy import tiktoken_cache

    cache = tiktoken_cache(ROOT / "bench" / ".venv-peers" / "tiktoken-cache")
    (work / "reqs.json").write_text(json.dumps(reqs))
    (work / "peers.py").write_text(_PEER_SCRIPT)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TIKTOKEN_CACHE_DIR": str(cache),
           "CUSTOM_TIKTOKEN_CACHE_DIR": str(cache), "LITELLM_LOG": "ERROR"}
    out = subprocess.run([str(PEERS_PY), str(work / "peers.py"), str(work / "reqs.json")], env=env,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(scale: float = 1.0, work: Path | None = None) -> dict[str, Any]:
    """The estimation figures (issue 17, target 3) for `scale` x 3,000 requests."""
    sys.path.insert(0, str(ROOT))
    import tempfile

    from ingest.tokens import TokenCounter, count_request_input, encoding_for_model, plan_input
    from ingest.tokens.vocab import get_encoding

    reqs = requests(max(1, int(3000 * scale)))
    encs = {n: get_encoding(n) for n in ("o200k_base", "cl100k_base")}  # loading excluded from every timing
    texts = []
    for r in reqs:
        enc, _ = encoding_for_model(r["model"])
        texts += [(encs[enc], t) for t in plan_input("chat.completions", r, r["model"], enc).texts]
    def raw() -> list[int]:
        return [len(e.encode_ordinary(t)) for e, t in texts]

    def tokentrail() -> list[int]:
        counter = TokenCounter()  # a fresh memo each time: no count carries over between repeats
        return [count_request_input(r, counter=counter)[0] for r in reqs]

    # Paired and interleaved: raw and tokentrail alternate, best of five each (a shared machine's
    # noise hits both sides), and tokentrail is timed again after the peers ran (best of both).
    timings = [(_best(raw, 1)[0], _best(tokentrail, 1)) for _ in range(5)]
    t_raw = min(t for t, _ in timings)
    t_ours, ours = min((b for _, b in timings), key=lambda b: b[0])
    out: dict[str, Any] = {
        "figure": "estimation: tokentrail vs raw tiktoken and peers (issue 17 target 3)", "requests": len(reqs),
        "texts": len(texts), "chars": sum(len(t) for _, t in texts),
        "tokentrail_s": round(t_ours, 4), "raw_tiktoken_s": round(t_raw, 4),
        "baseline": "tiktoken encode_ordinary over the same plan texts, no memo",
        "ratio_vs_raw_tiktoken": round(t_raw / t_ours, 2), "target": "> 1",
        "vocabulary_load_s": round(vocabulary_load_s(), 3),
    }
    # The memo's worst case: every request has its own system prompt, so only roles and tool sets repeat.
    uniq = requests(len(reqs), systems_n=len(reqs))
    u_texts = []
    for r in uniq:
        enc, _ = encoding_for_model(r["model"])
        u_texts += [(encs[enc], t) for t in plan_input("chat.completions", r, r["model"], enc).texts]
    u_raw = min(_best(lambda: [len(e.encode_ordinary(t)) for e, t in u_texts], 1)[0] for _ in range(3))
    u_ours = min(_best(lambda: (lambda c: [count_request_input(r, counter=c)[0] for r in uniq])(TokenCounter()), 1)[0]
                 for _ in range(3))
    out["ratio_vs_raw_tiktoken_no_repeats"] = round(u_raw / u_ours, 2)
    with tempfile.TemporaryDirectory() as tmp:
        res = peers(reqs, Path(work or tmp))
    t_ours = min(t_ours, _best(tokentrail, 3)[0])  # tokentrail again after the peers: best of both
    out["tokentrail_vs_peers_s"] = round(t_ours, 4)
    if res is None:
        out["peers"] = "not installed (run bench/accuracy.py once to create bench/.venv-peers)"
        return out
    if "error" in res:
        out["peers"] = f"failed: {res['error']}"
        return out
    for name in ("litellm", "tokencost"):
        counts = res[name]["counts"]
        out[f"{name}_s"] = round(res[name]["s"], 4)
        out[f"ratio_vs_{name}"] = round(res[name]["s"] / t_ours, 2)
        out[f"{name}_same_counts"] = f"{sum(a == b for a, b in zip(ours, counts, strict=True))}/{len(reqs)}"
    return out


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0), indent=2))
