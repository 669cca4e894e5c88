"""Gather API-reported token counts from standard VCR cassettes (request body a JSON string, response
body a string or gzip bytes), as Mirascope/mirascope records them; bench/harvest_cases.py reads
pydantic-ai's parsed-body form. Run by hand when refreshing tests/accuracy/cases.jsonl; prints one
case per line (id = the first 12 hex of sha256([model, endpoint, request]), as bench/accuracy_sources.py).

    python bench/accuracy_harvest_vcr.py /work/.mirror/Mirascope+mirascope/repo Mirascope/mirascope > part.jsonl
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import subprocess
import sys
from typing import Any

import yaml
from harvest_cases import MAX_BODY, category

FIELDS = ["id", "category", "endpoint", "model", "input_tokens", "source", "request"]


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=True).stdout


def _json(raw: Any) -> Any:
    if isinstance(raw, bytes):
        with contextlib.suppress(OSError):
            raw = gzip.decompress(raw)
        raw = raw.decode("utf-8", "replace")
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return None


def harvest(repo: str, name: str) -> list[dict[str, Any]]:
    commit = git(repo, "rev-parse", "HEAD").strip()
    paths = [p for p in git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
             if "cassettes/" in p and p.endswith(".yaml")]
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        text = git(repo, "show", f"HEAD:{path}")
        if "api.openai.com" not in text:
            continue
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        for i, inter in enumerate((doc or {}).get("interactions") or ()):
            req, resp = inter.get("request") or {}, inter.get("response") or {}
            uri = str(req.get("uri", ""))
            endpoint = "chat.completions" if uri.endswith("/chat/completions") else \
                "responses" if uri.endswith("/responses") else None
            if not uri.startswith("https://api.openai.com/v1/") or endpoint is None \
                    or (resp.get("status") or {}).get("code") != 200:
                continue
            body, rbody = _json(req.get("body")), _json((resp.get("body") or {}).get("string"))
            if not isinstance(body, dict) or not isinstance(rbody, dict) or body.get("stream"):
                continue
            usage = rbody.get("usage") or {}
            n = usage.get("prompt_tokens") if endpoint == "chat.completions" else usage.get("input_tokens")
            model = str(body.get("model", ""))
            cat = category(endpoint, model, body)
            if not isinstance(n, int) or cat is None or len(json.dumps(body)) > MAX_BODY:
                continue
            key = hashlib.sha256(json.dumps([model, endpoint, body], sort_keys=True).encode()).hexdigest()[:12]
            out.setdefault(key, {"id": key, "category": cat, "endpoint": endpoint, "model": model, "input_tokens": n,
                                 "source": f"github.com/{name}@{commit[:12]}:{path} interaction {i}", "request": body})
    return list(out.values())


if __name__ == "__main__":
    for case in harvest(sys.argv[1], sys.argv[2]):
        print(json.dumps({k: case[k] for k in FIELDS}))
