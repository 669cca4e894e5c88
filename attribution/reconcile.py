"""Reconciliation: the provider's own cost and usage exports against what tokentrail attributed.

Reads the Costs API (`/v1/organization/costs`) and Usage API (`/v1/organization/usage/completions`,
`/embeddings`) JSON pages — `{object: page, data: [{object: bucket, start_time, end_time,
results: [...]}], has_more, next_page}`, one page per file, a JSON array of pages, or JSON lines
— and a dashboard CSV export (columns found by name: a date, a cost, optionally model /
line_item and project). Compares per day and model (dated snapshots folded to their base
name), optionally per project: matched, over (tokentrail > provider), under, and the share of
the provider's spend tokentrail cannot see.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from ingest.errors import ConfigError, TokentrailError
from ingest.formats.base import as_float, as_int, parse_ts

from .query import connect

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def base_model(model: str | None) -> str:
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


def _pages(path: Path) -> list[dict[str, Any]]:
    text = read_text(path)
    try:
        doc = msgspec.json.decode(text)
        docs = doc if isinstance(doc, list) else [doc]
    except msgspec.DecodeError as whole_exc:
        docs = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                docs.append(msgspec.json.decode(line))
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


def read_costs(path: Path) -> dict[tuple[str, str, str], float]:
    """(day, model, project) -> USD, from Costs API pages or a dashboard CSV."""
    if path.suffix.lower() == ".csv":
        return _read_costs_csv(path)
    out: dict[tuple[str, str, str], float] = {}
    for page in _pages(path):
        for bucket in page["data"]:
            day = _day(bucket.get("start_time"))
            for r in bucket.get("results") or []:
                amount = r.get("amount") or {}
                value = as_float(amount.get("value") if isinstance(amount, dict) else amount, "amount.value") or 0.0
                line_item = str(r.get("line_item") or "")
                model = base_model(line_item.split(",")[0]) if line_item else "(all models)"
                key = (day, model, str(r.get("project_id") or "(all projects)"))
                out[key] = out.get(key, 0.0) + value
    return out


def _read_costs_csv(path: Path) -> dict[tuple[str, str, str], float]:
    rows = list(csv.DictReader(io.StringIO(read_text(path))))
    if not rows:
        raise ConfigError(f"{path}: empty CSV")
    cols = {c.lower().strip(): c for c in rows[0]}
    pick = lambda *names: next((cols[n] for n in names if n in cols), None)  # noqa: E731
    date_c = pick("date", "day", "start_time", "timestamp", "usage_date")
    cost_c = pick("cost", "amount", "amount_value", "cost_usd", "usd", "amount (usd)")
    if not date_c or not cost_c:
        raise ConfigError(f"{path}: the CSV needs a date column and a cost column; found {', '.join(rows[0])}")
    model_c, proj_c = pick("model", "line_item", "line item"), pick("project_id", "project")
    out: dict[tuple[str, str, str], float] = {}
    for line, r in enumerate(rows, start=2):
        if r.get(date_c) is None or r.get(cost_c) is None:
            raise ConfigError(f"{path}:{line}: too few columns")
        raw = r[date_c].strip()
        day = _day(raw) if raw.replace(".", "").isdigit() else raw[:10]
        model = base_model(r[model_c].split(",")[0]) if model_c and r[model_c] else "(all models)"
        key = (day, model, r[proj_c] if proj_c and r[proj_c] else "(all projects)")
        try:
            out[key] = out.get(key, 0.0) + (as_float(r[cost_c].replace("$", "").replace(",", ""), cost_c) or 0.0)
        except (TokentrailError, ValueError) as exc:
            raise ConfigError(f"{path}:{line}: {exc}") from None
    return out


def read_usage(path: Path) -> dict[tuple[str, str, str], dict[str, int]]:
    out: dict[tuple[str, str, str], dict[str, int]] = {}
    for page in _pages(path):
        for bucket in page["data"]:
            day = _day(bucket.get("start_time"))
            for r in bucket.get("results") or []:
                key = (day, base_model(r.get("model")) if r.get("model") else "(all models)",
                       str(r.get("project_id") or "(all projects)"))
                acc = out.setdefault(key, {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0})
                acc["requests"] += as_int(r.get("num_model_requests"), "num_model_requests") or 0
                acc["input_tokens"] += as_int(r.get("input_tokens"), "input_tokens") or 0
                acc["output_tokens"] += as_int(r.get("output_tokens"), "output_tokens") or 0
                acc["cached_input_tokens"] += as_int(r.get("input_cached_tokens"), "input_cached_tokens") or 0
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
    provider_usd: float = 0.0
    tokentrail_usd: float = 0.0
    matched: int = 0
    over: int = 0
    under: int = 0

    @property
    def unseen_share(self) -> float:
        unseen = sum(max(r["provider_usd"] - r["tokentrail_usd"], 0) for r in self.rows)
        return unseen / self.provider_usd if self.provider_usd else 0.0


def reconcile(root: str | Path, costs: Path, usage: Path | None = None, by_project: bool = False,
              rel_tolerance: float = 0.02, abs_tolerance: float = 0.0005) -> Reconciliation:
    provider = _checked(read_costs, costs)
    model_level = all(k[1] != "(all models)" for k in provider)
    project_level = by_project and all(k[2] != "(all projects)" for k in provider)
    fold = lambda k: (k[0], k[1] if model_level else "(all models)", k[2] if project_level else "(all projects)")  # noqa: E731
    prov: dict[tuple[str, str, str], float] = {}
    for k, v in provider.items():
        prov[fold(k)] = prov.get(fold(k), 0.0) + v
    con = connect(root)
    days = sorted({k[0] for k in prov})
    ours: dict[tuple[str, str, str], dict[str, float]] = {}
    if days:
        rows = con.execute("""
            SELECT CAST(CAST(ts AS DATE) AS VARCHAR), model, coalesce(project_id, '(unknown)'), sum(coalesce(cost_usd, 0)),
                   count(*), sum(coalesce(input_tokens, 0)), sum(coalesce(output_tokens, 0))
            FROM usage WHERE CAST(ts AS DATE) BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE) GROUP BY ALL
        """, [days[0], days[-1]]).fetchall()
        for day, model, project, cost, n, tin, tout in rows:
            k = fold((day, base_model(model), project))
            acc = ours.setdefault(k, {"usd": 0.0, "requests": 0, "input_tokens": 0, "output_tokens": 0})
            acc["usd"] += float(cost)
            acc["requests"] += n
            acc["input_tokens"] += tin
            acc["output_tokens"] += tout
    usage_rows = _checked(read_usage, usage) if usage else {}
    prov_usage: dict[tuple[str, str, str], dict[str, int]] = {}
    for k, counts in usage_rows.items():
        acc2 = prov_usage.setdefault(fold(k), {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0})
        for f in acc2:
            acc2[f] += counts[f]
    result = Reconciliation()
    for key in sorted(set(prov) | {k for k in ours if k[0] in set(days)}):
        p = prov.get(key, 0.0)
        o = ours.get(key, {}).get("usd", 0.0)
        diff = o - p
        tol = max(abs_tolerance, rel_tolerance * p)
        status = "matched" if abs(diff) <= tol else ("over" if diff > 0 else "under")
        setattr(result, status, getattr(result, status) + 1)
        row: dict[str, Any] = {"day": key[0], "model": key[1], "project_id": key[2], "provider_usd": round(p, 6),
                               "tokentrail_usd": round(o, 6), "diff_usd": round(diff, 6), "status": status}
        if usage:
            pu, ou = prov_usage.get(key, {}), ours.get(key, {})
            row.update({"provider_input_tokens": pu.get("input_tokens"), "tokentrail_input_tokens": ou.get("input_tokens"),
                        "provider_output_tokens": pu.get("output_tokens"), "tokentrail_output_tokens": ou.get("output_tokens")})
        result.rows.append(row)
        result.provider_usd += p
        result.tokentrail_usd += o
    return result
