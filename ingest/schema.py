"""The one definition of a normalized call: its Arrow schema and its Python record type.

Every parser produces `Call` records; the writer turns a list of them into an Arrow table
with `CALL_SCHEMA`. Column names are a contract with users' SQL: add, never rename.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .keys import scrub_column, scrub_metadata_column

if TYPE_CHECKING:
    from .tokens.request import EstimateRequest

TOKEN_SOURCES = ("reported", "estimated", "mixed")

_STR = pa.string()
_I64 = pa.int64()

CALL_SCHEMA = pa.schema(
    [
        pa.field("call_id", _STR, nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source_file", _STR, nullable=False),
        pa.field("source_offset", _I64, nullable=False),
        pa.field("source_format", _STR, nullable=False),
        pa.field("endpoint", _STR),
        pa.field("model_requested", _STR),
        pa.field("model", _STR),
        pa.field("api_key_id", _STR),
        pa.field("api_key_fp", _STR),
        pa.field("key_alias", _STR),
        pa.field("org_id", _STR),
        pa.field("project_id", _STR),
        pa.field("user", _STR),
        pa.field("route", _STR),
        pa.field("client_ip", _STR),
        pa.field("metadata", pa.map_(_STR, _STR)),
        pa.field("status_code", pa.int32()),
        pa.field("error_type", _STR),
        pa.field("latency_ms", pa.float64()),
        pa.field("stream", pa.bool_()),
        pa.field("batch", pa.bool_()),
        pa.field("service_tier", _STR),
        pa.field("input_tokens", _I64),
        pa.field("cached_input_tokens", _I64),
        pa.field("output_tokens", _I64),
        pa.field("reasoning_tokens", _I64),
        pa.field("audio_input_tokens", _I64),
        pa.field("audio_output_tokens", _I64),
        pa.field("total_tokens", _I64),
        pa.field("token_source", _STR),
        pa.field("system_prompt_fp", _STR),
        pa.field("system_prompt_head", _STR),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        # Additions beyond ARCHITECTURE.md's list (allowed: "add more as needed").
        pa.field("request_id", _STR),  # x-request-id / batch request_id, distinct from call_id
        pa.field("estimate_flags", _STR),  # comma-separated reasons an estimate is approximate
        # Built-in tools the response billed per call (ingest.tool_fees); NULL: none.
        pa.field("web_search_calls", _I64),
        pa.field("file_search_calls", _I64),
        pa.field("code_interpreter_sessions", _I64),  # distinct containers
    ]
)

CALL_COLUMNS: tuple[str, ...] = tuple(CALL_SCHEMA.names)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", _STR, nullable=False),
        pa.field("source_offset", _I64, nullable=False),
        pa.field("length", _I64, nullable=False),
        pa.field("reason", _STR, nullable=False),
        pa.field("raw", pa.binary()),  # first 4 KiB, API keys scrubbed
        pa.field("source_format", _STR),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass(slots=True)
class Call:
    """One billed (or rejected) API call, normalized. `ts` is microseconds since the epoch, UTC."""

    call_id: str
    ts: int
    source_file: str = ""
    source_offset: int = 0
    source_format: str = ""
    endpoint: str | None = None
    model_requested: str | None = None
    model: str | None = None
    api_key_id: str | None = None
    api_key_fp: str | None = None
    key_alias: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    user: str | None = None
    route: str | None = None
    client_ip: str | None = None
    metadata: dict[str, str] | None = None
    status_code: int | None = None
    error_type: str | None = None
    latency_ms: float | None = None
    stream: bool | None = None
    batch: bool | None = None
    service_tier: str | None = None
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_input_tokens: int | None = None
    audio_output_tokens: int | None = None
    total_tokens: int | None = None
    token_source: str | None = None
    system_prompt_fp: str | None = None
    system_prompt_head: str | None = None
    ingested_at: int = 0
    request_id: str | None = None
    estimate_flags: str | None = None
    web_search_calls: int | None = None
    file_search_calls: int | None = None
    code_interpreter_sessions: int | None = None
    # Not stored: what to count when the log lacks usage (the parser's hand-off to ingest.tokens).
    estimate_request: EstimateRequest | None = field(default=None, repr=False, compare=False)


_NOT_STORED = {"estimate_request"}
_RECORD_FIELDS = tuple(f.name for f in fields(Call) if f.name not in _NOT_STORED)
assert _RECORD_FIELDS == CALL_COLUMNS, "Call and CALL_SCHEMA must list the same columns in the same order"


_ROW = operator.attrgetter(*CALL_COLUMNS)
_SAFE_BY_CONSTRUCTION = frozenset({"api_key_fp"})  # an HMAC hex digest, never text from the log


RESERVED_METADATA = "tokentrail."  # names only tokentrail wrote (older rows' tool counts): never taken from a log


def _without_reserved(column: Sequence[dict[str, str] | None]) -> Sequence[dict[str, str] | None]:
    """Metadata without names in tokentrail's own namespace: pricing reads older rows' tool-call counts
    there, so a log must not be able to put them in (a request's `metadata` is copied into the call's)."""
    if not any(k.startswith(RESERVED_METADATA) for d in column if d for k in d):
        return column
    return [({k: v for k, v in d.items() if not k.startswith(RESERVED_METADATA)} or None) if d else d for d in column]


def calls_to_table(calls: list[Call]) -> pa.Table:
    """Build the Arrow table column by column: one C-level getter per row, one transpose.

    This is the one door into storage, so every string column and every metadata name and value
    is scrubbed of API keys and credentials here (a column without a marker costs one scan).
    """
    columns = list(zip(*map(_ROW, calls), strict=True)) if calls else [()] * len(CALL_COLUMNS)
    arrays = []
    for f, column in zip(CALL_SCHEMA, columns, strict=True):
        values: Sequence[Any] = column
        if f.name == "metadata":
            values = scrub_metadata_column(_without_reserved(column))
        elif f.type == _STR and f.name not in _SAFE_BY_CONSTRUCTION:
            values = scrub_column(column)
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=CALL_SCHEMA)
