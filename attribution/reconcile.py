"""Reconciliation: the provider's own cost and usage exports against what tokentrail attributed.

Reads the Costs API (`/v1/organization/costs`) and Usage API (`/v1/organization/usage/completions`,
`/embeddings`) JSON pages — `{object: page, data: [{object: bucket, start_time, end_time,
results: [...]}], has_more, next_page}`, one page per file, a JSON array of pages, or JSON lines
— and a dashboard CSV export (columns found by name: a date, a cost, optionally model /
line_item and project). Compares per day and model (dated snapshots folded to their base
name), optionally per project: matched, over (tokentrail > provider), under, and the share of
the provider's spend tokentrail cannot see. Money is Decimal throughout (the provider's amounts
as written, tokentrail's DECIMAL sums), so outputs carry exact digits and no float artefacts.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from ingest.errors import ConfigError, RecordError, TokentrailError
from ingest.formats.coerce import as_float, as_int, parse_ts

from .query import WarehouseRef, connect

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def undated_model(model: str | None) -> str:
    """`gpt-4o-2024-08-06` -> `gpt-4o`: how the provider's cost export names a line item (fine-tunes kept whole)."""
    if not model:
        return "(unknown)"
    m = model.strip().lower()
    if m.startswith("ft:"):
        return m  # fine-tunes are their own line items
    return _DATED.sub("", m)


