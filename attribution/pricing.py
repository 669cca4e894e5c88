"""Cost columns from an effective-dated price table, in exact decimals.

Rates come from `genai-prices` (pydantic's maintained data, read from its bundled snapshot;
its network updater is never started), resolved once per distinct (model, day, service
tier, batch, regional) and joined onto a whole batch. The project's dated override layer
(`price_data.py`, `data/price_overrides.yaml`) adds what the library lacks: model names the
API returns, the days service tiers were really offered, per-call tool fees, the
data-residency uplift. On top of those, the Batch API discount (50%) for days the library
has no batch price, fine-tuned models priced by their base, and a user `--prices` file that
wins over everything.

Money never passes through a float: rates are `Decimal`, per-token rates are exact
`DECIMAL(38,18)` values, and each cost column is `DECIMAL(38,12)` (`COST_TYPE`), so sums are
exact and identical from run to run. A model with no price gets a NULL cost, never zero.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ingest.tokens import base_model
from ingest.tool_fees import TOOL_CALL_FIELDS

from .price_data import (
    BuiltinOverrides,
    PriceEntry,
    PriceFile,
    active,
    builtin_overrides,
    load_price_file,
)

__all__ = ["COST_COLUMNS", "COST_TYPE", "Pricer", "Rates", "cost_select", "load_price_file", "PriceFile", "PriceEntry"]

BATCH_DISCOUNT = Decimal("0.5")
COST_TYPE = pa.decimal128(38, 12)  # every cost column; DuckDB DECIMAL(38,12)
RATE_TYPE = pa.decimal128(38, 18)  # USD per token: any $/1M price with up to 12 decimals is exact
COST_SQL_TYPE = "DECIMAL(38,12)"
COST_COLUMNS = ("input_cost_usd", "cached_input_cost_usd", "output_cost_usd", "audio_cost_usd", "tool_cost_usd", "cost_usd")
# Optional call columns counting built-in tool calls (priced per call when the batch has them).
_LIB_TOOL_FIELDS = {"web_search": "web_searches_kcount", "file_search": "storage_searches_kcount"}
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_TIER_ALIASES = {"fast": "priority"}
STANDARD_TIERS = (None, "", "auto", "default", "standard")
_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1000)


def library_version() -> str:
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens (and per 1K tool calls) for one (model, day, tier, batch, regional).

    `tier_*` (long-context) rates apply to the whole call once input exceeds `tier_start` tokens.
    `factor` (batch discount, regional uplift) multiplies every token rate.
    """

    input: Decimal | None
    cached_input: Decimal | None
    output: Decimal | None
    audio_input: Decimal | None
    audio_output: Decimal | None
    factor: Decimal
    source: str | None
    price_model: str | None
    tier_start: int | None = None
    tier_input: Decimal | None = None
    tier_cached_input: Decimal | None = None
    tier_output: Decimal | None = None
    tool_fees: tuple[tuple[str, Decimal], ...] = ()  # (tool, USD per 1K calls)


NO_PRICE = Rates(None, None, None, None, None, Decimal(1), None, None)


def _d(v: Any) -> Decimal | None:
    if isinstance(v, Decimal):
        return v
    if isinstance(v, int):
        return Decimal(v)
    return None


def _split_tier(v: Any) -> tuple[Decimal | None, int | None, Decimal | None]:
    """A TieredPrices value -> (base, first tier start, first tier price); plain values pass through."""
    if v is None or isinstance(v, Decimal | int):
        return _d(v), None, None
    tiers = list(getattr(v, "tiers", []) or [])
    base = _d(getattr(v, "base", None))
    if not tiers:
        return base, None, None
    # genai-prices' OpenAI data has a single threshold (272K input tokens) where it has any.
    return base, int(tiers[0].start), _d(tiers[0].price)


