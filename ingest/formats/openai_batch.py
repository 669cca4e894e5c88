"""OpenAI Batch API files: output lines (billed calls) and input lines (requests to join).

Output line: `{id: "batch_req_…", custom_id, response: {status_code, request_id, body}, error}`
(openai-python `batch_create_params.py`, API reference "The request output object").
Output order differs from input order, so requests are joined on `custom_id` when the
input file was ingested in the same run. Only `body.created` dates a call; an embeddings
body has none, so the file's mtime stands in and is flagged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import RecordError
from ..schema import Call
from .base import Format, ParseContext, as_int, as_str
from .calls import call_from_bodies
from .openai_bodies import endpoint_from_path

BATCH_INPUTS = "batch_inputs"  # ParseContext.extras key: custom_id -> request line
LAST_TS = "batch_last_ts"
_CREATED = re.compile(rb'"created":\s*(\d{9,11})')


def is_batch_input(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and "custom_id" in record
        and isinstance(record.get("body"), dict)
        and isinstance(record.get("url"), str)
        and "response" not in record
    )


class OpenAIBatchOutputFormat(Format):
    name = "openai-batch"
    description = "OpenAI Batch API output files (and input files, joined on custom_id)"
    detection = ("a JSON object with custom_id and response{status_code, body} or error (output), "
                 "or custom_id, method, url, body (input)")

    def detect(self, record: Any) -> bool:
        if not isinstance(record, dict) or "custom_id" not in record:
            return False
        if is_batch_input(record):
            return True
        return "response" in record and ("error" in record or str(record.get("id", "")).startswith("batch_req"))

    def prepare_file(self, path: Path, ctx: ParseContext) -> None:
        """Date body-less (failed) lines by the earliest `created` in the file's first MiB, not by mtime."""
        from ..sources import open_binary

        with open_binary(path) as fh:
            head = fh.read(1 << 20)
        stamps = [int(m) for m in _CREATED.findall(head)]
        if stamps:
            ctx.extras[LAST_TS] = min(stamps) * 1_000_000

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        if is_batch_input(record) or not self.detect(record):
            return []  # input lines are not calls (the pipeline indexes them for the join)
        custom_id = as_str(record.get("custom_id"))
        inputs: dict[str, Any] = ctx.extras.get(BATCH_INPUTS, {})
        joined = inputs.get(custom_id or "")
        request = joined.get("body") if isinstance(joined, dict) else None
        endpoint = endpoint_from_path(joined.get("url")) if isinstance(joined, dict) else None
        resp = record.get("response")
        err = record.get("error")
        if resp is None and not isinstance(err, dict):
            raise RecordError("batch output line has neither response nor error")
        if resp is not None and not isinstance(resp, dict):
            raise RecordError("batch output `response` is not an object")
        status = as_int(resp.get("status_code"), "response.status_code") if resp else None
        body = resp.get("body") if resp else None
        if isinstance(body, str):  # some exporters leave the body as a JSON string
            import msgspec

            try:
                body = msgspec.json.decode(body)
            except (msgspec.DecodeError, RecursionError):
                raise RecordError("batch output response.body is a string that is not JSON") from None
        if resp is None:
            status = status or 500
            body = {"error": {"message": as_str(err.get("message")) or "", "type": as_str(err.get("code")) or "batch_error"}}
        # A failed request has no body and so no date: it takes the previous line's (same batch).
        saved_fallback = ctx.fallback_ts
        ctx.fallback_ts = ctx.extras.get(LAST_TS, ctx.fallback_ts)
        try:
            call = call_from_bodies(
                ctx, self.name, request=request, response=body, status_code=status, endpoint=endpoint
            )
        finally:
            ctx.fallback_ts = saved_fallback
        if call.estimate_flags and "ts_from_file_mtime" in call.estimate_flags and LAST_TS in ctx.extras:
            call.estimate_flags = call.estimate_flags.replace("ts_from_file_mtime", "ts_from_previous_line")
        else:
            ctx.extras[LAST_TS] = call.ts
        call.batch = True
        call.request_id = as_str(resp.get("request_id")) if resp else None
        if call.call_id.startswith("tt-") and record.get("id"):
            call.call_id = str(record["id"])
        md = call.metadata if call.metadata is not None else {}
        if custom_id:
            md["batch_custom_id"] = custom_id
        call.metadata = md
        if request is None and call._estimate is not None:
            call.estimate_flags = ",".join(filter(None, [call.estimate_flags, "batch_input_not_joined"]))
        return [call]
