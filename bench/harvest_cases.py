"""Gather API-reported token counts from recorded HTTP cassettes in a public repository.

Run by hand when refreshing tests/accuracy/cases.jsonl; the suite itself never touches the
network or the mirror. Each case keeps the request body exactly as recorded, the count the
API reported, and its source (repository, commit, file, interaction index).

    python bench/harvest_cases.py /work/.mirror/pydantic+pydantic-ai/repo pydantic/pydantic-ai > cases.part.jsonl
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ingest.tokens.models import encoding_for_model  # noqa: E402
from ingest.tokens.vocab import get_encoding  # noqa: E402

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
MAX_BODY = 30_000
CASSETTE_DIRS = ("cassettes/", "_vcr/")  # pytest-recording / vcrpy; posit-dev/chatlas keeps tests/_vcr/
_UNCOUNTABLE = ("input_file", "file", "input_audio", "audio_url", "document")


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=True).stdout


def category(endpoint: str, model: str, req: dict[str, Any]) -> str | None:
    text = json.dumps(req)
    if any(f'"type": "{t}"' in text for t in _UNCOUNTABLE):
        return None
    if '"image_url"' in text or '"input_image"' in text:
        if "data:image" not in text:
            return None  # a remote image's size is not in the request
        return "images"
    if endpoint == "responses":
        inp = req.get("input")
        kinds = {i.get("type") or "message" for i in inp if isinstance(i, dict)} if isinstance(inp, list) else set()
        tools = {t.get("type") for t in req.get("tools") or () if isinstance(t, dict)}
        countable = not (kinds - {"message", "function_call", "function_call_output"} or tools - {"function"}
                         or req.get("previous_response_id") or req.get("conversation")
                         or req.get("prompt"))  # a stored prompt template is not in the request
        if not countable:
            return "responses_builtin"  # web search results, MCP, stored turns, … are not in the request
        fmt = (req.get("text") or {}).get("format")
        return "structured" if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else "responses"
    msgs = req.get("messages") or []
    if any(isinstance(m, dict) and (m.get("tool_calls") or m.get("role") in ("tool", "function")
                                    or m.get("function_call")) for m in msgs):
        return "tool_history"
    rf = req.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        return "structured"
    if req.get("tools") or req.get("functions"):
        return "tools"
    if model.startswith(REASONING_PREFIXES):
        return "reasoning"
    return "plain"


def openai_interactions(repo: str) -> Iterator[tuple[str, int, str, dict[str, Any], dict[str, Any]]]:
    """(cassette path, index, endpoint, request, response) of every successful Chat Completions or Responses
    call recorded in a repository's VCR cassettes (its HEAD)."""
    paths = [p for p in git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
             if any(d in p for d in CASSETTE_DIRS) and p.endswith(".yaml")]
    for path in paths:
        try:
            text = git(repo, "show", f"HEAD:{path}")
        except subprocess.CalledProcessError:
            continue
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
            if uri.startswith("https://api.openai.com/v1/") and endpoint is not None \
                    and (resp.get("status") or {}).get("code") == 200:
                yield path, i, endpoint, req, resp


def _message_texts(body: dict[str, Any]) -> list[str]:
    """The text of every message (Chat `messages`, Responses `input`): strings and text parts only."""
    items = body.get("messages") if "messages" in body else body.get("input")
    if isinstance(items, str):
        return [items]
    texts: list[str] = []
    for item in items if isinstance(items, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return texts


def below_its_own_text(model: str, body: dict[str, Any], n: int) -> bool:
    """Whether `n` is fewer tokens than the request's message texts alone. No rendering reads a text in fewer
    tokens than the text itself, so such a count was not made for this body: the cassette's request was
    rewritten after the call was recorded. (Not applied to `responses_builtin` cases: server-side
    compaction may drop text the request holds.)"""
    encoding = get_encoding(encoding_for_model(model)[0])
    return n < sum(len(encoding.encode(t, disallowed_special=())) for t in _message_texts(body))


def countable(endpoint: str, body: Any, rbody: Any) -> tuple[str, str, int] | None:
    """(category, model, API-reported input tokens) of a non-streamed call worth a case; else None."""
    if not isinstance(body, dict) or not isinstance(rbody, dict) or body.get("stream"):
        return None
    usage = rbody.get("usage") or {}
    n = usage.get("prompt_tokens") if endpoint == "chat.completions" else usage.get("input_tokens")
    model = str(body.get("model", ""))
    cat = category(endpoint, model, body)
    if not isinstance(n, int) or cat is None or len(json.dumps(body)) > MAX_BODY:
        return None
    if n <= 0:  # no request is read as zero tokens: a placeholder usage in a hand-written cassette
        return None
    if cat != "responses_builtin" and below_its_own_text(model, body, n):
        return None
    return cat, model, n


def harvest(repo: str, name: str) -> list[dict[str, Any]]:
    commit = git(repo, "rev-parse", "HEAD").strip()
    out = []
    for path, i, endpoint, req, resp in openai_interactions(repo):
        body, rbody = req.get("parsed_body"), resp.get("parsed_body")
        found = countable(endpoint, body, rbody)
        if found is None:
            continue
        cat, model, n = found
        out.append({"id": f"{name}:{path.rsplit('/', 1)[-1]}#{i}", "category": cat, "endpoint": endpoint,
                    "model": model, "served_model": rbody.get("model"), "request": body, "input_tokens": n,
                    "source": f"github.com/{name}@{commit[:12]}:{path} interaction {i}"})
    return out


if __name__ == "__main__":
    for case in harvest(sys.argv[1], sys.argv[2]):
        print(json.dumps(case, sort_keys=True))