def per_token(rate_mtok: Decimal | None, factor: Decimal) -> Decimal | None:
    """USD per 1M tokens -> USD per token, exactly (a decimal shift, never a float division)."""
    if rate_mtok is None:
        return None
    return (rate_mtok * factor / _MILLION).quantize(Decimal(1).scaleb(-18))


def canonical_tier(tier: str | None) -> str | None:
    t = (tier or "").strip().lower()
    if t in STANDARD_TIERS:
        return None
    return _TIER_ALIASES.get(t, t)


class Pricer:
    """Resolves and memoizes rates; `rates_table` builds the join table for a batch."""

    def __init__(self, overrides: PriceFile | None = None, override_name: str | None = None,
                 builtin: BuiltinOverrides | None = None) -> None:
        self.overrides = overrides
        self.override_name = override_name
        self.builtin = builtin if builtin is not None else builtin_overrides()
        self._memo: dict[tuple[str, date, str | None, bool, bool], Rates] = {}
        self._lib_source = library_version()
        self.unpriced: set[str] = set()

    def rates(self, model: str | None, day: date, tier: str | None, batch: bool, regional: bool = False) -> Rates:
        if not model:
            return NO_PRICE
        key = (model, day, tier, batch, regional)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._resolve(model, day, tier, batch)
            if hit.source is None:
                self.unpriced.add(model)
            elif regional:
                hit = self._regional(hit, model, day)
            self._memo[key] = hit
        return hit

    def resolve_name(self, model: str, day: date) -> str:
        """A name the API returns -> the name the price table knows (the builtin `aliases`)."""
        for a in self.builtin.aliases:
            if a.name == model and day >= a.effective_from:
                return a.model
        if model.startswith("gpt-35-"):  # Azure deployment-style names of gpt-3.5
            return "gpt-3.5-" + model[len("gpt-35-"):]
        return model

    def _resolve(self, model: str, day: date, tier: str | None, batch: bool) -> Rates:
        over = self._override(model, day, tier, batch)
        if over is not None:
            return over
        name = self.resolve_name(model, day)
        lib = self._library(name, day, tier, batch, note="" if name == model else f"+alias:{name}")
        if lib is None and name.lower().startswith("ft:"):
            base = self.resolve_name(base_model(name), day)
            lib = self._library(base, day, tier, batch, note="+ft-base")
        if lib is None:
            return NO_PRICE
        return self._with_builtin_fees(lib, name, day)

    def _override(self, model: str, day: date, tier: str | None, batch: bool) -> Rates | None:
        entries = [*(self.overrides.prices if self.overrides else []), *self.builtin.prices]
        if not entries:
            return None
        undated = _DATED.sub("", model)
        want_tier = canonical_tier(tier) or "default"
        best: PriceEntry | None = None
        for e in entries:
            if not (e.model in (model, undated) or ("*" in e.model and fnmatch.fnmatchcase(model, e.model))):
                continue
            if not active(day, e.effective_from, e.effective_until):
                continue
            if e.service_tier is not None and (canonical_tier(e.service_tier) or "default") != want_tier:
                continue
            if e.batch is not None and e.batch != batch:
                continue
            if best is None or (e.effective_from or date.min) > (best.effective_from or date.min):
                best = e
        if best is None:
            return None
        factor = BATCH_DISCOUNT if batch and best.batch is None else Decimal(1)
        name = self.override_name if self.overrides and best in self.overrides.prices else "builtin"
        return Rates(best.input, best.cached_input, best.output, best.audio_input, best.audio_output, factor,
                     f"override:{name}" + ("+batch50" if factor != 1 else ""), best.model)

    def tier_offered(self, tier: str, day: date) -> bool:
        return any(canonical_tier(t.service_tier) == tier and day >= t.effective_from for t in self.builtin.tiers_offered)

    def _library(self, model: str, day: date, tier: str | None, batch: bool, note: str = "") -> Rates | None:
        from genai_prices import data_snapshot

        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(model, None, "openai", None)
        except LookupError:
            return None
        ts = datetime.combine(day, time(12), tzinfo=UTC)
        standard = info.get_prices(ts)
        prices = standard
        tier = canonical_tier(tier)
        if tier is not None:
            prices, tier_note = self._tier_prices(info, ts, tier, standard)
            note += tier_note
        factor = Decimal(1)
        if batch:
            ctx = {"service_tier": tier} if tier else {}
            with_batch = info.get_prices(ts, {**ctx, "processing": "batch"})
            if with_batch.__dict__ != prices.__dict__:
                prices = with_batch
                note += "+batch"
            else:
                factor = BATCH_DISCOUNT
                note += "+batch50"
        inp, t_start, t_inp = _split_tier(prices.input_mtok)
        cached, _, t_cached = _split_tier(getattr(prices, "cache_read_mtok", None))
        out, t_start_o, t_out = _split_tier(prices.output_mtok)
        if inp is None and out is None:
            return None
        fees = tuple((tool, v) for tool, f in _LIB_TOOL_FIELDS.items()
                     if (v := _d(getattr(prices, f, None))) is not None)
        return Rates(
            inp, cached, out,
            _split_tier(getattr(prices, "input_audio_mtok", None))[0],
            _split_tier(getattr(prices, "output_audio_mtok", None))[0],
            factor, self._lib_source + note, info.id,
            t_start or t_start_o, t_inp, t_cached, t_out, fees,
        )

    def _tier_prices(self, info: Any, ts: datetime, tier: str, standard: Any) -> tuple[Any, str]:
        """The library's prices for `tier` on `ts`, corrected for tiers it dates too late.

        When the library's variant starts after `ts` but the tier was already offered (builtin
        `tiers_offered`), the variant's rates apply from the day it was offered: taken as they
        are when the standard rates have not changed since, else scaled by the variant's ratio
        to the standard rates on its start day (rounded to 1e-6 USD per 1M tokens).
        """
        names = (tier, "fast") if tier == "priority" else (tier,)
        variant = next((v for v in info.price_variants or () if v.when.get("service_tier") in names), None)
        if variant is None:
            return standard, f"+{tier}-unpriced"
        if variant.constraint is None or variant.constraint.active(ts):
            return info.get_prices(ts, {"service_tier": variant.when["service_tier"]}), f"+{tier}"
        start = getattr(variant.constraint, "start_date", None)
        if start is None or not self.tier_offered(tier, ts.date()):
            return standard, f"+{tier}-not-offered"
        start_ts = datetime.combine(start, time(12), tzinfo=UTC)
        at_start = info.get_prices(start_ts, {"service_tier": variant.when["service_tier"]})
        std_at_start = info.get_prices(start_ts)
        if std_at_start.__dict__ == standard.__dict__:
            return at_start, f"+{tier}(offered)"
        scaled = replace_prices(standard, std_at_start, at_start)
        return scaled, f"+{tier}(offered,ratio)"

    def _with_builtin_fees(self, r: Rates, model: str, day: date) -> Rates:
        fees = dict(r.tool_fees)
        for f in self.builtin.call_fees:
            if f.tool not in fees and fnmatch.fnmatchcase(model, f.models) and active(day, f.effective_from, f.effective_until):
                fees[f.tool] = f.usd_per_1k_calls
        return replace(r, tool_fees=tuple(sorted(fees.items())))

    def _regional(self, r: Rates, model: str, day: date) -> Rates:
        name = r.price_model or model
        for u in self.builtin.regional_uplift:
            if (fnmatch.fnmatchcase(model, u.models) or fnmatch.fnmatchcase(name, u.models)) \
                    and active(day, u.effective_from, u.effective_until):
                return replace(r, factor=r.factor * u.factor, source=f"{r.source}+regional{u.factor}")
        return r

    def rates_table(self, keys: list[tuple[Any, ...]]) -> pa.Table:
        """keys: (model, day, service_tier, batch, regional) rows -> one row of per-token rates each."""
        names = ["r_model", "r_day", "r_tier", "r_batch", "r_regional", "rate_input", "rate_cached_input", "rate_output",
                 "rate_audio_input", "rate_audio_output", "price_source", "price_model", "tier_start",
                 "tier_rate_input", "tier_rate_cached_input", "tier_rate_output",
                 *(f"fee_{t}" for t in TOOL_CALL_FIELDS)]
        cols: dict[str, list[Any]] = {k: [] for k in names}
        for key in keys:
            model, day, tier, batch = key[:4]
            regional = bool(key[4]) if len(key) > 4 else False
            r = self.rates(model, day, tier, bool(batch), regional)
            f = r.factor
            fees = dict(r.tool_fees)
            row = [model, day, tier, bool(batch), regional,
                   per_token(r.input, f), per_token(r.cached_input, f), per_token(r.output, f),
                   per_token(r.audio_input, f), per_token(r.audio_output, f), r.source, r.price_model, r.tier_start,
                   per_token(r.tier_input, f), per_token(r.tier_cached_input, f), per_token(r.tier_output, f),
                   *((fees[t] / _THOUSAND).quantize(Decimal(1).scaleb(-18)) if t in fees and r.source else None
                     for t in TOOL_CALL_FIELDS)]
            for k, v in zip(names, row, strict=True):
                cols[k].append(v)
        types = {"r_model": pa.string(), "r_day": pa.date32(), "r_tier": pa.string(), "r_batch": pa.bool_(),
                 "r_regional": pa.bool_(), "price_source": pa.string(), "price_model": pa.string(), "tier_start": pa.int64()}
        schema = pa.schema([(k, types.get(k, RATE_TYPE)) for k in names])
        return pa.table(cols, schema=schema)


