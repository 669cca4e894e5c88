"""Cost columns: figures pinned from OpenAI's pricing page, effective dates, batch, tiers, overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attribution.engine import Engine
from attribution.pricing import Pricer, load_price_file
from attribution.rules import load_rules
from ingest.errors import ConfigError
from ingest.schema import Call, calls_to_table

M = 1_000_000


def price(model: str, day: str, *, pricer: Pricer | None = None, **fields: Any) -> dict[str, Any]:
    ts = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * M)
    c = Call(call_id="c", ts=ts, source_file="f", source_format="openai", model=model, token_source="reported",
             ingested_at=ts)
    for k, v in {"input_tokens": 0, "output_tokens": 0, **fields}.items():
        setattr(c, k, v)
    (row,) = Engine(load_rules(None), pricer).apply(calls_to_table([c])).to_pylist()
    return row


def test_gpt_4o_mini_input_cached_and_output_rates() -> None:
    """Pricing page: gpt-4o-mini $0.15 input, $0.075 cached input, $0.60 output per 1M tokens."""
    assert price("gpt-4o-mini", "2025-03-01", input_tokens=M)["cost_usd"] == pytest.approx(0.15)
    assert price("gpt-4o-mini-2024-07-18", "2025-03-01", input_tokens=M, cached_input_tokens=M)["cost_usd"] == pytest.approx(0.075)
    assert price("gpt-4o-mini", "2025-03-01", output_tokens=M)["cost_usd"] == pytest.approx(0.60)


def test_cached_tokens_are_billed_once_at_the_cached_rate() -> None:
    r = price("gpt-4o-mini", "2025-03-01", input_tokens=1000, cached_input_tokens=400, output_tokens=100)
    assert r["input_cost_usd"] == pytest.approx(600 * 0.15 / M)
    assert r["cached_input_cost_usd"] == pytest.approx(400 * 0.075 / M)
    assert r["cost_usd"] == pytest.approx((600 * 0.15 + 400 * 0.075 + 100 * 0.60) / M)


def test_reasoning_tokens_are_output_and_billed_once() -> None:
    r = price("o3", "2025-07-01", output_tokens=1000, reasoning_tokens=900)
    assert r["output_cost_usd"] == pytest.approx(1000 * 8 / M)


def test_o3_price_cut_effective_2025_06_10() -> None:
    """o3 went from $10/$40 to $2/$8 per 1M tokens on 2025-06-10."""
    before = price("o3-2025-04-16", "2025-06-09", input_tokens=M, output_tokens=M)
    after = price("o3-2025-04-16", "2025-06-10", input_tokens=M, output_tokens=M)
    assert (before["input_cost_usd"], before["output_cost_usd"]) == (pytest.approx(10), pytest.approx(40))
    assert (after["input_cost_usd"], after["output_cost_usd"]) == (pytest.approx(2), pytest.approx(8))


def test_dated_snapshot_with_its_own_price() -> None:
    r = price("gpt-4o-2024-05-13", "2025-01-15", input_tokens=M, output_tokens=M)
    assert (r["input_cost_usd"], r["output_cost_usd"]) == (pytest.approx(5), pytest.approx(15))


def test_batch_discount_where_the_library_has_no_batch_price() -> None:
    r = price("gpt-4o-mini", "2025-03-01", input_tokens=M, output_tokens=M, batch=True)
    assert r["cost_usd"] == pytest.approx((0.15 + 0.60) / 2)
    assert r["price_source"].endswith("+batch50")


def test_library_batch_price_is_used_once_it_exists() -> None:
    r = price("gpt-4o", "2026-11-01", input_tokens=M, output_tokens=M, batch=True)
    assert r["cost_usd"] == pytest.approx(1.25 + 5) and r["price_source"].endswith("+batch")


@pytest.mark.parametrize(("tier", "expected"), [("flex", 1 + 4), ("priority", 3.5 + 14), ("default", 2 + 8), (None, 2 + 8)])
def test_service_tiers(tier: str | None, expected: float) -> None:
    r = price("o3", "2026-11-01", input_tokens=M, output_tokens=M, service_tier=tier)
    assert r["cost_usd"] == pytest.approx(expected)


def test_long_context_tier_applies_above_the_threshold() -> None:
    small = price("gpt-5.4", "2026-11-01", input_tokens=100_000)
    large = price("gpt-5.4", "2026-11-01", input_tokens=300_000)
    assert small["input_cost_usd"] == pytest.approx(100_000 * 2.5 / M)
    assert large["input_cost_usd"] == pytest.approx(300_000 * 5 / M)


def test_fine_tuned_model_priced_by_its_base_when_unknown() -> None:
    r = price("ft:gpt-4.1-mini-2025-04-14:acme::Bx1", "2025-08-01", input_tokens=M, output_tokens=M)
    assert r["cost_usd"] == pytest.approx(0.4 + 1.6) and r["price_source"].endswith("+ft-base")


def test_unknown_model_has_null_cost_and_is_reported() -> None:
    pricer = Pricer()
    r = price("acme-llm-7", "2025-03-01", input_tokens=M, pricer=pricer)
    assert r["cost_usd"] is None and r["price_source"] is None
    assert pricer.unpriced == {"acme-llm-7"}


def test_error_rows_cost_zero_not_null() -> None:
    r = price("gpt-4o-mini", "2025-03-01", input_tokens=0, output_tokens=0, error_type="rate_limit_exceeded")
    assert r["cost_usd"] == 0


def test_override_file_wins_with_effective_dates(tmp_path: Path) -> None:
    f = tmp_path / "prices.yaml"
    f.write_text(
        "prices:\n"
        "  - {model: gpt-4o-mini, input: 1.0, cached_input: 0.5, output: 2.0, effective_until: 2025-03-01}\n"
        "  - {model: gpt-4o-mini, input: 3.0, output: 4.0, effective_from: 2025-03-01}\n"
        "  - {model: 'acme-*', input: 7.0, output: 9.0}\n"
    )
    pricer = Pricer(*load_price_file(f))
    before = price("gpt-4o-mini-2024-07-18", "2025-02-28", input_tokens=M, cached_input_tokens=M // 2, pricer=pricer)
    assert before["cost_usd"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert before["price_source"] == "override:prices.yaml"
    after = price("gpt-4o-mini", "2025-03-01", input_tokens=M, output_tokens=M, pricer=pricer)
    assert after["cost_usd"] == pytest.approx(3.0 + 4.0)
    assert price("acme-llm-7", "2025-03-01", input_tokens=M, pricer=pricer)["cost_usd"] == pytest.approx(7.0)
    batch = price("acme-llm-7", "2025-03-01", input_tokens=M, batch=True, pricer=pricer)
    assert batch["cost_usd"] == pytest.approx(3.5) and batch["price_source"].endswith("+batch50")


def test_invalid_price_file(tmp_path: Path) -> None:
    f = tmp_path / "prices.yaml"
    f.write_text("prices:\n  - {model: x, input: -1}\n")
    with pytest.raises(ConfigError, match=r"prices.yaml:2: prices.0.input: Input should be greater than or equal to 0"):
        load_price_file(f)


def test_rates_are_resolved_once_per_distinct_combination() -> None:
    pricer = Pricer()
    ts = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * M)
    many = [Call(call_id=f"c{i}", ts=ts + i, source_file="f", source_format="x", model="gpt-4o-mini", input_tokens=10,
                 output_tokens=1, ingested_at=ts) for i in range(5000)]
    out = Engine(load_rules(None), pricer).apply(calls_to_table(many))
    assert out.num_rows == 5000 and len(pricer._memo) == 1