def read_text(path: Path) -> str:
    """UTF-8 text, or a ConfigError naming the file and the line of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          f"save the export as UTF-8") from None


def _line_of(text: str, exc: Exception) -> int:
    m = re.search(r"byte (\d+)", str(exc))
    return text.encode()[: int(m.group(1))].count(b"\n") + 1 if m else 1


def _pages(path: Path, exact: bool = False) -> list[dict[str, Any]]:
    """The pages of an API export; `exact`: JSON numbers with a fraction as the Decimal written (amounts)."""
    text = read_text(path)
    decoder = msgspec.json.Decoder(float_hook=Decimal) if exact else msgspec.json.Decoder()
    try:
        doc = decoder.decode(text)
        docs = doc if isinstance(doc, list) else [doc]
    except msgspec.DecodeError as whole_exc:
        docs = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                docs.append(decoder.decode(line))
            except msgspec.DecodeError as exc:
                where = _line_of(text, whole_exc) if n == 1 else n
                reason = whole_exc if n == 1 else exc
                raise ConfigError(f"{path}:{where}: not JSON ({reason}); expected a Costs/Usage API page, an array "
                                  f"of pages, or JSON lines") from None
    pages = [d for d in docs if isinstance(d, dict) and isinstance(d.get("data"), list)]
    if not pages:
        raise ConfigError(f"{path}:1: no `data` buckets found; expected the Costs or Usage API's page JSON")
    for page in pages:
        for bucket in page["data"]:
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results") or [], list):
                raise ConfigError(f"{path}:1: a bucket in `data` is not an object with a `results` list: {str(bucket)[:80]}")
    return pages


def _day(ts: Any) -> str:
    us = parse_ts(ts, "start_time", unit="s")
    assert us is not None
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d")


ALL_MODELS, ALL_PROJECTS, ALL_KEYS = "(all models)", "(all projects)", "(all keys)"
Key = tuple[str, str, str, str]  # day, model, project, key


def read_key_ids(path: Path | None) -> dict[str, str]:
    """Admin API key list pages (`data[]: {id: key_…, redacted_value: "sk-…abcd"}`) -> key id -> `sk-…abcd`,
    the display form tokentrail stores, so Costs/Usage results grouped by `api_key_id` join onto logs."""
    if path is None:
        return {}
    out = {}
    for page in _pages(path):
        for k in page["data"]:
            if isinstance(k, dict) and k.get("id") and isinstance(k.get("redacted_value"), str):
                out[str(k["id"])] = "sk-…" + k["redacted_value"][-4:]
    return out


def _money(value: Any, field_name: str) -> Decimal:
    """An export's amount as the Decimal it was written as (every digit of `12345678.123456789012`; a float
    never comes between), so a sum and a difference stay exact."""
    if isinstance(value, str) and value.strip():
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise RecordError(f"{field_name}={value[:40]!r} is not a number") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise RecordError(f"{field_name} is not finite")
        return value
    return Decimal(repr(as_float(value, field_name) or 0.0))  # an int, None, or a type as_float names


def _key(r: dict[str, Any], keys: dict[str, str]) -> str:
    kid = r.get("api_key_id")
    return keys.get(str(kid), f"{kid} (unmapped)") if kid else ALL_KEYS


def read_costs(path: Path, keys: dict[str, str] | None = None) -> dict[Key, dict[str, Decimal]]:
    """(day, model, project, key) -> {usd, tokens}, from Costs API pages or a dashboard CSV.

    Costs API results carry `amount.value`, and, as grouped, `line_item` ("gpt-4o-2024-08-06, input"),
    `project_id`, `api_key_id`, and `quantity` with `quantity_unit` (tokens are summed when the unit
    says tokens)."""
    if path.suffix.lower() == ".csv":
        return {k: {"usd": v, "tokens": Decimal(0)} for k, v in _read_costs_csv(path).items()}
    out: dict[Key, dict[str, Decimal]] = {}
    for page in _pages(path, exact=True):
        for bucket in page["data"]:
            day = _day(bucket.get("start_time"))
            for r in bucket.get("results") or []:
                amount = r.get("amount") or {}
                value = _money(amount.get("value") if isinstance(amount, dict) else amount, "amount.value")
                line_item = str(r.get("line_item") or "")
                model = undated_model(line_item.split(",")[0]) if line_item else ALL_MODELS
                key = (day, model, str(r.get("project_id") or ALL_PROJECTS), _key(r, keys or {}))
                acc = out.setdefault(key, {"usd": Decimal(0), "tokens": Decimal(0)})
                acc["usd"] += value
                if "token" in str(r.get("quantity_unit") or "").lower():
                    acc["tokens"] += _money(r.get("quantity"), "quantity")
    return out


def _read_costs_csv(path: Path) -> dict[Key, Decimal]:
    rows = list(csv.DictReader(io.StringIO(read_text(path))))
    if not rows:
        raise ConfigError(f"{path}: empty CSV")
    cols = {c.lower().strip(): c for c in rows[0]}

    def pick(*names: str) -> str | None:
        return next((cols[n] for n in names if n in cols), None)

    date_c = pick("date", "day", "start_time", "timestamp", "usage_date")
    cost_c = pick("cost", "amount", "amount_value", "cost_usd", "usd", "amount (usd)")
    if not date_c or not cost_c:
        raise ConfigError(f"{path}: the CSV needs a date column and a cost column; found {', '.join(rows[0])}")
    model_c, proj_c = pick("model", "line_item", "line item"), pick("project_id", "project")
    out: dict[Key, Decimal] = {}
    for line, r in enumerate(rows, start=2):
        if r.get(date_c) is None or r.get(cost_c) is None:
            raise ConfigError(f"{path}:{line}: too few columns")
        raw = r[date_c].strip()
        day = _day(raw) if raw.replace(".", "").isdigit() else raw[:10]
        model = undated_model(r[model_c].split(",")[0]) if model_c and r[model_c] else ALL_MODELS
        key = (day, model, r[proj_c] if proj_c and r[proj_c] else ALL_PROJECTS, ALL_KEYS)
        try:
            out[key] = out.get(key, Decimal(0)) + _money(r[cost_c].replace("$", "").replace(",", ""), cost_c)
        except (TokentrailError, ValueError) as exc:
            raise ConfigError(f"{path}:{line}: {exc}") from None
    return out


USAGE_FIELDS = {"requests": "num_model_requests", "input_tokens": "input_tokens",
                "cached_input_tokens": "input_cached_tokens", "output_tokens": "output_tokens"}


def read_usage(path: Path, keys: dict[str, str] | None = None) -> dict[Key, dict[str, int]]:
    """Usage API completions pages. Its `input_tokens` counts every input token (cached and cache-write
    ones, text, audio and image), as a log's `prompt_tokens` does; the split fields are kept as given."""
    out: dict[Key, dict[str, int]] = {}
    for page in _pages(path):
        for bucket in page["data"]:
            day = _day(bucket.get("start_time"))
            for r in bucket.get("results") or []:
                key = (day, undated_model(r.get("model")) if r.get("model") else ALL_MODELS,
                       str(r.get("project_id") or ALL_PROJECTS), _key(r, keys or {}))
                acc = out.setdefault(key, dict.fromkeys(USAGE_FIELDS, 0))
                for ours, theirs in USAGE_FIELDS.items():
                    acc[ours] += as_int(r.get(theirs), theirs) or 0
    return out