def replace_prices(standard: Any, std_at_start: Any, at_start: Any) -> Any:
    """`standard` with each plain rate scaled by at_start/std_at_start (the tier's ratio)."""
    from copy import copy

    out = copy(standard)
    for key, value in standard.__dict__.items():
        a, b = at_start.__dict__.get(key), std_at_start.__dict__.get(key)
        if isinstance(value, Decimal) and isinstance(a, Decimal) and isinstance(b, Decimal) and b:
            out.__dict__[key] = (value * a / b).quantize(Decimal("0.000001"))
    return out


def regional_sql(column: str = "metadata") -> str:
    """True for calls sent to a data-residency endpoint (`eu.api.openai.com`, …), from the logged host."""
    return (f"coalesce(regexp_matches(coalesce({column}['host'], {column}['openai_host'], ''), "
            r"'^[a-z]{2}\.api\.openai\.com(:\d+)?$'), false)")


def _tool_count(tool: str, col: str, columns: tuple[str, ...] | list[str]) -> str:
    """SQL for one call's count of a per-call tool: the batch's count column where it has one, else
    the count rows from before those columns carry in `metadata` (`ingest.tool_fees.TOOL_CALL_KEYS`),
    else 0."""
    from ingest.tool_fees import TOOL_CALL_KEYS

    parts = [f"b.{col}"] if col in columns else []
    if "metadata" in columns:
        parts.append(f"TRY_CAST(b.metadata['{TOOL_CALL_KEYS[tool]}'] AS BIGINT)")
    return f"coalesce({', '.join(parts)}, 0)"


