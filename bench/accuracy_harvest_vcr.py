"""Gather API-reported token counts from standard VCR cassettes (under `cassettes/` or `_vcr/`; request body a
JSON string, response body a string or gzip bytes), as Mirascope/mirascope records them; bench/harvest_cases.py reads
pydantic-ai's parsed-body form. Run by hand when refreshing tests/accuracy/cases.jsonl; prints one
case per line (id = the first 12 hex of sha256([model, endpoint, request]), as bench/accuracy_sources.py).

    python bench/accuracy_harvest_vcr.py /work/.mirror/Mirascope+mirascope/repo Mirascope/mirascope > part.jsonl
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import sys
from typing import Any

from harvest_cases import countable, git, openai_interactions

FIELDS = ["id", "category", "endpoint", "model", "input_tokens", "source", "request"]


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
    out: dict[str, dict[str, Any]] = {}
    for path, i, endpoint, req, resp in openai_interactions(repo):
        body, rbody = _json(req.get("body")), _json((resp.get("body") or {}).get("string"))
        found = countable(endpoint, body, rbody)
        if found is None:
            continue
        cat, model, n = found
        key = hashlib.sha256(json.dumps([model, endpoint, body], sort_keys=True).encode()).hexdigest()[:12]
        out.setdefault(key, {"id": key, "category": cat, "endpoint": endpoint, "model": model, "input_tokens": n,
                             "source": f"github.com/{name}@{commit[:12]}:{path} interaction {i}", "request": body})
    return list(out.values())


if __name__ == "__main__":
    for case in harvest(sys.argv[1], sys.argv[2]):
        print(json.dumps({k: case[k] for k in FIELDS}))
