"""Cost columns from an effective-dated price table.

Rates come from `genai-prices` (pydantic's maintained data, read from its bundled snapshot;
its network updater is never started), resolved once per distinct (model, day, service
tier, batch) and joined onto a whole batch. What the library lacks is added here:
  * the Batch API discount (50% of input and output) for days the library has no batch price;
  * fine-tuned models (`ft:BASE:org::id`) priced by their base when the library has no entry;
  * a user price file (`--prices FILE`) that wins over the library.
A model with no price gets a NULL cost, never zero.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ingest.tokens import base_model
from ingest.yamlerrors import load_yaml_model

BATCH_DISCOUNT = 0.5
RATE_FIELDS = ("input", "cached_input", "output", "audio_input", "audio_output")
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def library_version() -> str:
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


class PriceEntry(BaseModel):
    """USD per 1M tokens. `model` is an exact name, a name without its date suffix, or a glob."""

    model_config = ConfigDict(extra="forbid")
    model: str
    effective_from: date | None = None
    effective_until: date | None = None
    service_tier: str | None = None
    batch: bool | None = None
    input: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output: float = Field(default=0, ge=0)
    audio_input: float | None = Field(default=None, ge=0)
    audio_output: float | None = Field(default=None, ge=0)


class PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prices: list[PriceEntry]


def load_price_file(path: str | Path) -> tuple[PriceFile, str]:
    model, _ = load_yaml_model(path, PriceFile, "price file", "a price file is a YAML mapping with `prices:`")
    return model, Path(path).name


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-1M-token rates for one (model, day, tier, batch); tier_* apply above tier_start input tokens."""

    input: float | None
    cached_input: float | None
    output: float | None
    audio_input: float | None
    audio_output: float | None
    factor: float
    source: str | None
    price_model: str | None
    tier_start: int | None = None
    tier_input: float | None = None
    tier_cached_input: float | None = None
    tier_output: float | None = None


NO_PRICE = Rates(None, None, None, None, None, 1.0, None, None)


def _f(v: Any) -> float | None:
    return float(v) if isinstance(v, Decimal | int | float) else None


def _split_tier(v: Any) -> tuple[float | None, int | None, float | None]:
    """A TieredPrices value -> (base, first tier start, first tier price); plain values pass through."""
    if v is None or isinstance(v, Decimal | int | float):
        return _f(v), None, None
    tiers = list(getattr(v, "tiers", []) or [])
    base = _f(getattr(v, "base", None))
    if not tiers:
        return base, None, None
    # genai-prices' OpenAI data has a single threshold (272K input tokens) where it has any.
    return base, int(tiers[0].start), _f(tiers[0].price)


class Pricer:
    """Resolves and memoizes rates; `rates_table` builds the join table for a batch."""

    def __init__(self, overrides: PriceFile | None = None, override_name: str | None = None) -> None:
        self.overrides = overrides
        self.override_name = override_name
        self._memo: dict[tuple[str, date, str | None, bool], Rates] = {}
        self._lib_source = library_version()
        self.unpriced: set[str] = set()

    def rates(self, model: str | None, day: date, tier: str | None, batch: bool) -> Rates:
        if not model:
            return NO_PRICE
        key = (model, day, tier, batch)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._resolve(model, day, tier, batch)
            if hit.source is None:
                self.unpriced.add(model)
        return hit

    def _resolve(self, model: str, day: date, tier: str | None, batch: bool) -> Rates:
        over = self._override(model, day, tier, batch)
        if over is not None:
            return over
        lib = self._library(model, day, tier, batch)
        if lib is None and model.lower().startswith("ft:"):
            lib = self._library(base_model(model), day, tier, batch, note="+ft-base")
        return lib or NO_PRICE

    def _override(self, model: str, day: date, tier: str | None, batch: bool) -> Rates | None:
        if self.overrides is None:
            return None
        undated = _DATED.sub("", model)
        best: PriceEntry | None = None
        for e in self.overrides.prices:
            if not (e.model in (model, undated) or ("*" in e.model and fnmatch.fnmatchcase(model, e.model))):
                continue
            if e.effective_from and day < e.effective_from or e.effective_until and day >= e.effective_until:
                continue
            if e.service_tier is not None and e.service_tier != (tier or "default"):
                continue
            if e.batch is not None and e.batch != batch:
                continue
            if best is None or (e.effective_from or date.min) >= (best.effective_from or date.min):
                best = e
        if best is None:
            return None
        factor = BATCH_DISCOUNT if batch and best.batch is None else 1.0
        return Rates(best.input, best.cached_input, best.output, best.audio_input, best.audio_output, factor,
                     f"override:{self.override_name}" + ("+batch50" if factor != 1.0 else ""), best.model)

    def _library(self, model: str, day: date, tier: str | None, batch: bool, note: str = "") -> Rates | None:
        from genai_prices import data_snapshot

        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(model, None, "openai", None)
        except LookupError:
            return None
        ts = datetime.combine(day, time(12), tzinfo=UTC)
        ctx: dict[str, str] = {}
        if tier and tier not in ("default", "auto"):
            ctx["service_tier"] = tier
        standard = info.get_prices(ts, ctx or None)
        factor = 1.0
        prices = standard
        if batch:
            with_batch = info.get_prices(ts, {**ctx, "processing": "batch"})
            if with_batch.__dict__ != standard.__dict__:
                prices = with_batch
                note += "+batch"
            else:
                factor = BATCH_DISCOUNT
                note += "+batch50"
        inp, t_start, t_inp = _split_tier(prices.input_mtok)
        cached, _, t_cached = _split_tier(prices.cache_read_mtok)
        out, t_start_o, t_out = _split_tier(prices.output_mtok)
        if inp is None and out is None:
            return None
        return Rates(
            inp, cached, out,
            _split_tier(getattr(prices, "input_audio_mtok", None))[0],
            _split_tier(getattr(prices, "output_audio_mtok", None))[0],
            factor, self._lib_source + note, info.id,
            t_start or t_start_o, t_inp, t_cached, t_out,
        )

    def rates_table(self, keys: list[tuple[Any, ...]]) -> pa.Table:
        """keys: (model, day, service_tier, batch) rows -> one rates row each."""
        cols: dict[str, list[Any]] = {k: [] for k in (
            "r_model", "r_day", "r_tier", "r_batch", "rate_input", "rate_cached_input", "rate_output",
            "rate_audio_input", "rate_audio_output", "rate_factor", "price_source", "price_model",
            "tier_start", "tier_rate_input", "tier_rate_cached_input", "tier_rate_output")}
        for model, day, tier, batch in keys:
            r = self.rates(model, day, tier, bool(batch))
            for k, v in zip(cols, (model, day, tier, bool(batch), r.input, r.cached_input, r.output, r.audio_input,
                                   r.audio_output, r.factor, r.source, r.price_model, r.tier_start, r.tier_input,
                                   r.tier_cached_input, r.tier_output), strict=True):
                cols[k].append(v)
        schema = pa.schema([
            ("r_model", pa.string()), ("r_day", pa.date32()), ("r_tier", pa.string()), ("r_batch", pa.bool_()),
            ("rate_input", pa.float64()), ("rate_cached_input", pa.float64()), ("rate_output", pa.float64()),
            ("rate_audio_input", pa.float64()), ("rate_audio_output", pa.float64()), ("rate_factor", pa.float64()),
            ("price_source", pa.string()), ("price_model", pa.string()), ("tier_start", pa.int64()),
            ("tier_rate_input", pa.float64()), ("tier_rate_cached_input", pa.float64()), ("tier_rate_output", pa.float64()),
        ])
        return pa.table(cols, schema=schema)


