"""LiteLLM proxy logs: the StandardLoggingPayload its loggers and callbacks write, and rows
exported from its LiteLLM_SpendLogs table (JSON lines or CSV).

Sources: BerriAI/litellm `litellm/types/utils.py` (StandardLoggingPayload), `schema.prisma`
(LiteLLM_SpendLogs), fixtures `tests/logging_callback_tests/gcs_pub_sub_body/*.json`.
Odd cases handled: times as float epochs or naive strings, `metadata` as a JSON string in
spend logs, `cache_hit` as the string "None", empty strings for null, `status: failure`.

LiteLLM's `user_api_key_hash` (SHA-256 of a virtual key) is an identity, but also the key to
LiteLLM's own tables: it is re-keyed through the warehouse HMAC, never stored as it is.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..errors import RecordError
from ..schema import Call
from ..sources import open_binary
from .base import FileParser, Format, ParseContext
from .calls import call_from_bodies
from .coerce import as_float, as_int, as_str, as_token_count, clean_model, merge_metadata, parse_ts
from .openai_bodies import Usage, usage_from_dict

CALL_TYPES = {
    "completion": "chat.completions", "acompletion": "chat.completions",
    "embedding": "embeddings", "aembedding": "embeddings",
    "text_completion": "completions", "atext_completion": "completions",
    "responses": "responses", "aresponses": "responses",
}


def _json_field(value: Any) -> Any:
    """Spend-log rows keep metadata, tags, messages and response as JSON strings."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return None
    return value


def _ts(value: Any, name: str) -> int | None:
    return parse_ts(value, name, unit="s" if isinstance(value, int | float) else None) if value not in (None, "") else None


class LiteLLMFormat(Format):
    name = "litellm"
    priority = 20
    description = "LiteLLM proxy: StandardLoggingPayload (JSON/file loggers, callbacks) and spend-log rows (JSON lines)"
    detection = "a JSON object with call_type and startTime, plus response_cost (payload) or spend (spend-log row)"

    def detect(self, record: Any) -> bool:
        return (isinstance(record, dict) and "call_type" in record and "startTime" in record
                and ("response_cost" in record or "spend" in record))

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        if not self.detect(record):
            return []
        return [litellm_call(record, ctx, self.name)]


def litellm_call(r: dict[str, Any], ctx: ParseContext, fmt: str) -> Call:
    spend_row = "spend" in r and "response_cost" not in r
    meta = _json_field(r.get("metadata")) or {}
    if not isinstance(meta, dict):
        meta = {}
    endpoint = CALL_TYPES.get(str(r.get("call_type", "")), str(r.get("call_type") or "") or None)
    response = _json_field(r.get("response"))
    if not isinstance(response, dict) or not response:
        response = None
    messages = _json_field(r.get("messages"))
    model = clean_model(r.get("model"))
    request = {"model": model, "messages": messages} if isinstance(messages, list) and messages else None
    if request is not None and endpoint == "embeddings":
        request = {"model": model, "input": messages}
    failed = str(r.get("status", "")).lower() == "failure"
    err = next((e for e in (r.get("error_information"), meta.get("error_information")) if isinstance(e, dict)), {})
    status = as_int(err.get("error_code"), "error_code") if str(err.get("error_code", "")).isdigit() else None
    usage = _usage(r, meta, response)
    call = call_from_bodies(
        ctx, fmt, request=request, response=response if not failed else None,
        ts=_ts(r.get("startTime"), "startTime"), endpoint=endpoint,
        status_code=status if failed else None, usage=usage,
        error_type=(as_str(err.get("error_class")) or as_str(err.get("error_code")) or "failure") if failed else None,
    )
    call.call_id = as_str(r.get("request_id")) or (response or {}).get("id") or as_str(r.get("id")) or call.call_id
    call.model = clean_model((response or {}).get("model")) or model
    call.model_requested = as_str(r.get("model_group")) or model
    start, end = _ts(r.get("startTime"), "startTime"), _ts(r.get("endTime"), "endTime")
    if start and end and end >= start:
        call.latency_ms = (end - start) / 1000
    elif r.get("request_duration_ms") not in (None, ""):
        call.latency_ms = as_float(r.get("request_duration_ms"), "request_duration_ms")
    call.user = as_str(r.get("end_user")) or as_str(meta.get("user_api_key_end_user_id")) or call.user
    call.client_ip = as_str(r.get("requester_ip_address")) or as_str(meta.get("requester_ip_address"))
    call.key_alias = as_str(meta.get("user_api_key_alias"))
    key_hash = as_str(r.get("api_key")) if spend_row else as_str(meta.get("user_api_key_hash"))
    if key_hash:
        call.api_key_fp = ctx.hasher.fingerprint("litellm:" + key_hash)
        call.api_key_id = "litellm:…" + key_hash[-4:]
    call.org_id = as_str(r.get("organization_id")) or as_str(meta.get("user_api_key_org_id"))
    call.stream = call.stream if call.stream is not None else (r.get("stream") if isinstance(r.get("stream"), bool) else None)
    merge_metadata(call, [(dst, meta.get(src)) for src, dst in (
        ("user_api_key_team_id", "team_id"), ("user_api_key_team_alias", "team_alias"),
        ("user_api_key_user_id", "litellm_user_id"), ("user_api_key_user_email", "user_email"),
        ("user_api_key_request_route", "litellm_route"))] + [("team_id", r.get("team_id"))])
    tags = _json_field(r.get("request_tags"))
    if isinstance(tags, list) and tags:
        merge_metadata(call, [("request_tags", ",".join(str(t) for t in tags))])
        merge_metadata(call, [(f"tag.{t.partition(':')[0]}", t.partition(":")[2]) for t in tags
                              if isinstance(t, str) and ":" in t], overwrite=False)
    spend_md = meta.get("spend_logs_metadata")
    if isinstance(spend_md, dict):
        merge_metadata(call, [(f"spend_logs_metadata.{k}", v) for k, v in spend_md.items()])
    cost = as_float(r.get("spend") if spend_row else r.get("response_cost"), "cost")
    hidden = r.get("hidden_params")
    headers = (hidden.get("additional_headers") or {}) if isinstance(hidden, dict) else {}
    merge_metadata(call, [("litellm_cost_usd", repr(cost) if cost is not None else None),
                          ("provider", r.get("custom_llm_provider"))]
                   + [(k.replace("_", "-"), v) for k, v in (headers.items() if isinstance(headers, dict) else ())
                      if k.startswith("x_ratelimit")])
    return call


