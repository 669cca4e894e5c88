"""The memoized batch counter, and the two entry points the pipeline and the CLI use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..schema import Call
from .models import encoding_for_model, is_reasoning_model
from .render import Plan, plan_input, plan_output_texts
from .request import EstimateRequest, request_endpoint
from .vocab import get_encoding


class TokenCounter:
    """Counts plans in batches; a memo keyed by the text itself skips repeated texts.

    The memo is one plain dict per encoding, text -> count. A `str` caches its own hash, and a
    lookup is a hash plus (on a hit) one compare, so a hit costs a small fraction of encoding the
    text; the earlier memo hashed every text with blake2b and kept LRU order in an OrderedDict,
    which cost about as much as the encoding it saved. The memo is bounded by the characters it
    holds (`memo_chars`): past the bound it is cleared and refilled (the texts that repeat in a log,
    system prompts and tool definitions, are back after one miss each), never grown.
    """

    def __init__(self, memo_size: int = 100_000, memo_chars: int = 8_000_000) -> None:
        self.memos: dict[str, dict[str, int]] = {}
        self.memo_size = memo_size  # most distinct texts held
        # Most characters held: 8M characters are 8 MB of ASCII (32 MB at worst, 4-byte characters),
        # room for thousands of distinct system prompts, within the peak-RSS budget of issue 17.
        self.memo_chars = memo_chars
        self._held = 0
        self.hits = 0
        self.misses = 0
        self.encoded_chars = 0

    def _memo(self, encoding: str) -> dict[str, int]:
        memo = self.memos.get(encoding)
        if memo is None:
            memo = self.memos[encoding] = {}
        return memo

    def count_texts(self, encoding: str, texts: list[str]) -> list[int]:
        """Token counts of `texts`; each distinct text is encoded once while it stays in the memo.

        Encoded one by one: tiktoken's `encode_ordinary_batch` hands every text to a thread pool,
        which costs more than encoding the short texts logs are made of.
        """
        memo = self._memo(encoding)
        get = memo.get
        out = [0] * len(texts)
        encode = None
        misses = 0
        for i, t in enumerate(texts):
            n = get(t)
            if n is None:
                if encode is None:
                    encode = get_encoding(encoding).encode_ordinary
                n = len(encode(t))
                misses += 1
                self.encoded_chars += len(t)
                if self._held + len(t) > self.memo_chars or len(memo) >= self.memo_size:
                    for m in self.memos.values():
                        m.clear()
                    self._held = 0
                memo[t] = n
                self._held += len(t)
            out[i] = n
        self.misses += misses
        self.hits += len(texts) - misses
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
    model = model or request.get("model")
    enc_name, flags = encoding_for_model(model)
    plan = plan_input(endpoint or request_endpoint(request), request, model, enc_name)
    (n,) = (counter or _default_counter).count_plans(enc_name, [plan])
    return n, sorted(set(flags + plan.flags))


def count_output(texts: list[str], model: str | None, endpoint: str = "chat.completions",
                 counter: TokenCounter | None = None, tool_calls: int = 0) -> tuple[int, list[str]]:
    """Estimated output tokens of generated texts (see `render.response_output_texts`, `response_tool_calls`)."""
    enc_name, flags = encoding_for_model(model)
    plan = plan_output_texts(texts, endpoint, model, tool_calls)
    (n,) = (counter or _default_counter).count_plans(enc_name, [plan])
    return n, sorted(set(flags + plan.flags))


def fill_estimates(calls: Iterable[Call], counter: TokenCounter | None = None) -> int:
    """Fill missing token counts of calls that carry an `estimate_request` hand-off; returns how many.

    An estimated output of a reasoning model is flagged `reasoning_tokens_not_counted`: the
    hidden reasoning it was billed for is in no log line.
    """

    counter = counter or _default_counter
    groups: dict[str, list[tuple[Call, Plan, Plan | None, list[str]]]] = {}
    for call in calls:
        est = call.estimate_request
        if not isinstance(est, EstimateRequest):
            continue
        enc_name, flags = encoding_for_model(est.model)
        inp = plan_input(est.endpoint, est.request, est.model, enc_name) if call.input_tokens is None else None
        out: Plan | None = None
        if call.output_tokens is None and est.output_texts is not None:
            out = plan_output_texts(est.output_texts, est.endpoint, est.model, getattr(est, "output_tool_calls", 0))
        elif call.output_tokens is None and is_reasoning_model(est.model):
            flags = flags + ["reasoning_tokens_not_counted"]
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
            call.estimate_request = None
            n += 1
    return n