COST_COLUMNS = ("input_cost_usd", "cached_input_cost_usd", "output_cost_usd", "audio_cost_usd", "cost_usd")

# Rates per 1M tokens; the tiered rate applies to all tokens once input exceeds tier_start.
# Cached tokens are part of input_tokens and billed only at the cached rate; reasoning tokens
# are part of output_tokens and billed once, as output.
COST_SQL = """
    , CASE WHEN r.price_source IS NULL THEN NULL
           WHEN r.tier_start IS NOT NULL AND b.input_tokens > r.tier_start THEN r.tier_rate_input
           ELSE coalesce(r.rate_input, 0) END AS _ri
    , CASE WHEN r.price_source IS NULL THEN NULL
           WHEN r.tier_start IS NOT NULL AND b.input_tokens > r.tier_start
           THEN coalesce(r.tier_rate_cached_input, r.tier_rate_input)
           ELSE coalesce(r.rate_cached_input, r.rate_input, 0) END AS _rc
    , CASE WHEN r.price_source IS NULL THEN NULL
           WHEN r.tier_start IS NOT NULL AND b.input_tokens > r.tier_start THEN r.tier_rate_output
           ELSE coalesce(r.rate_output, 0) END AS _ro
"""


def cost_select(batch: str, rates: str) -> str:
    """SQL selecting every column of `batch` plus the cost columns, joined to `rates`."""
    return f"""
    WITH j AS (
        SELECT b.*, r.rate_audio_input AS _rai, r.rate_audio_output AS _rao, r.rate_factor AS _f,
               r.price_source, r.price_model {COST_SQL}
        FROM {batch} b LEFT JOIN {rates} r
          ON r.r_model IS NOT DISTINCT FROM b.model AND r.r_day = CAST(b.ts AS DATE)
         AND r.r_tier IS NOT DISTINCT FROM b.service_tier AND r.r_batch = coalesce(b.batch, false)
    ), c AS (
        SELECT * EXCLUDE (_ri, _rc, _ro, _rai, _rao, _f),
          (greatest(coalesce(input_tokens, 0) - coalesce(cached_input_tokens, 0) - coalesce(audio_input_tokens, 0), 0)
             * _ri / 1e6 * _f) AS input_cost_usd,
          (coalesce(cached_input_tokens, 0) * _rc / 1e6 * _f) AS cached_input_cost_usd,
          (greatest(coalesce(output_tokens, 0) - coalesce(audio_output_tokens, 0), 0) * _ro / 1e6 * _f) AS output_cost_usd,
          ((coalesce(audio_input_tokens, 0) * coalesce(_rai, _ri) + coalesce(audio_output_tokens, 0) * coalesce(_rao, _ro))
             / 1e6 * _f) AS audio_cost_usd
        FROM j
    )
    SELECT *, input_cost_usd + cached_input_cost_usd + output_cost_usd + audio_cost_usd AS cost_usd FROM c
    """
