"""Unwrap what container runtimes and cloud log services put around an application's log line.

The formats only ever see the application's own record. Detected per line, no configuration:

- Docker `json-file`: `{"log": "<line>\\n", "stream", "time"}`; a line over 16 KiB is split into
  several records, all but the last without the trailing `\\n`: they are joined again.
- Kubernetes CRI (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F> <text>`; `P` pieces are
  joined until the `F` piece.
- journald JSON export (`journalctl -o json`): `MESSAGE` (a string, or a byte array when not UTF-8),
  `__REALTIME_TIMESTAMP` in µs.
- Google Cloud Logging export (LogEntry): `jsonPayload` or `textPayload`, `httpRequest`, `timestamp`.
- CloudWatch Logs: subscription records (`messageType: DATA_MESSAGE`, `logEvents[]`), single events
  (`timestamp` ms, `message`, `ingestionTime`), and S3 export lines (`<ISO time> <message>`).
- OpenTelemetry logs (OTLP JSON): `resourceLogs[].scopeLogs[].logRecords[]`, `body`, `attributes`.

What a wrapper itself knows (its time, GCP's `httpRequest`, OTLP attributes, host and container
labels) fills only what the application record did not say (`apply_envelope`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .errors import RecordError
from .formats.coerce import as_float, as_int, as_str, decode_line, merge_metadata, parse_ts
from .formats.discover import discover
from .formats.otel import RESOURCE_KEYS, attr_value, attributes
from .keys import scrub_text
from .schema import Call
from .tokens.request import EstimateRequest

_CRI = re.compile(rb"^(\d{4}-\d{2}-\d{2}T\S+) (stdout|stderr) ([PF])(?: (.*))?$", re.DOTALL)
_CW_EXPORT = re.compile(rb"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z) (.*)$", re.DOTALL)
WRAPPERS: tuple[tuple[str, str], ...] = (  # (name, what it is), for `formats list`
    ("docker", "Docker json-file lines {log, stream, time}; lines split at 16 KiB joined"),
    ("cri", "Kubernetes CRI lines <time> stdout|stderr P|F <text>; P pieces joined"),
    ("journald", "journalctl -o json entries (MESSAGE, __REALTIME_TIMESTAMP)"),
    ("gcp", "Google Cloud Logging LogEntry exports (jsonPayload/textPayload, httpRequest)"),
    ("cloudwatch", "CloudWatch Logs subscription records (logEvents[]) and single events (timestamp, message)"),
    ("cloudwatch-export", "CloudWatch Logs S3 export lines <ISO time> <message>"),
    ("otlp", "OpenTelemetry logs, OTLP JSON (resourceLogs[].scopeLogs[].logRecords[] body, attributes)"),
)
MAX_JOINED = 64 << 20  # a split line longer than this is given up on (quarantined), never held whole


@dataclass(slots=True)
class Envelope:
    """What the wrapper said about the record it carried: fallbacks for what the record lacks."""

    wrapper: str
    ts: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # route, url, client_ip, user, request_id, status_code, latency_ms
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Inner:
    """One application record: raw bytes to decode (`record` None) or an already decoded value."""

    offset: int  # source offset of the (first) physical line it came from
    data: bytes
    record: Any = None
    decoded: bool = False
    error: str | None = None  # the line is not valid JSON (reason for quarantine)
    envelope: Envelope | None = None
    repaired: bool = False  # invalid UTF-8 inside it was replaced (U+FFFD)


@dataclass(slots=True)
class _Partial:
    wrapper: str
    offset: int
    parts: list[bytes]
    size: int
    envelope: Envelope


class Unwrapper:
    """Per-file state: a Docker/CRI line split into pieces is held here until its last piece arrives."""

    def __init__(self) -> None:
        self._partial: _Partial | None = None
        self.seen: dict[str, int] = {}  # wrapper name -> records unwrapped (for `formats detect`)

    @property
    def idle(self) -> bool:
        """No split line is half read: a chunk may end here."""
        return self._partial is None

    def feed(self, data: bytes, offset: int, decode: bool = True) -> list[Inner] | None:
        """The application records in one physical line; None while a split line is being joined.

        `decode`: the file's format reads JSON (False for text formats: SSE, CSV keep raw lines).
        """
        m = _CRI.match(data)
        if m is not None:
            env = Envelope("cri", _ts_or_none(m.group(1).decode()), metadata={"stream": m.group(2).decode()})
            return self._piece("cri", m.group(4) or b"", m.group(3) == b"P", offset, env, decode)
        if self._partial is not None and not data.startswith(b"{"):
            return self.flush(decode) + (self.feed(data, offset, decode) or [])
        m = _CW_EXPORT.match(data)
        if m is not None:
            env = Envelope("cloudwatch-export", _ts_or_none(m.group(1).decode()))
            return [self._payload(m.group(2), offset, env, decode)]
        if not data.startswith(b"{"):
            return [_decode(data, offset, strict=True)] if decode else [Inner(offset, data)]
        try:
            record, repaired = decode_line(data)
        except (msgspec.DecodeError, RecursionError) as exc:
            return [Inner(offset, data, error=f"invalid JSON: {exc}")] if decode else [Inner(offset, data)]
        if not isinstance(record, dict):
            return [Inner(offset, data, record, decoded=True, repaired=repaired)] if decode else [Inner(offset, data)]
        is_docker = isinstance(record.get("log"), str) and "stream" in record and "time" in record
        if self._partial is not None and not is_docker:
            # a split line's continuation never came: the pieces are given up as one line of their own
            return self.flush(decode) + (self.feed(data, offset, decode) or [])
        try:
            wrapped, out = self._unwrap_record(record, data, offset, decode)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecordError) as exc:
            # a wrapper's own fields with the wrong shape: this line's problem (quarantined), never the run's
            self._partial = None
            return [Inner(offset, data, error=f"malformed log wrapper ({type(exc).__name__}: {exc})")]
        if not wrapped:
            return [Inner(offset, data, record, decoded=True, repaired=repaired)] if decode else [Inner(offset, data)]
        return out

    def flush(self, decode: bool = True) -> list[Inner]:
        """At the end of a file that will not grow (or when a split line is abandoned): what is held."""
        p, self._partial = self._partial, None
        if p is None:
            return []
        return [self._payload(b"".join(p.parts), p.offset, p.envelope, decode)]

    # -- the wrappers -----------------------------------------------------------------------------

    def _unwrap_record(self, r: dict[str, Any], data: bytes, offset: int, decode: bool) -> tuple[bool, list[Inner] | None]:
        """(whether `r` is a wrapper, the records it carries or None while a split line is held)."""
        if isinstance(r.get("log"), str) and "stream" in r and "time" in r:
            env = Envelope("docker", _ts_or_none(r["time"]), metadata=_str_map({"stream": r.get("stream")}))
            if isinstance(r.get("attrs"), dict):  # --log-opt labels=/env=/tag=
                env.metadata.update(_str_map(r["attrs"]))
            text = r["log"].encode()
            partial = not text.endswith(b"\n")
            return True, self._piece("docker", text.rstrip(b"\r\n") if not partial else text, partial, offset, env, decode)
        if "MESSAGE" in r and ("__REALTIME_TIMESTAMP" in r or "__CURSOR" in r):
            return True, [self._payload(_journal_message(r["MESSAGE"]), offset, _journald_envelope(r), decode)]
        if "logName" in r or ("insertId" in r and ("jsonPayload" in r or "textPayload" in r)):
            return True, [self._gcp(r, offset, decode)]
        if r.get("messageType") == "DATA_MESSAGE" and isinstance(r.get("logEvents"), list):
            base = {"log_group": r.get("logGroup"), "log_stream": r.get("logStream")}
            return True, [self._cw_event(ev, base, offset, decode) for ev in r["logEvents"] if isinstance(ev, dict)]
        if isinstance(r.get("message"), str) and isinstance(r.get("timestamp"), int) and (
                "ingestionTime" in r or "eventId" in r or "logStreamName" in r):
            return True, [self._cw_event(r, {"log_stream": r.get("logStreamName")}, offset, decode)]
        if isinstance(r.get("resourceLogs"), list):
            return True, self._otlp(r["resourceLogs"], offset, decode)
        return False, None

    def _piece(self, wrapper: str, text: bytes, partial: bool, offset: int, env: Envelope,
               decode: bool) -> list[Inner] | None:
        p = self._partial
        if p is not None and p.wrapper != wrapper:
            return self.flush(decode) + (self._piece(wrapper, text, partial, offset, env, decode) or [])
        if p is None and not partial:
            return [self._payload(text, offset, env, decode)]
        if p is None:
            p = self._partial = _Partial(wrapper, offset, [], 0, env)
        p.parts.append(text)
        p.size += len(text)
        if p.size > MAX_JOINED:
            self._partial = None
            return [Inner(p.offset, b"", error=f"{wrapper} split line over {MAX_JOINED} bytes")]
        if partial:
            return None
        return self.flush(decode)

    def _payload(self, text: bytes, offset: int, env: Envelope, decode: bool) -> Inner:
        self.seen[env.wrapper] = self.seen.get(env.wrapper, 0) + 1
        inner = _decode(text.strip(), offset) if decode else Inner(offset, text.strip())
        inner.envelope = env
        return inner

    def _gcp(self, r: dict[str, Any], offset: int, decode: bool) -> Inner:
        env = Envelope("gcp", _ts_or_none(r.get("timestamp") or r.get("receiveTimestamp")))
        res: dict[str, Any] = r["resource"] if isinstance(r.get("resource"), dict) else {}
        env.metadata.update(_str_map(res.get("labels") or {}))
        env.metadata.update(_str_map(r.get("labels") or {}))
        if as_str(res.get("type")):
            env.metadata["resource.type"] = str(res["type"])
        http = r.get("httpRequest")
        if isinstance(http, dict):
            env.fields.update({k: v for k, v in {
                "url": as_str(http.get("requestUrl")), "client_ip": as_str(http.get("remoteIp")),
                "status_code": http.get("status"), "latency_ms": _gcp_duration_ms(http.get("latency")),
            }.items() if v is not None})
        if isinstance(r.get("jsonPayload"), dict):
            self.seen["gcp"] = self.seen.get("gcp", 0) + 1
            return Inner(offset, b"", r["jsonPayload"], decoded=True, envelope=env)
        return self._payload(str(r.get("textPayload") or "").encode(), offset, env, decode)

    def _cw_event(self, ev: dict[str, Any], base: dict[str, Any], offset: int, decode: bool) -> Inner:
        env = Envelope("cloudwatch", _ts_or_none(ev.get("timestamp"), unit="ms"), metadata=_str_map(base))
        return self._payload(str(ev.get("message") or "").encode(), offset, env, decode)

    def _otlp(self, resource_logs: list[Any], offset: int, decode: bool) -> list[Inner]:
        out: list[Inner] = []
        for rl in resource_logs:
            if not isinstance(rl, dict):
                continue
            res = attributes((rl.get("resource") or {}).get("attributes"))
            res_md = {k: str(res[k]) for k in RESOURCE_KEYS if as_str(res.get(k))}
            for sl in rl.get("scopeLogs") or []:
                for lr in (sl or {}).get("logRecords") or []:
                    if not isinstance(lr, dict):
                        continue
                    attrs = attributes(lr.get("attributes"))
                    env = Envelope("otlp", _ts_or_none(lr.get("timeUnixNano") or lr.get("observedTimeUnixNano"),
                                                       unit="ns"), metadata=dict(res_md))
                    env.fields.update(_context_fields(attrs))
                    if lr.get("traceId"):
                        env.metadata["trace_id"] = str(lr["traceId"])
                    body = attr_value(lr.get("body"))
                    if isinstance(body, dict):
                        self.seen["otlp"] = self.seen.get("otlp", 0) + 1
                        out.append(Inner(offset, b"", body, decoded=True, envelope=env))
                    else:
                        out.append(self._payload(str(body or "").encode(), offset, env, decode))
        return out


def _decode(data: bytes, offset: int, strict: bool = False) -> Inner:
    """Application text: JSON when it looks like JSON. Other text carried by a wrapper is not a call
    (skipped); an unwrapped line of a JSON log that is not JSON is (`strict`) quarantined."""
    if not strict and not data.startswith((b"{", b"[")):
        return Inner(offset, data, None, decoded=True)
    try:
        record, repaired = decode_line(data)
        return Inner(offset, data, record, decoded=True, repaired=repaired)
    except (msgspec.DecodeError, RecursionError) as exc:
        return Inner(offset, data, error=f"invalid JSON: {exc}")


def _ts_or_none(value: Any, unit: str | None = None) -> int | None:
    try:
        return parse_ts(value, "wrapper time", unit=unit)
    except (RecordError, ValueError, OverflowError):
        return None


_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|cookie|credential", re.IGNORECASE)


def _str_map(d: dict[str, Any]) -> dict[str, str]:
    """Wrapper labels as metadata. Docker's `--log-opt env=` can copy e.g. OPENAI_API_KEY into `attrs`:
    anything named like a secret is dropped, and key-shaped text is scrubbed from the rest."""
    return {str(k): scrub_text(s) for k, v in d.items()
            if (s := as_str(v)) is not None and not _SECRET_NAME.search(str(k))}


def _journal_message(msg: Any) -> bytes:
    if isinstance(msg, list):  # non-UTF-8 messages are exported as arrays of byte values
        return bytes(b for b in msg if isinstance(b, int) and 0 <= b < 256)
    return str(msg or "").encode()


def _journald_envelope(r: dict[str, Any]) -> Envelope:
    env = Envelope("journald", _ts_or_none(r.get("__REALTIME_TIMESTAMP"), unit="us"))
    env.metadata = _str_map({"host.name": r.get("_HOSTNAME"), "systemd_unit": r.get("_SYSTEMD_UNIT"),
                             "syslog_identifier": r.get("SYSLOG_IDENTIFIER"), "container_name": r.get("CONTAINER_NAME")})
    return env


def _gcp_duration_ms(value: Any) -> float | None:
    """Cloud Logging durations are strings such as "0.351s"."""
    s = as_str(value)
    if not s or not s.endswith("s"):
        return None
    try:
        seconds = as_float(s[:-1], "latency")
    except RecordError:
        return None
    return seconds * 1000 if seconds is not None else None


def _context_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    if not attrs:
        return {}
    return dict(discover(attrs, max_depth=2).values)


_FIELD_COLUMNS = ("route", "client_ip", "user", "request_id", "status_code", "latency_ms")


def apply_envelope(calls: list[Call], env: Envelope | None) -> None:
    """Fill what the application record did not say from what its wrapper said."""
    if env is None:
        return
    for call in calls:
        if env.ts is not None and call.estimate_flags and "ts_from_file_mtime" in call.estimate_flags:
            call.ts = env.ts
            flags = [f for f in call.estimate_flags.split(",") if f != "ts_from_file_mtime"]
            call.estimate_flags = ",".join(flags) or None
            est = call.estimate_request
            if isinstance(est, EstimateRequest) and "ts_from_file_mtime" in est.flags:
                est.flags.remove("ts_from_file_mtime")
        f = env.fields
        if call.route is None and f.get("url"):
            from .formats.openai_app import route_of

            call.route = route_of(str(f["url"]))
        for name in _FIELD_COLUMNS:
            if getattr(call, name) is None and f.get(name) is not None:
                value = f[name]
                if name == "status_code":
                    value = as_int(value, "status")
                elif name == "latency_ms":
                    value = as_float(value, "latency")
                else:
                    value = as_str(value)
                setattr(call, name, value)
        if env.metadata:
            merge_metadata(call, env.metadata.items(), overwrite=False)


def unwrap_sample(lines: list[bytes]) -> list[Any]:
    """Sample lines for format detection: the application's records (decoded) or raw text lines."""
    unwrapper = Unwrapper()
    out: list[Any] = []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        for inner in unwrapper.feed(line, i) or []:
            out.append(inner.record if inner.decoded and inner.record is not None else inner.data)
    for inner in unwrapper.flush():
        out.append(inner.record if inner.decoded and inner.record is not None else inner.data)
    return out