_PARTS = ("input_cost_usd", "cached_input_cost_usd", "output_cost_usd", "audio_cost_usd", "tool_cost_usd")


def cost_select(batch: str, rates: str, columns: tuple[str, ...] | list[str] = (), ranged: bool = False) -> str:
    """SQL selecting every column of `batch` plus the exact cost columns, joined to `rates`.

    `columns` are the batch's column names: optional tool-call count columns present there
    (`TOOL_CALL_FIELDS`) are priced per call. Rates are USD per token (DECIMAL(38,18)); a token
    count times a rate is exact, and each part is cast once to DECIMAL(38,12). `ranged`: the rates
    table has day ranges [`r_from`, `r_until`) instead of one row per `r_day` (portable views).
    """
    day = ("(r.r_from IS NULL OR CAST(b.ts AS DATE) >= r.r_from) AND (r.r_until IS NULL OR CAST(b.ts AS DATE) < r.r_until)"
           if ranged else "r.r_day = CAST(b.ts AS DATE)")
    t = COST_SQL_TYPE
    # Narrow operand types keep every product exact in every engine: DECIMAL(12,0) tokens (up to 10^12 per
    # call) times DECIMAL(24,18) rates (up to $10^6 per token) is DECIMAL(37,18) in DuckDB, Spark and Trino
    # alike; wider operands make Spark round products to 6 decimals (its precision-loss rule).
    tok = "CAST(greatest({}, 0) AS DECIMAL(12,0))"
    rate = "CAST({} AS DECIMAL(24,18))"
    over = "r.tier_start IS NOT NULL AND b.input_tokens > r.tier_start"
    tool_terms = [f"{tok.format(_tool_count(tool, col, columns))} * {rate.format(f'coalesce(r.fee_{tool}, 0)')}"
                  for tool, col in TOOL_CALL_FIELDS.items() if col in columns or "metadata" in columns]
    tool_sum = " + ".join(tool_terms) if tool_terms else "0"
    ri = rate.format(f"CASE WHEN {over} THEN r.tier_rate_input ELSE coalesce(r.rate_input, 0) END")
    rc = rate.format(f"CASE WHEN {over} THEN coalesce(r.tier_rate_cached_input, r.tier_rate_input) "
                     f"ELSE coalesce(r.rate_cached_input, r.rate_input, 0) END")
    ro = rate.format(f"CASE WHEN {over} THEN r.tier_rate_output ELSE coalesce(r.rate_output, 0) END")
    return f"""
    WITH j AS (
        SELECT b.*, r.price_source, r.price_model,
          {ri} AS _ri,
          {rc} AS _rc,
          {ro} AS _ro,
          {rate.format("coalesce(r.rate_audio_input, r.rate_input, 0)")} AS _rai,
          {rate.format("coalesce(r.rate_audio_output, r.rate_output, 0)")} AS _rao,
          CASE WHEN r.price_source IS NULL THEN NULL ELSE CAST({tool_sum} AS {t}) END AS _tool
        FROM {batch} b LEFT JOIN {rates} r
          ON r.r_model IS NOT DISTINCT FROM b.model AND {day}
         AND r.r_tier IS NOT DISTINCT FROM b.service_tier AND r.r_batch = coalesce(b.batch, false)
         AND r.r_regional = {regional_sql("b.metadata")}
    ), c AS (
        SELECT * EXCLUDE (_ri, _rc, _ro, _rai, _rao, _tool),
          CASE WHEN price_source IS NULL THEN NULL ELSE CAST(
            {tok.format("coalesce(input_tokens, 0) - coalesce(cached_input_tokens, 0) - coalesce(audio_input_tokens, 0)")}
            * _ri AS {t}) END AS input_cost_usd,
          CASE WHEN price_source IS NULL THEN NULL ELSE CAST(
            {tok.format("coalesce(cached_input_tokens, 0)")} * _rc AS {t}) END AS cached_input_cost_usd,
          CASE WHEN price_source IS NULL THEN NULL ELSE CAST(
            {tok.format("coalesce(output_tokens, 0) - coalesce(audio_output_tokens, 0)")} * _ro AS {t}) END AS output_cost_usd,
          CASE WHEN price_source IS NULL THEN NULL ELSE CAST(
            {tok.format("coalesce(audio_input_tokens, 0)")} * _rai
            + {tok.format("coalesce(audio_output_tokens, 0)")} * _rao AS {t}) END AS audio_cost_usd,
          _tool AS tool_cost_usd
        FROM j
    )
    SELECT *, CAST({" + ".join(f"CAST({c} AS DECIMAL(30,12))" for c in _PARTS)} AS {t}) AS cost_usd
    FROM c
    """
