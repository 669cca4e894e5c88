"""OpenAI Batch API files: output lines (billed calls) and input lines (requests to join).

Output line: `{id: "batch_req_…", custom_id, response: {status_code, request_id, body}, error}`
(openai-python `batch_create_params.py`, API reference "The request output object").
Output order differs from input order, so requests are joined on `custom_id` when the
input file is among the files of the same run (`scan_run` indexes them before any file is
read). Only `body.created` dates a call; an embeddings body has none, so the file's mtime
stands in and is flagged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..errors import RecordError
from ..schema import Call
from ..sources import LineReader, open_binary, read_head
from .base import FileParser, Format, ParseContext
from .calls import call_from_bodies
from .coerce import as_int, as_str, decode_record, merge_metadata
from .openai_bodies import endpoint_from_path

_CREATED = re.compile(rb'"created":\s*(\d{9,11})')


def is_batch_input(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and "custom_id" in record
        and isinstance(record.get("body"), dict)
        and isinstance(record.get("url"), str)
        and "response" not in record
    )


@dataclass(slots=True)
class BatchInputs:
    """custom_id -> {url, body} of every Batch API input line among a run's files."""

    by_custom_id: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class BatchFileState:
    """The date of the previous line: a failed request has no body, so no date of its own."""

    last_ts: int | None = None


def index_batch_inputs(paths: Sequence[Path]) -> BatchInputs:
    """Read every Batch API input file among `paths` whole (bounded lines; damage ends a file)."""
    index = BatchInputs()
    for path in paths:
        first = read_head(path, 4096).split(b"\n", 1)[0]  # b"" for an unreadable file: not JSON
        try:
            if not is_batch_input(decode_record(first)):
                continue
        except msgspec.DecodeError:
            continue
        try:
            with open_binary(path) as fh:
                for line in LineReader(fh, 0, final=True):
                    if line.data is None:
                        continue
                    try:
                        rec = decode_record(line.data)
                    except msgspec.DecodeError:
                        continue
                    if is_batch_input(rec):
                        index.by_custom_id[str(rec["custom_id"])] = {"url": rec.get("url"), "body": rec.get("body")}
        except OSError:
            continue  # reported when the file itself is ingested
    return index


class OpenAIBatchOutputFormat(Format):
    name = "openai-batch"
    priority = 50
    description = "OpenAI Batch API output files (and input files, joined on custom_id)"
    detection = ("a JSON object with custom_id and response{status_code, body} or error (output), "
                 "or custom_id, method, url, body (input)")

    def detect(self, record: Any) -> bool:
        if not isinstance(record, dict) or "custom_id" not in record:
            return False
        if is_batch_input(record):
            return True
        return "response" in record and ("error" in record or str(record.get("id", "")).startswith("batch_req"))

    def scan_run(self, paths: Sequence[Path]) -> BatchInputs:
        return index_batch_inputs(paths)

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        return self.open_file(ctx).parse(record)

    def open_file(self, ctx: ParseContext, run_inputs: object | None = None) -> BatchOutputParser:
        return BatchOutputParser(self, ctx, run_inputs if isinstance(run_inputs, BatchInputs) else BatchInputs())


class BatchOutputParser(FileParser):
    def __init__(self, fmt: Format, ctx: ParseContext, inputs: BatchInputs) -> None:
        super().__init__(fmt, ctx)
        self.inputs = inputs
        self.state = BatchFileState()

    def prepare(self, path: Path) -> None:
        """Date body-less (failed) lines by the earliest `created` in the file's first MiB, not by mtime."""
        with open_binary(path) as fh:
            head = fh.read(1 << 20)
        stamps = [int(m) for m in _CREATED.findall(head)]
        if stamps:
            self.state.last_ts = min(stamps) * 1_000_000

    def parse(self, record: Any) -> list[Call]:
        if is_batch_input(record) or not self.format.detect(record):
            return []  # input lines are not calls (`scan_run` indexed them for the join)
        ctx = self.ctx
        custom_id = as_str(record.get("custom_id"))
        joined = self.inputs.by_custom_id.get(custom_id or "")
        request = joined.get("body") if joined is not None else None
        endpoint = endpoint_from_path(joined.get("url")) if joined is not None else None
        resp = record.get("response")
        err = record.get("error")
        if resp is None and not isinstance(err, dict):
            raise RecordError("batch output line has neither response nor error")
        if resp is not None and not isinstance(resp, dict):
            raise RecordError("batch output `response` is not an object")
        status = as_int(resp.get("status_code"), "response.status_code") if resp else None
        body = resp.get("body") if resp else None
        if isinstance(body, str):  # some exporters leave the body as a JSON string
            try:
                body = msgspec.json.decode(body)
            except (msgspec.DecodeError, RecursionError):
                raise RecordError("batch output response.body is a string that is not JSON") from None
        if resp is None:
            assert isinstance(err, dict)
            status = status or 500
            body = {"error": {"message": as_str(err.get("message")) or "", "type": as_str(err.get("code")) or "batch_error"}}
        # A failed request has no body and so no date: it takes the previous line's (same batch).
        saved_fallback = ctx.fallback_ts
        last_ts = self.state.last_ts
        ctx.fallback_ts = last_ts if last_ts is not None else ctx.fallback_ts
        try:
            call = call_from_bodies(
                ctx, self.format.name, request=request, response=body, status_code=status, endpoint=endpoint
            )
        finally:
            ctx.fallback_ts = saved_fallback
        if call.estimate_flags and "ts_from_file_mtime" in call.estimate_flags and last_ts is not None:
            call.estimate_flags = call.estimate_flags.replace("ts_from_file_mtime", "ts_from_previous_line")
        else:
            self.state.last_ts = call.ts
        call.batch = True
        call.request_id = as_str(resp.get("request_id")) if resp else None
        if call.call_id.startswith("tt-") and record.get("id"):
            call.call_id = str(record["id"])
        merge_metadata(call, [("batch_custom_id", custom_id)])
        if request is None and call.estimate_request is not None:
            call.estimate_flags = ",".join(filter(None, [call.estimate_flags, "batch_input_not_joined"]))
        return [call]
