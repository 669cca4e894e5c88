"""No full API key is stored or printed, wherever in a log it was written.

Every string-bearing field (and every object, with credential headers added to it) of every
format's fixture gets its own realistic key, in one of the shapes keys reach logs in: bare, in a
query string, as a path segment, after `Bearer`, base64 inside `Basic`, inside a JSON string,
in prose. The planted logs go through `ingest`; then every file under the warehouse (Parquet read
back and decoded too: it compresses) and the output of `sql`, `report`, `rules explain`, `rules
coverage` and `formats test` must hold no 12-character piece of any planted key (the issue asks for 20).
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES

from ingest.keys import display_id, needs_scrub, scrub_bytes, scrub_prefix, scrub_text, scrub_value

# `rules explain` (attribution/reports.py: explain_call) still takes Arrow from a DB-API result; the lead's query
# rewrite replaces it. The warning is not what this file tests.
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

PIECE = 12
_RNG = random.Random(1313)
_URLSAFE = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _URLSAFE) -> str:
    body = "".join(_RNG.choice(alphabet) for _ in range(n))
    return body.replace("-", "a").replace("_", "b")[:2] + body[2:]  # no separator right after the prefix


def make_key(i: int) -> str:
    """Realistic shapes: project, service-account, admin, legacy user keys (the legacy one without padding)."""
    kind = i % 5
    if kind == 0:
        return "sk-proj-" + _rand(74) + "T3BlbkFJ" + _rand(74)
    if kind == 1:
        return "sk-svcacct-" + _rand(74) + "T3BlbkFJ" + _rand(74)
    if kind == 2:
        return "sk-admin-" + _rand(60) + "T3BlbkFJ" + _rand(60)
    if kind == 3:
        return "sk-" + _rand(20, _ALNUM) + "T3BlbkFJ" + _rand(20, _ALNUM)
    return "sk-None-" + _rand(40, _ALNUM) + "T3BlbkFJ" + _rand(40, _ALNUM)


FORMS: list[Callable[[str], str]] = [
    lambda k: k,
    lambda k: f"?api_key={k}",
    lambda k: f"/v1/keys/{k}/usage",
    lambda k: f"Bearer {k}",
    lambda k: "Basic " + base64.b64encode(f"svc-user:{k}".encode()).decode(),
    lambda k: json.dumps({"auth": f"Bearer {k}"}),
    lambda k: f"Internal API key: {k}. Never share it.",
    lambda k: f"https://proxy.internal/v1/chat/completions?x=1&token={k}",
]


class Planter:
    """Hands out a fresh key per planted place and remembers every key handed out."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def key(self) -> str:
        k = make_key(len(self.keys))
        self.keys.append(k)
        return k

    def plant(self, value: str) -> str:
        form = FORMS[len(self.keys) % len(FORMS)](self.key())
        return value + form if form.startswith("?") else f"{value} {form}"

    def extras(self) -> dict[str, Any]:
        """Credential headers and objects an application copies into its log record."""
        return {
            "x-app-key": self.key(), "OpenAI-Api-Key": self.key(), "x-user-token": self.key(),
            "context": {"auth": "Bearer " + self.key()}, self.key(): "a key used as a name",
            # fields some formats keep that the fixtures do not happen to have
            "user_api_key_request_route": "/chat/completions?api_key=" + self.key(),  # LiteLLM metadata
            "host": f"{self.key()}.proxy.internal", "server_name": "/" + self.key(),  # nginx
        }


JSON = object()  # path step: "decode this JSON string"


def _json_container(s: str) -> Any:
    if s[:1] not in ("{", "["):
        return None
    try:
        v = json.loads(s)
    except ValueError:
        return None
    return v if isinstance(v, dict | list) else None


