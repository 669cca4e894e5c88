"""The fast path of the default `openai` format: lines with the common app-log envelope, read directly.

Most application-log lines share one shape: `timestamp`, `route`, `client_ip`, `status_code`,
`latency_ms`, a flat `headers` object, a `request` body and a `response` body or stream, plus
logger fields (`level`, `event`, ...). For such a line the general parser's walk (`discover`)
can only ever find what sits at those places, so this parser reads them there and builds the
same Call. Any line it does not fully understand (an unknown key, a key or header name the walk
would take for some field, a body logged as text, an odd type, a value that fails to parse) is
handed to the general parser unchanged: the general parser stays the reference, this is only an
optimisation. tests/test_fast_path.py checks that both give identical rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import RecordError
from ..schema import Call
from .base import FileParser
from .calls import call_from_bodies
from .coerce import as_float, parse_ts
from .discover import is_har_pair, is_request_like, names_a_leaf
from .openai_app import OpenAIAppFormat, apply_headers, first_ip
from .openai_bodies import endpoint_from_path, is_response, is_stream

ENABLED = True  # False: every line takes the general parser (the differential tests, a suspected fast-path bug)


@dataclass(slots=True)
class PathCounts:
    """Records read by the fast path and handed to the general parser (this process, all files)."""

    fast: int = 0
    general: int = 0

    def reset(self) -> None:
        self.fast = self.general = 0


COUNTS = PathCounts()

# The envelope's keys with a type and a meaning (each also where the default profile looks first).
_TYPED = ("timestamp", "route", "client_ip", "status_code", "latency_ms", "headers", "request", "response")
# Logger fields that say nothing about the call: no name here may be one the walk or a profile path
# reads (tests/test_fast_path.py checks), else the general parser could take its value for some field.
PLAIN_KEYS = frozenset({"level", "severity", "logger", "logger_name", "event", "error", "message", "msg", "service",
                        "env", "environment", "hostname", "pid", "thread", "caller", "trace_id", "span_id"})
ENVELOPE_KEYS = frozenset(_TYPED) | PLAIN_KEYS
_READ_ERRORS = (RecordError, TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)

# Header names: one verdict per distinct name (a log repeats a handful of names).
_PLAIN, _REQUEST_ID, _DECLINE = 0, 1, 2
_HEADER_VERDICTS: dict[str, int] = {}


def _header_verdict(name: str) -> int:
    """A header the walk ignores; the request id (the walk's only find in a flat header object); or decline."""
    verdict = _HEADER_VERDICTS.get(name)
    if verdict is None:
        low = name.lower()
        if not names_a_leaf("headers", name) or low == "authorization":  # the key: the header pass reduces it too
            verdict = _PLAIN
        elif low == "x-request-id":
            verdict = _REQUEST_ID
        else:
            verdict = _DECLINE
        if len(_HEADER_VERDICTS) < 4096:
            _HEADER_VERDICTS[name] = verdict
    return verdict


_LOOK_CLOSER = frozenset({"{", "[", "d", "e"})  # first characters of JSON text and of SSE transcripts


def _inert(text: str) -> bool:
    """Text the walk passes over: not JSON to decode and look into, not an SSE transcript.
    (Callers look at the first character first: most text needs no more, `_LOOK_CLOSER`.)"""
    head = text.lstrip()[:1]
    if head in ("{", "["):
        return False
    return not (head in ("d", "e") and is_stream(text))


def read_envelope(record: dict[str, Any], fmt: OpenAIAppFormat, parser: FileParser) -> list[Call] | None:
    """The record's call when it has the envelope exactly; None (decline) for anything else."""
    if not record.keys() <= ENVELOPE_KEYS:
        return None
    request = record.get("request")
    if not is_request_like(request):
        return None
    response = record.get("response")
    if response is not None:
        if type(response) is dict:
            if not is_response(response) or is_request_like(response):
                return None
        elif type(response) is not list or not is_stream(response):
            return None
    route, client_ip, status = record.get("route"), record.get("client_ip"), record.get("status_code")
    # The general parser turns a number here into text, and looks into an object for the field (and into
    # JSON text, or takes an SSE transcript for the response, under any key).
    for text in (route, client_ip):
        if text is not None and (type(text) is not str or not _inert(text)):
            return None
    if status is not None and type(status) is not int:  # a bool is no status; "200" takes the general way
        return None
    for key, value in record.items():
        if key in PLAIN_KEYS:
            kind = type(value)
            if kind is str:
                head = value[:1]
                if (head in _LOOK_CLOSER or head.isspace()) and not _inert(value):
                    return None
            elif not (value is None or kind is int or kind is float or kind is bool):
                return None
    headers = record.get("headers")
    request_id: str | None = None
    if headers is not None:
        if type(headers) is not dict or is_har_pair(headers) or is_request_like(headers) or is_response(headers):
            return None
        for name, value in headers.items():
            if type(value) is not str:
                return None
            head = value[:1]
            if (head in _LOOK_CLOSER or head.isspace()) and not _inert(value):
                return None
            verdict = _HEADER_VERDICTS.get(name)
            if verdict is None:
                verdict = _header_verdict(name)
            if verdict == _DECLINE:
                return None
            if verdict == _REQUEST_ID and request_id is None and value:
                request_id = value

    ctx = parser.ctx
    # From here on, what the general parser does for this shape (`OpenAIAppFormat.parse`), minus the walk:
    # the walk finds nothing but what is read here. A value that fails to parse raises (the general way).
    ts = parse_ts(record.get("timestamp"), "timestamp")
    if status is not None and not 100 <= status <= 599:
        status = None
    route = route or None
    call = call_from_bodies(ctx, fmt.name, request=request, response=response, ts=ts, status_code=status,
                            endpoint=endpoint_from_path(route))
    call.route = route
    call.client_ip = first_ip(client_ip)
    call.latency_ms = as_float(record.get("latency_ms"), "latency_ms")
    call.request_id = request_id
    if headers is not None:
        apply_headers(call, [headers], ctx)
    return [call]


class EnvelopeParser(FileParser):
    """The default `openai` format's per-file parser: the envelope read directly, anything else the general way."""

    format: OpenAIAppFormat
    reads_lines = True

    def parse_line(self, data: bytes) -> list[Call] | None:
        """A raw line with the envelope, decoded here: no container or cloud wrapper has only envelope keys
        (each is told by a key of its own: `log`, `MESSAGE`, `logName`, `logEvents`, `resourceLogs`, ...)."""
        if not data.startswith(b"{"):
            return None
        try:
            record = msgspec.json.decode(data)
        except (ValueError, RecursionError):  # broken JSON, or invalid UTF-8 (repaired the usual way)
            return None
        calls = self._read(record) if type(record) is dict else None
        if calls is not None:
            COUNTS.fast += 1
        return calls

    def parse(self, record: Any) -> list[Call]:
        calls = self._read(record) if type(record) is dict else None
        if calls is not None:
            COUNTS.fast += 1
            return calls
        COUNTS.general += 1
        return self.format.parse(record, self.ctx)

    def _read(self, record: dict[str, Any]) -> list[Call] | None:
        try:
            return read_envelope(record, self.format, self)
        except _READ_ERRORS:
            return None  # the general parser says what is wrong with it (quarantine)