def _checked(reader: Any, path: Path) -> Any:
    """A malformed export is a clear `FILE:LINE: reason`, never a traceback."""
    try:
        return reader(path)
    except ConfigError:
        raise
    except (TokentrailError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ConfigError(f"{path}:1: unexpected shape for a Costs/Usage API export: {exc}") from None


@dataclass
class Reconciliation:
    rows: list[dict[str, Any]] = field(default_factory=list)
    provider_usd: Decimal = Decimal(0)
    tokentrail_usd: Decimal = Decimal(0)
    matched: int = 0
    over: int = 0
    under: int = 0

    @property
    def unseen_share(self) -> float:
        unseen = sum((max(r["provider_usd"] - r["tokentrail_usd"], Decimal(0)) for r in self.rows), Decimal(0))
        return float(unseen / self.provider_usd) if self.provider_usd else 0.0


def _normal(d: Decimal) -> Decimal:
    """Without trailing zeros (`0.000039`, not `0.000039000000`), never with a positive exponent."""
    d = d.normalize()
    return d.quantize(Decimal(1)) if d.as_tuple().exponent > 0 else d  # type: ignore[operator]


def reconcile(root: WarehouseRef, costs: Path, usage: Path | None = None, by_project: bool = False,
              rel_tolerance: float = 0.02, abs_tolerance: float = 0.0005, keys_file: Path | None = None) -> Reconciliation:
    """Join the provider's figures and tokentrail's on day x model x project x key, at the finest grain
    every provider row has (an export without `line_item` compares per day, one without `api_key_id`
    across keys); `by_project` asks for the project level when the export has it."""
    keys = _checked(read_key_ids, keys_file) if keys_file else {}
    provider = _checked(lambda p: read_costs(p, keys), costs)
    model_level = all(k[1] != ALL_MODELS for k in provider)
    project_level = by_project and all(k[2] != ALL_PROJECTS for k in provider)
    key_level = bool(keys) and all(k[3] != ALL_KEYS for k in provider)

    def fold(k: Key) -> Key:
        return (k[0], k[1] if model_level else ALL_MODELS, k[2] if project_level else ALL_PROJECTS,
                k[3] if key_level else ALL_KEYS)

    prov: dict[Key, dict[str, Decimal]] = {}
    for k, v in provider.items():
        acc = prov.setdefault(fold(k), {"usd": Decimal(0), "tokens": Decimal(0)})
        acc["usd"] += v["usd"]
        acc["tokens"] += v["tokens"]
    con = connect(root)
    days = sorted({k[0] for k in prov})
    ours: dict[Key, dict[str, Any]] = {}
    if days:
        rows = con.execute("""
            SELECT CAST(CAST(ts AS DATE) AS VARCHAR), model, coalesce(project_id, '(unknown)'),
                   coalesce(api_key_id, '(unknown)'), sum(coalesce(cost_usd, 0)), count(*),
                   sum(coalesce(input_tokens, 0)), sum(coalesce(cached_input_tokens, 0)), sum(coalesce(output_tokens, 0))
            FROM usage WHERE CAST(ts AS DATE) BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE) GROUP BY ALL
        """, [days[0], days[-1]]).fetchall()
        for day, model, project, key_id, cost, n, tin, tcached, tout in rows:
            acc = ours.setdefault(fold((day, undated_model(model), project, key_id)),
                                  {"usd": Decimal(0), "requests": 0, "input_tokens": 0, "cached_input_tokens": 0,
                                   "output_tokens": 0})
            acc["usd"] += cost if isinstance(cost, Decimal) else Decimal(repr(float(cost)))
            acc["requests"] += n
            acc["input_tokens"] += tin
            acc["cached_input_tokens"] += tcached
            acc["output_tokens"] += tout
    usage_rows = _checked(lambda p: read_usage(p, keys), usage) if usage else {}
    prov_usage: dict[Key, dict[str, int]] = {}
    for k, counts in usage_rows.items():
        acc2 = prov_usage.setdefault(fold(k), dict.fromkeys(USAGE_FIELDS, 0))
        for f in acc2:
            acc2[f] += counts[f]
    result = Reconciliation()
    rel, absolute = Decimal(repr(rel_tolerance)), Decimal(repr(abs_tolerance))
    for key in sorted(set(prov) | {k for k in ours if k[0] in set(days)}):
        p = _normal(prov.get(key, {}).get("usd", Decimal(0)))
        o = _normal(ours.get(key, {}).get("usd", Decimal(0)))
        diff = o - p
        tol = max(absolute, rel * p)
        status = "matched" if abs(diff) <= tol else ("over" if diff > 0 else "under")
        setattr(result, status, getattr(result, status) + 1)
        row: dict[str, Any] = {"day": key[0], "model": key[1], "project_id": key[2]}
        if key_level:
            row["api_key"] = key[3]
        row.update({"provider_usd": p, "tokentrail_usd": o, "diff_usd": diff,
                    "unseen_share": round(float(max(p - o, Decimal(0)) / p), 4) if p else 0.0, "status": status})
        if usage:
            pu, ou = prov_usage.get(key, {}), ours.get(key, {})
            for f in ("input_tokens", "cached_input_tokens", "output_tokens"):
                row[f"provider_{f}"] = pu.get(f)
                row[f"tokentrail_{f}"] = int(ou[f]) if f in ou else None
        result.rows.append(row)
        result.provider_usd += p
        result.tokentrail_usd += o
    return result
