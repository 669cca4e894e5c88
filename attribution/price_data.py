"""The price data tokentrail adds to genai-prices, and the user's `--prices` file.

genai-prices stays the base table. Where it is wrong or silent for a day that matters, the
project's own data file (`attribution/data/price_overrides.yaml`) corrects it, every entry
with its public source and the day it takes effect:
  * `aliases`: model names the API returns that the library does not know (`davinci:2023-07-21-v2`);
  * `tiers_offered`: the day a service tier was really offered (the library dates flex and
    priority from when it added them, 2026-10-12, though calls were billed at them since 2025);
  * `call_fees`: per-call fees of built-in tools (web search, file search, code interpreter);
  * `regional_uplift`: the data-residency surcharge on regional endpoints;
  * `prices`: whole price rows for models the library lacks.
Money is `Decimal` from the file to the warehouse: YAML numbers are read as their text.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ingest.yamlerrors import load_yaml_model

_NONNEG = Field(ge=0)


class PriceEntry(BaseModel):
    """USD per 1M tokens. `model` is an exact name, a name without its date suffix, or a glob."""

    model_config = ConfigDict(extra="forbid")
    model: str
    effective_from: date | None = None
    effective_until: date | None = None
    service_tier: str | None = None
    batch: bool | None = None
    input: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    output: Decimal = Field(default=Decimal(0), ge=0)
    audio_input: Decimal | None = Field(default=None, ge=0)
    audio_output: Decimal | None = Field(default=None, ge=0)
    source: str | None = None


class PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prices: list[PriceEntry]


class Alias(BaseModel):
    """A name the API returns -> the name the price table knows."""

    model_config = ConfigDict(extra="forbid")
    name: str
    model: str
    source: str
    effective_from: date


class TierOffered(BaseModel):
    """From `effective_from` on, calls served at `service_tier` were billed at that tier's rates."""

    model_config = ConfigDict(extra="forbid")
    service_tier: str
    effective_from: date
    source: str


class CallFee(BaseModel):
    """A fee per call of a built-in tool, in USD per 1,000 calls, for models matching `models` (a glob)."""

    model_config = ConfigDict(extra="forbid")
    tool: str
    models: str = "*"
    usd_per_1k_calls: Decimal = Field(ge=0)
    effective_from: date
    effective_until: date | None = None
    source: str


class RegionalUplift(BaseModel):
    """A multiplier on token prices for calls sent to a data-residency (regional) endpoint."""

    model_config = ConfigDict(extra="forbid")
    models: str
    factor: Decimal = Field(gt=0)
    effective_from: date
    effective_until: date | None = None
    source: str


class BuiltinOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aliases: list[Alias] = []
    tiers_offered: list[TierOffered] = []
    call_fees: list[CallFee] = []
    regional_uplift: list[RegionalUplift] = []
    prices: list[PriceEntry] = []


def load_price_file(path: str | Path) -> tuple[PriceFile, str]:
    model, _ = load_yaml_model(path, PriceFile, "price file", "a price file is a YAML mapping with `prices:`")
    return model, Path(path).name


BUILTIN_NAME = "price_overrides.yaml"


@cache
def builtin_overrides() -> BuiltinOverrides:
    """The project's dated corrections to genai-prices (shipped as package data)."""
    ref = resources.files("attribution").joinpath("data", BUILTIN_NAME)
    with resources.as_file(ref) as path:
        model, _ = load_yaml_model(path, BuiltinOverrides, "built-in price overrides", "a mapping")
    return model


def active(d: date, start: date | None, until: date | None) -> bool:
    return (start is None or d >= start) and (until is None or d < until)
