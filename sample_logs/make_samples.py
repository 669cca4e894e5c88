"""Generate the sample corpus in sample_logs/ (and bench corpora at any size).

    python sample_logs/make_samples.py                  # the committed sample corpus
    python sample_logs/make_samples.py --calls 200000 --out /tmp/bench --missing-usage 0.3

Deterministic (seeded). Shapes follow the real API bodies (openai-python `src/openai/types/`,
see tests/fixtures/README.md); token counts in "reported" usage are what tokentrail's own
counter gives for the same content, so estimated and reported calls agree.
The keys below are fakes generated from the seed: they look like OpenAI keys so that
redaction is exercised, but they are not keys to anything.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.formats.openai_bodies import request_endpoint
from ingest.tokens import TokenCounter, count_request_input, encoding_for_model

START = datetime(2025, 3, 1, tzinfo=UTC)
DAYS = 28
SPIKE_DAY = 22  # 2025-03-23: the counselor key's usage triples (a planted anomaly)
_WORD_TEXT = """
the application essay deadline scholarship financial aid transcript recommendation letter campus
visit interview major minor research internship volunteer leadership community service
extracurricular club portfolio statement purpose goals challenge growth identity background family
summer program test score reading writing revision draft feedback paragraph thesis structure voice
story example detail
"""
WORDS = tuple(_WORD_TEXT.split())


def fake_key(seed: str, prefix: str = "sk-proj-") -> str:
    rnd = random.Random(seed)
    return prefix + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(44)) + seed[-4:].upper()


KEYS = {
    "essay": fake_key("essayFZND"),
    "counselor": fake_key("counsel9QX2"),
    "search": fake_key("searchK7LM", "sk-svcacct-"),
    "ops": fake_key("opsops4R2D"),
    "legacy": fake_key("legacyW0W0", "sk-"),
}


@dataclass(frozen=True)
class Feature:
    name: str
    route: str
    endpoint: str
    model: str
    response_model: str
    key: str
    system: str | None
    weight: float
    ips: tuple[str, ...]


FEATURES = (
    Feature("essay-review", "/essays/review", "chat.completions", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "essay",
            "You are an essay reviewer for college applications. Give specific, kind, actionable feedback on structure, "
            "voice and detail. Never rewrite the essay for the student.", 0.34, ("203.0.113.10", "203.0.113.11")),
    Feature("counselor-chat", "/counselor/chat", "chat.completions", "gpt-4o", "gpt-4o-2024-08-06", "counselor",
            "You are an admissions counselor. Answer questions about deadlines, financial aid and campus life. "
            "Be concise and cite the college's own pages when you can.", 0.26, ("2001:db8:10::5", "2001:db8:10::6")),
    Feature("semantic-search", "/search/query", "embeddings", "text-embedding-3-small", "text-embedding-3-small", "search",
            None, 0.22, ("10.0.4.20",)),
    Feature("daily-summary", "/reports/daily", "responses", "o4-mini", "o4-mini-2025-04-16", "ops",
            "Summarize yesterday's student questions into five themes with counts. Plain text, no tables.", 0.12,
            ("10.0.9.3",)),
    Feature("legacy-autocomplete", "/legacy/complete", "completions", "gpt-3.5-turbo-instruct",
            "gpt-3.5-turbo-instruct:20230824-v2", "legacy", None, 0.06, ("198.51.100.7",)),
)


class Gen:
    def __init__(self, seed: int, missing_usage: float) -> None:
        self.rnd = random.Random(seed)
        self.missing_usage = missing_usage
        self.counter = TokenCounter()
        self.seq = 0
        self.conversations: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.lacks_usage: dict[tuple[str, str], bool] = {}

    def text(self, lo: int, hi: int) -> str:
        return " ".join(self.rnd.choice(WORDS) for _ in range(self.rnd.randint(lo, hi))).capitalize() + "."

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return prefix + hashlib.sha1(f"{prefix}{self.seq}".encode()).hexdigest()[:24]

    def out_tokens(self, model: str, text: str) -> int:
        enc, _ = encoding_for_model(model)
        return self.counter.count_texts(enc, [text])[0] if text else 0

    # -- request/response bodies ------------------------------------------------------------
    def chat(self, f: Feature, user: str, turns: int) -> dict[str, Any]:
        """Chats re-send their history each turn, as real apps do: half the calls continue a conversation."""
        key = (f.name, user)
        previous = self.conversations.get(key)
        if previous is not None and len(previous) < 12 and self.rnd.random() < 0.5:
            msgs = previous + [{"role": "assistant", "content": self.text(10, 40)}]
        else:
            msgs = [{"role": "system", "content": f.system}]
            for _ in range(turns - 1):
                msgs += [{"role": "user", "content": self.text(8, 30)}, {"role": "assistant", "content": self.text(10, 40)}]
        msgs.append({"role": "user", "content": self.text(10, 90)})
        self.conversations[key] = msgs
        return {"model": f.model, "messages": list(msgs), "user": user, "temperature": 0.3}

    def request(self, f: Feature, user: str) -> dict[str, Any]:
        if f.endpoint == "chat.completions":
            return self.chat(f, user, self.rnd.choice((1, 1, 2, 3, 5)))
        if f.endpoint == "embeddings":
            n = self.rnd.choice((1, 1, 4))
            inp: Any = self.text(5, 30) if n == 1 else [self.text(5, 30) for _ in range(n)]
            return {"model": f.model, "input": inp, "encoding_format": "base64", "user": user}
        if f.endpoint == "responses":
            return {"model": f.model, "instructions": f.system, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": self.text(40, 200)}]}],
                "reasoning": {"effort": "low"}, "safety_identifier": user}
        return {"model": f.model, "prompt": self.text(5, 40), "max_tokens": 32, "user": user}

    def usage_for(self, f: Feature, req: dict[str, Any], out_text: str) -> dict[str, Any]:
        n_in, _ = count_request_input(req, f.model, request_endpoint(req), self.counter)
        n_out = self.out_tokens(f.model, out_text)
        if f.endpoint == "responses":
            reasoning = self.rnd.choice((0, 64, 128, 192, 448))
            return {"input_tokens": n_in, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": n_out + reasoning, "output_tokens_details": {"reasoning_tokens": reasoning},
                    "total_tokens": n_in + n_out + reasoning}
        if f.endpoint == "embeddings":
            return {"prompt_tokens": n_in, "total_tokens": n_in}
        cached = (n_in // 128) * 128 if n_in >= 1024 and self.rnd.random() < 0.5 else 0
        return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def response(self, f: Feature, req: dict[str, Any], created: int) -> dict[str, Any]:
        out = self.text(15, 110)
        usage = self.usage_for(f, req, out if f.endpoint != "embeddings" else "")
        if f.endpoint == "chat.completions":
            return {"id": self.next_id("chatcmpl-"), "object": "chat.completion", "created": created,
                    "model": f.response_model, "choices": [{"index": 0, "message": {
                        "role": "assistant", "content": out, "refusal": None, "annotations": []},
                        "logprobs": None, "finish_reason": "stop"}],
                    "usage": usage, "service_tier": "default", "system_fingerprint": "fp_" + self.next_id("")[:10]}
        if f.endpoint == "embeddings":
            n = len(req["input"]) if isinstance(req["input"], list) else 1
            return {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": "AAAAAAAA" * 4}
                                               for i in range(n)], "model": f.response_model, "usage": usage}
        if f.endpoint == "responses":
            return {"id": self.next_id("resp_"), "object": "response", "created_at": created, "status": "completed",
                    "model": f.response_model, "output": [
                        {"id": self.next_id("rs_"), "type": "reasoning", "summary": []},
                        {"id": self.next_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                         "content": [{"type": "output_text", "text": out, "annotations": []}]}],
                    "usage": usage, "service_tier": "default", "user": None}
        return {"id": self.next_id("cmpl-"), "object": "text_completion", "created": created, "model": f.response_model,
                "choices": [{"text": out, "index": 0, "logprobs": None, "finish_reason": "length"}], "usage": usage}

    def stream(self, f: Feature, req: dict[str, Any], created: int, with_usage: bool, cut: bool) -> list[dict[str, Any]]:
        out = self.text(15, 110)
        cid = self.next_id("chatcmpl-")
        words = out.split(" ")
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": f.response_model,
                "service_tier": "default", "system_fingerprint": "fp_2b7d3c1a9e"}
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                   "usage": None}]
        step = 12  # real streams send a token or two per chunk; fewer, larger chunks keep the corpus small
        for i in range(0, len(words), step):
            piece = " ".join(words[i : i + step])
            chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece if i == 0 else " " + piece},
                                                "finish_reason": None}], "usage": None, "obfuscation": "x9"})
        if cut:
            return chunks[: max(2, len(chunks) // 2)]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
        if with_usage:
            chunks.append({**base, "choices": [], "usage": self.usage_for(f, req, out)})
        return chunks

    # -- one log line -----------------------------------------------------------------------
    def app_line(self, ts: datetime, f: Feature) -> dict[str, Any]:
        user = f"stu-{self.rnd.randint(1, 400):04d}" if f.key != "ops" else "ops-cron"
        req = self.request(f, user)
        created = int(ts.timestamp()) - 1
        line: dict[str, Any] = {
            "timestamp": ts.isoformat().replace("+00:00", "Z"), "level": "info", "logger": "openai.client",
            "event": "openai_call", "route": f.route, "client_ip": self.rnd.choice(f.ips),
            "latency_ms": round(self.rnd.uniform(180, 4200), 1),
            "headers": {"authorization": f"Bearer {KEYS[f.key]}", "x-feature": f.name,
                        "openai-organization": "org-collegeapp", "openai-project": "proj_admissions"},
            "request": req,
        }
        roll = self.rnd.random()
        if f.key == "essay" and self.rnd.random() < 0.03:
            line["client_ip"] = "198.51.100.99"  # outside the essay key's allowlist
        if roll < 0.025:
            status, code, typ = self.rnd.choice(((429, "rate_limit_exceeded", "requests"),
                                                 (401, "invalid_api_key", "invalid_request_error")))
            line["status_code"] = status
            line["response"] = {"error": {"message": f"Error {code}", "type": typ, "param": None, "code": code}}
            return line
        line["status_code"] = 200
        line["headers"]["x-request-id"] = self.next_id("req_")
        # Missing usage is a property of a code path, so of a whole conversation: every turn lacks it.
        conv_key = (f.name, user)
        if conv_key not in self.lacks_usage:
            self.lacks_usage[conv_key] = self.rnd.random() < self.missing_usage
        missing = self.lacks_usage[conv_key]
        if f.endpoint == "chat.completions" and (missing or self.rnd.random() < 0.35):
            req["stream"] = True
            if not missing:
                req["stream_options"] = {"include_usage": True}
            cut = missing and self.rnd.random() < 0.1
            line["response"] = self.stream(f, req, created, not missing, cut)
            if cut:
                line["error"] = "client disconnected"
        elif missing:
            line["response"] = None  # request-only log (a proxy that logs only requests): output unknown
            del line["status_code"]
        else:
            line["response"] = self.response(f, req, created)
        return line


def daily_volume(day: int, base: int) -> int:
    weekday = (START + timedelta(days=day)).weekday()
    return int(base * (0.45 if weekday >= 5 else 1.0))


def generate_app_lines(g: Gen, calls: int, days: int = DAYS, spike: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    per_day = max(1, calls // days)
    weights = [f.weight for f in FEATURES]
    for day in range(days):
        n = daily_volume(day, per_day)
        extra = [FEATURES[1]] * (n // 2) if spike and day == SPIKE_DAY else []
        picks = g.rnd.choices(FEATURES, weights, k=n) + extra
        stamps = sorted(g.rnd.uniform(6 * 3600, 23 * 3600) for _ in picks)
        for f, sec in zip(picks, stamps, strict=True):
            ts = START + timedelta(days=day, seconds=sec)
            yield day, g.app_line(ts, f)
            if g.rnd.random() < 0.02:
                yield day, {"timestamp": ts.isoformat().replace("+00:00", "Z"), "level": "info",
                            "event": "http_request", "path": "/healthz", "status": 200}


MALFORMED = [
    b'{"timestamp":"2025-03-05T10:00:00Z","route":"/essays/review","request":{"model":"gpt-4o-mini","messa',
    b'{"timestamp":"2025-03-05T10:00:01Z","response":{"id":"chatcmpl-bad1","object":"chat.completion",'
    b'"created":1741168801,"model":"gpt-4o-mini","usage":{"prompt_tokens":"lots","completion_tokens":3}}}',
    b"\x00\x01\x02 binary noise from a crashed writer \xff\xfe",
]


def write_batch(g: Gen, out: Path) -> None:
    f = FEATURES[0]
    created = int((START + timedelta(days=9, hours=3)).timestamp())
    inputs, outputs = [], []
    for i in range(60):
        req = g.chat(f, f"batch-eval-{i % 7}", 1)
        req["model"] = "gpt-4o-mini"
        cid = f"eval-{i:04d}"
        inputs.append({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": req})
        if i % 20 == 7:
            outputs.append({"id": g.next_id("batch_req_"), "custom_id": cid, "response": None,
                            "error": {"code": "invalid_request", "message": "Invalid value for 'temperature'."}})
            continue
        body = g.response(f, req, created + i)
        outputs.append({"id": g.next_id("batch_req_"), "custom_id": cid, "response": {
            "status_code": 200, "request_id": hashlib.md5(cid.encode()).hexdigest(), "body": body}, "error": None})
    g.rnd.shuffle(outputs)  # output order differs from input order
    (out / "batch").mkdir(parents=True, exist_ok=True)
    (out / "batch" / "batch_abc123_input.jsonl").write_text("".join(json.dumps(x) + "\n" for x in inputs))
    (out / "batch" / "batch_abc123_output.jsonl").write_text("".join(json.dumps(x) + "\n" for x in outputs))


def write_corpus(out: Path, calls: int, seed: int, missing_usage: float, split_days: bool = True,
                 compress_first: bool = True, malformed: bool = True) -> int:
    g = Gen(seed, missing_usage)
    app = out / "app"
    app.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}  # one open file per day; closed below
    n = 0
    for day, line in generate_app_lines(g, calls):
        name = f"api-calls-{(START + timedelta(days=day)):%Y-%m-%d}.jsonl" if split_days else "api-calls.jsonl"
        if name not in handles:
            handles[name] = open(app / name, "wb")  # noqa: SIM115 - closed after the loop
            if malformed and day == 4:
                handles[name].write(b"\n".join(MALFORMED) + b"\n")
        handles[name].write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        n += 1
    for h in handles.values():
        h.close()
    if compress_first and split_days:
        first = app / f"api-calls-{START:%Y-%m-%d}.jsonl"
        with open(first, "rb") as src, open(str(first) + ".gz", "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as dst:
            dst.write(src.read())
        first.unlink()
    write_batch(g, out)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--calls", type=int, default=3300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--missing-usage", type=float, default=0.12, help="share of calls logged without usage")
    ap.add_argument("--one-file", action="store_true", help="write one app log instead of one per day")
    args = ap.parse_args()
    n = write_corpus(args.out, args.calls, args.seed, args.missing_usage, split_days=not args.one_file,
                     compress_first=not args.one_file)
    print(f"wrote {n} app log lines and a batch file pair under {args.out}")


if __name__ == "__main__":
    main()