def places(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string leaf ("leaf") and every object ("dict"), including inside JSON held in strings."""
    if isinstance(obj, dict):
        yield path, "dict"
        for k, v in obj.items():
            yield from places(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from places(v, (*path, i))
    elif isinstance(obj, str):
        inner = _json_container(obj)
        if inner is not None:
            yield from places(inner, (*path, JSON))
        yield path, "leaf"


def planted(obj: Any, path: tuple[Any, ...], kind: str, p: Planter) -> Any:
    if not path:
        if kind == "dict":
            return {**obj, **p.extras()}
        return p.plant(obj)
    head, rest = path[0], path[1:]
    if head is JSON:
        return json.dumps(planted(json.loads(obj), rest, kind, p))
    if isinstance(obj, dict):
        return {k: planted(v, rest, kind, p) if k == head else v for k, v in obj.items()}
    return [planted(v, rest, kind, p) if i == head else v for i, v in enumerate(obj)]


def _variants_of_line(line: str) -> list[Callable[[Planter], str]]:
    """One function per place in the line, each giving the line with that place planted."""
    prefix, body = ("data: ", line[6:]) if line.startswith("data: ") else ("", line)
    try:
        record = json.loads(body)
    except ValueError:
        if not line.strip() or line.strip() == "data: [DONE]":
            return []
        return [lambda p: p.plant(line)]
    def one(path: tuple[Any, ...], kind: str) -> Callable[[Planter], str]:
        return lambda p: prefix + json.dumps(planted(record, path, kind, p))

    return [one(path, kind) for path, kind in places(record)]


_ID_PARTS = ("cmpl-", "resp_", "req_", "-failure", "litellm-emb-", '"request": {"id": "', '"spanId": "')


def retag(text: str, n: int) -> str:
    """Give copy `n` its own call ids (the views keep one row per call id), so every planted copy is
    visible to `sql` and `report`, not only in the files."""
    for part in _ID_PARTS:
        text = text.replace(part, part + f"{n:04x}" if part.endswith('"') else part + f"v{n}")
    return text


def plant_jsonl(text: str, p: Planter) -> str:
    """The original lines, then copy after copy with the n-th place of every line planted."""
    lines = text.splitlines()
    variants = [_variants_of_line(line) for line in lines]
    out = list(lines)
    for n in range(max(map(len, variants))):
        out.extend(retag(v[n](p) if n < len(v) else line, n + 1) for line, v in zip(lines, variants, strict=True))
    return "\n".join(out) + "\n"


def plant_csv(text: str, p: Planter) -> str:
    header, *rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    for row in rows:
        for i, cell in enumerate(row):
            inner = _json_container(cell)
            cells = [planted(cell, (), "leaf", p)]
            if inner is not None:
                cells += [planted(cell, (JSON, *path), kind, p) for path, kind in places(inner)]
            for c in cells:
                w.writerow([retag(x, len(p.keys)) for x in [*row[:i], c, *row[i + 1:]]])
    return buf.getvalue()


EXPECTED_FORMATS = {
    "openai/app_calls.jsonl": "openai", "openai/batch_output.jsonl": "openai-batch", "kong/file_log.jsonl": "kong",
    "nginx/access.jsonl": "nginx", "litellm/standard_payload.jsonl": "litellm",
    "litellm/spend_logs.jsonl": "litellm", "litellm/spend_logs.csv": "litellm-spend-csv",
    "otel/traces.jsonl": "otel", "sse/streams.sse": "sse",
}


def pieces(keys: list[str]) -> set[str]:
    return {k[i:i + PIECE] for k in keys for i in range(len(k) - PIECE + 1)}


def find_pieces(text: str, needles: set[str]) -> list[str]:
    return sorted({text[i:i + PIECE] for i in range(len(text) - PIECE + 1) if text[i:i + PIECE] in needles})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("latin-1")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def warehouse_texts(root: Path) -> Iterator[tuple[str, str]]:
    """Every file's bytes, gzip decompressed, and every Parquet file's decoded values."""
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.name == "hmac.key":
            continue
        data = f.read_bytes()
        yield str(f), data.decode("latin-1")
        if data[:2] == b"\x1f\x8b":
            yield f"{f} (gunzipped)", gzip.decompress(data).decode("latin-1")
        if data[:4] == b"PAR1":
            rows = pq.read_table(f).to_pylist()
            yield f"{f} (decoded)", "\n".join(s for row in rows for s in _strings(row))


RULES = """version: 1
rules:
  key_name:
    - id: by-full-key
      when: {{api_key: "{k0}"}}
      value: team-gpt
    - id: by-id-written-as-full-key
      when: {{api_key_id: "{k1}"}}
      value: by-id
    - id: app-key-header
      when: {{"metadata.x-app-key": {{exists: true}}}}
      value: "{{metadata.x-app-key}}"
  feature:
    - id: route-copy
      when: {{route: {{exists: true}}}}
      value: "{{route}}"
    - id: head-copy
      when: {{system_prompt_head: {{exists: true}}}}
      value: "{{system_prompt_head}}"
  end_user:
    - id: user-copy
      when: {{user: {{exists: true}}}}
      value: "{{user}}"
  team:
    - id: literal-key
      when: {{route: {{prefix: "/v1/keys/{k2}"}}}}
      value: "team {k3}"
    - id: alias-copy
      when: {{key_alias: {{exists: true}}}}
      value: "{{key_alias}}"
defaults: {{key_name: "unknown {k4}"}}
"""


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from conftest import run

    tmp = tmp_path_factory.mktemp("keys-everywhere")
    logs = tmp / "logs"
    p = Planter()
    for rel in [*EXPECTED_FORMATS, "openai/batch_input.jsonl"]:
        src = (FIXTURES / rel).read_text()
        dst = logs / rel.replace("/", "__")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(plant_csv(src, p) if rel.endswith(".csv") else plant_jsonl(src, p))
    rule_keys = [p.key() for _ in range(5)]
    rules = tmp / "rules.yaml"
    rules.write_text(RULES.format(**{f"k{i}": k for i, k in enumerate(rule_keys)}))
    wh = tmp / "wh"
    r = run("ingest", logs, "--warehouse", wh, "--rules", rules, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    outputs = {"ingest": r.output}
    for name, args in {
        "sql calls": ("sql", "select * from calls", "--format", "json"),
        "sql usage": ("sql", "select * from usage", "--format", "csv"),
        "sql quarantine": ("sql", "select source_file, reason, cast(raw as varchar) as raw from quarantine",
                           "--format", "json"),
        "report": ("report", "--by", "route", "--by", "user", "--by", "feature", "--by", "team",
                   "--by", "key_name", "--by", "metadata.x-app-key", "--by", "metadata.openai-api-key",
                   "--by", "metadata.x-user-token", "--format", "json"),
        "report table": ("report", "--by", "end_user", "--by", "model"),
        "rules coverage": ("rules", "coverage", rules),
        "rules check": ("rules", "check", rules),
    }.items():
        out = run(*args, "--warehouse", wh) if args[0] != "rules" or args[1] != "check" else run(*args)
        outputs[name] = out.output
        assert out.exit_code == 0, (name, out.output[-2000:])
    ids = json.loads(run("sql", "select call_id from usage order by length(key_name) + length(feature) desc limit 4",
                         "--warehouse", wh, "--format", "json").output)
    for row in ids:
        out = run("rules", "explain", rules, "--call", row["call_id"], "--warehouse", wh)
        outputs[f"rules explain {row['call_id']}"] = out.output
        assert out.exit_code == 0, out.output
    profile = tmp / "profile.yaml"
    profile.write_text("name: app\nfields:\n  metadata: {ctx: context.auth}\n")
    out = run("formats", "test", profile, logs / "openai__app_calls.jsonl", "--lines", "100000")
    outputs["formats test"] = out.output
    return {"wh": wh, "keys": p.keys, "summary": summary, "outputs": outputs}


def test_planted_logs_are_read_by_their_formats(planted_run: dict[str, Any]) -> None:
    """The planted values really reached the columns: every file parsed by its format, thousands of calls."""
    per_file = {Path(f["path"]).name: f for f in planted_run["summary"]["per_file"]}
    for rel, fmt in EXPECTED_FORMATS.items():
        f = per_file[rel.replace("/", "__")]
        assert f["format"] == fmt and f["calls"] > 0, f
    assert planted_run["summary"]["calls"] > 1000 and len(planted_run["keys"]) > 1500


def test_planted_values_reached_the_columns_as_display_ids(planted_run: dict[str, Any]) -> None:
    """The places the issue lists hold the redacted form, so the scan below checks stored data, not absences."""
    from attribution.query import run_sql

    wh = planted_run["wh"]
    for column in ("route", "user", "request_id", "key_alias", "system_prompt_head", "call_id", "model", "org_id"):
        n = run_sql(wh, f"SELECT count(*) AS n FROM calls WHERE {column} LIKE '%sk-…%'").to_pylist()[0]["n"]
        assert n > 0, column
    names = {r["k"] for r in run_sql(wh, "SELECT DISTINCT unnest(map_keys(metadata)) AS k FROM calls").to_pylist()}
    for name in ("x-app-key", "openai-api-key", "x-user-token", "auth", "host", "litellm_route", "http_user_agent"):
        hit = run_sql(wh, f"SELECT count(*) AS n FROM calls WHERE metadata['{name}'] LIKE '%sk-…%'").to_pylist()[0]["n"]
        assert name in names and hit > 0, name
    by_format = run_sql(wh, "SELECT DISTINCT source_format FROM calls WHERE to_json(metadata)::varchar LIKE '%sk-…%' "
                            "OR route LIKE '%sk-…%' OR user LIKE '%sk-…%'").to_pylist()
    assert {r["source_format"] for r in by_format} >= {"openai", "kong", "nginx", "litellm", "otel"}


def test_no_piece_of_any_key_is_stored(planted_run: dict[str, Any]) -> None:
    needles = pieces(planted_run["keys"])
    leaks = {name: found[:3] for name, text in warehouse_texts(planted_run["wh"])
             if (found := find_pieces(text, needles))}
    assert not leaks, leaks


def test_no_piece_of_any_key_is_printed(planted_run: dict[str, Any]) -> None:
    needles = pieces(planted_run["keys"])
    leaks = {name: found[:3] for name, text in planted_run["outputs"].items() if (found := find_pieces(text, needles))}
    assert not leaks, leaks
    # what is printed instead is the display id, so a key can still be recognised
    assert "sk-…" in planted_run["outputs"]["sql calls"]


def test_the_check_itself_finds_a_key_in_compressed_parquet(tmp_path: Path) -> None:
    """The scan above would catch a key that only appears inside a compressed Parquet page."""
    import pyarrow as pa

    key = make_key(0)
    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"s": [f"row {i} {key}" for i in range(1000)]}), f, compression="gzip",
                   use_dictionary=False, write_statistics=False)
    assert not find_pieces(f.read_bytes().decode("latin-1"), pieces([key]))  # compressed: the raw bytes hide it
    texts = dict(warehouse_texts(tmp_path))
    assert find_pieces(texts[f"{f} (decoded)"], pieces([key]))


# -- the scrubber itself -----------------------------------------------------------------------


@pytest.mark.parametrize("i", range(5))
@pytest.mark.parametrize("form", range(len(FORMS)))
def test_scrub_text_reduces_every_key_form(i: int, form: int) -> None:
    key = make_key(i)
    text = "route " + FORMS[form](key) + " tail"
    out = scrub_text(text)
    assert not find_pieces(out, pieces([key])), out
    assert display_id(key) in out
    assert scrub_text(out) == out  # idempotent: a display id is never scrubbed again


def test_what_a_message_left_of_a_key_is_reduced_too() -> None:
    """A reason quotes `value[:40]`: the start of a key, too short to be recognised whole."""
    assert scrub_text("time='2025-03-08 sk-svcacct-ysi' is not a timestamp") == "time='2025-03-08 sk-…' is not a timestamp"
    assert scrub_text("cost='0.1 key: sk-84I0G5XepIu' is not") == "cost='0.1 key: sk-…' is not"
    assert scrub_text("uses sk-learn and sk-learn-pipeline") == "uses sk-learn and sk-learn-pipeline"


def test_a_key_without_its_prefix_is_still_found() -> None:
    key = make_key(3)
    assert not find_pieces(scrub_text("legacy " + key[3:]), pieces([key]))


def test_clean_text_is_left_alone_and_cheap() -> None:
    clean = ["/essays/review?page=2", "task-queue-processing-worker", "sk-learn-pipeline", "Basic authentication failed",
             "the basic plan", "gpt-4o-mini", "sk-…AbCd", "x-ratelimit-remaining-tokens=100", "?key=short"]
    for s in clean:
        assert scrub_text(s) == s
    assert not needs_scrub("gpt-4o-mini\nsk-…AbCd\n/essays/review\nYou are an essay reviewer.")


def test_basic_credentials_are_decoded_and_checked() -> None:
    key = make_key(0)
    assert scrub_text("Basic " + base64.b64encode(f"u:{key}".encode()).decode()) == "Basic " + display_id(key)
    assert scrub_text("Basic " + base64.b64encode(b"admin:hunter2hunter2").decode()) == "Basic [redacted]"


def test_credentials_that_are_not_openai_keys_are_redacted_too() -> None:
    """A gateway token or JWT after `Bearer`, a secret-named query parameter: the last 4 characters remain."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX3Zh"
    assert scrub_text(f"Authorization: Bearer {jwt}") == "Authorization: Bearer …X3Zh"
    assert scrub_text("/v1/x?token=0123456789abcdefXYZW&page=2") == "/v1/x?token=…XYZW&page=2"
    assert scrub_text("/v1/x?access_token=0123456789abcdefXYZW") == "/v1/x?access_token=…XYZW"
    assert scrub_text("/v1/x?page=0123456789abcdefXYZW") == "/v1/x?page=0123456789abcdefXYZW"


def test_secret_named_values_are_redacted_whatever_their_shape() -> None:
    assert scrub_value("x-user-token", "0123456789abcdefghij") == "…ghij"
    assert scrub_value("x-feature", "0123456789abcdefghij") == "0123456789abcdefghij"
    assert scrub_value("authorization", "REDACTED") == "REDACTED"  # a placeholder, not a credential


def test_a_key_cut_by_the_quarantine_cap_is_dropped_not_halved() -> None:
    key = make_key(0)
    raw = b'{"x": "token' + key.encode() + b'"}'  # glued to a word: only the prefix says it is a key
    for keep in range(8, len(raw)):
        out = scrub_prefix(raw, keep)
        assert len(out) <= keep + 8 and not find_pieces(out.decode(), pieces([key])), (keep, out)
    assert scrub_bytes(b"\xff\xfe " + key.encode()) == b"\xff\xfe " + display_id(key).encode()


def test_a_full_key_in_a_rule_file_is_fingerprinted_never_kept(tmp_path: Path) -> None:
    from attribution.rules import load_rules
    from ingest.keys import KeyHasher

    k1, k2 = make_key(0), make_key(1)
    f = tmp_path / "r.yaml"
    f.write_text(RULES.format(k0=make_key(2), k1=k1, k2=k2, k3=make_key(3), k4=make_key(4)))
    hasher = KeyHasher(b"s" * 32)
    rs = load_rules(f, hasher)
    assert not find_pieces(rs.canonical + repr(rs.dimensions) + repr(rs.defaults), pieces([k1, k2]))
    assert hasher.fingerprint(k1) in rs.canonical  # api_key_id: <full key> is matched by fingerprint
    assert display_id(k2) in repr(rs.dimensions)  # a key inside another matcher becomes the stored form


@pytest.mark.parametrize("text", [
    "a" * 2_000_000 + "T3BlbkFJ",
    ("?" + "a" * 1000) * 2000 + "?key=abc",
    "sk-" * 700_000,
    ("Basic " + "QUJD" * 5 + " ") * 50_000,
], ids=["long-run", "many-params", "glued-prefixes", "basic-spam"])
def test_the_scrubber_is_linear_on_hostile_text(text: str) -> None:
    import time

    t0 = time.perf_counter()
    scrub_text(text)
    assert time.perf_counter() - t0 < 2.0