def _usage(r: dict[str, Any], meta: dict[str, Any], response: dict[str, Any] | None) -> Usage | None:
    detailed = usage_from_dict((response or {}).get("usage")) or usage_from_dict(meta.get("usage_object"))
    prompt = r.get("prompt_tokens")
    completion = r.get("completion_tokens")
    if prompt in (None, "") and completion in (None, ""):
        return detailed
    u = Usage(input=as_token_count(prompt, "prompt_tokens"), output=as_token_count(completion, "completion_tokens"),
              total=as_token_count(r.get("total_tokens"), "total_tokens"))
    if detailed is not None:
        u.cached, u.reasoning = detailed.cached, detailed.reasoning
        u.audio_in, u.audio_out = detailed.audio_in, detailed.audio_out
    if u.input == 0 and u.output == 0 and str(r.get("status", "success")) == "success" and detailed is None \
            and (r.get("call_type") in ("acompletion", "completion")):
        return None  # LiteLLM writes 0/0 when it could not count (e.g. a stream it did not see finish): estimate
    return u


@dataclass(slots=True)
class CsvHeader:
    """The column names of the file's header row (None until it is read)."""

    columns: list[str] | None = None


class LiteLLMSpendCsvFormat(Format):
    """LiteLLM_SpendLogs exported as CSV (header row first)."""

    name = "litellm-spend-csv"
    kind = "text"
    priority = 70
    description = "LiteLLM spend-log rows exported as CSV"
    detection = "a CSV header line with request_id, call_type, spend and startTime"

    def detect(self, record: Any) -> bool:
        if not isinstance(record, bytes | str):
            return False
        text = record.decode(errors="replace") if isinstance(record, bytes) else record
        cols = {c.strip().strip('"') for c in text.split(",")}
        return {"request_id", "call_type", "spend", "startTime"} <= cols

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        return self.open_file(ctx).parse(record)

    def open_file(self, ctx: ParseContext, run_inputs: object | None = None) -> SpendCsvParser:
        return SpendCsvParser(self, ctx)


class SpendCsvParser(FileParser):
    def __init__(self, fmt: Format, ctx: ParseContext) -> None:
        super().__init__(fmt, ctx)
        self.state = CsvHeader()

    def prepare(self, path: Path) -> None:
        with open_binary(path) as fh:
            first = fh.readline(1 << 20)  # a header line; never a whole overlong line
        if self.format.detect(first):
            self.state.columns = next(csv.reader(io.StringIO(first.decode("utf-8", "replace"))))

    def parse(self, record: Any) -> list[Call]:
        text = record.decode("utf-8", "replace") if isinstance(record, bytes) else str(record)
        row = next(csv.reader(io.StringIO(text)))
        header = self.state.columns
        if header is None or self.format.detect(text):
            self.state.columns = row
            return []
        if len(row) != len(header):
            raise RecordError(f"CSV row has {len(row)} fields, the header has {len(header)}")
        return [litellm_call(dict(zip(header, row, strict=True)), self.ctx, self.format.name)]
