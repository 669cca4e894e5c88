"""Cost columns: every price pinned with its source and date, in exact decimals.

Sources of the expected figures:
  [PP]  OpenAI pricing page (developers.openai.com/api/docs/pricing), as carried by genai-prices 0.2.3.
  [FLX] OpenAI flex-processing guide ("billed at Batch API rates"); flex offered from 2025-04-16
        (openai-python c5ede36c adds service_tier 'flex' with o3/o4-mini).
  [PRI] OpenAI priority-processing guide; priority offered from 2025-06-26 (openai-python 1.92.0).
  [DR]  OpenAI data-residency guide: "10% uplift for models released on or after March 5, 2026".
  [WS]  OpenAI pricing page, built-in tools: web search $10 / 1K calls (gpt-5 family), file search $2.50 / 1K.
  [PC]  OpenAI prompt-caching guide (platform.openai.com/docs/guides/prompt-caching): no fee for cache writes.
Every cost is a Decimal and is compared exactly (D("0.15")), never approximately.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from attribution.engine import Engine
from attribution.pricing import COST_COLUMNS, COST_TYPE, Pricer, load_price_file
from attribution.rules import load_rules
from ingest.errors import ConfigError
from ingest.schema import Call, calls_to_table

M = 1_000_000


def _call(model: str, day: str, i: int = 0, **fields: Any) -> Call:
    ts = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * M)
    c = Call(call_id=f"c{i}", ts=ts + i, source_file="f", source_format="openai", model=model, token_source="reported",
             ingested_at=ts)
    for k, v in {"input_tokens": 0, "output_tokens": 0, **fields}.items():
        setattr(c, k, v)
    return c


def price(model: str, day: str, *, pricer: Pricer | None = None, extra: dict[str, list[Any]] | None = None,
          **fields: Any) -> dict[str, Any]:
    table = calls_to_table([_call(model, day, **fields)])
    for name, values in (extra or {}).items():
        column = pa.array(values, pa.int64())
        if name in table.column_names:  # a calls column (the per-call tool counts)
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    (row,) = Engine(load_rules(None), pricer).apply(table).to_pylist()
    out: dict[str, Any] = row
    return out


def test_cost_columns_are_exact_decimals() -> None:
    out = Engine(load_rules(None)).apply(calls_to_table([_call("gpt-4o-mini", "2025-03-01", input_tokens=7)]))
    for col in COST_COLUMNS:
        assert out.schema.field(col).type == COST_TYPE == pa.decimal128(38, 12), col
    # 7 tokens at $0.15/1M = $0.00000105: a cost too small for 6 decimals is still exact and non-zero
    assert out.column("cost_usd")[0].as_py() == D("0.00000105")


def test_gpt_4o_mini_input_cached_and_output_rates() -> None:
    """[PP] gpt-4o-mini $0.15 input, $0.075 cached input, $0.60 output per 1M tokens."""
    assert price("gpt-4o-mini", "2025-03-01", input_tokens=M)["cost_usd"] == D("0.15")
    assert price("gpt-4o-mini-2024-07-18", "2025-03-01", input_tokens=M, cached_input_tokens=M)["cost_usd"] == D("0.075")
    assert price("gpt-4o-mini", "2025-03-01", output_tokens=M)["cost_usd"] == D("0.6")


def test_cached_tokens_are_billed_once_at_the_cached_rate() -> None:
    r = price("gpt-4o-mini", "2025-03-01", input_tokens=1000, cached_input_tokens=400, output_tokens=100)
    assert r["input_cost_usd"] == D("0.00009")  # 600 x 0.15 / 1M
    assert r["cached_input_cost_usd"] == D("0.00003")  # 400 x 0.075 / 1M
    assert r["cost_usd"] == D("0.00018")  # + 100 x 0.60 / 1M


def test_reasoning_tokens_are_output_and_billed_once() -> None:
    r = price("o3", "2025-07-01", output_tokens=1000, reasoning_tokens=900)
    assert r["output_cost_usd"] == D("0.008")


def test_o3_price_cut_effective_2025_06_10() -> None:
    """[PP] o3 went from $10/$40 to $2/$8 per 1M tokens on 2025-06-10."""
    before = price("o3-2025-04-16", "2025-06-09", input_tokens=M, output_tokens=M)
    after = price("o3-2025-04-16", "2025-06-10", input_tokens=M, output_tokens=M)
    assert (before["input_cost_usd"], before["output_cost_usd"]) == (D(10), D(40))
    assert (after["input_cost_usd"], after["output_cost_usd"]) == (D(2), D(8))


def test_dated_snapshot_with_its_own_price() -> None:
    r = price("gpt-4o-2024-05-13", "2025-01-15", input_tokens=M, output_tokens=M)
    assert (r["input_cost_usd"], r["output_cost_usd"]) == (D(5), D(15))


def test_batch_discount_where_the_library_has_no_batch_price() -> None:
    r = price("gpt-4o-mini", "2025-03-01", input_tokens=M, output_tokens=M, batch=True)
    assert r["cost_usd"] == D("0.375")
    assert r["price_source"].endswith("+batch50")


def test_library_batch_price_is_used_once_it_exists() -> None:
    r = price("gpt-4o", "2026-11-01", input_tokens=M, output_tokens=M, batch=True)
    assert r["cost_usd"] == D("6.25") and r["price_source"].endswith("+batch")


@pytest.mark.parametrize(("tier", "expected"), [("flex", 1 + 4), ("priority", D("3.5") + 14), ("fast", D("3.5") + 14),
                                                ("default", 2 + 8), ("auto", 2 + 8), (None, 2 + 8)])
def test_service_tiers(tier: str | None, expected: D) -> None:
    r = price("o3", "2026-11-01", input_tokens=M, output_tokens=M, service_tier=tier)
    assert r["cost_usd"] == expected


@pytest.mark.parametrize(("model", "day", "tier", "expected", "source_part"), [
    # [FLX] gpt-5 flex: $0.625 / $5 (half of $1.25 / $10) from launch, not from the library's 2026-10-12
    ("gpt-5-2025-08-07", "2025-09-01", "flex", D("0.625") + 5, "+flex(offered)"),
    ("gpt-5-mini", "2025-09-01", "flex", D("0.125") + 1, "+flex(offered)"),
    ("gpt-5", "2026-11-01", "flex", D("0.625") + 5, "+flex"),
    # [PRI] gpt-5 priority: $2.50 / $20
    ("gpt-5", "2025-09-01", "priority", D("2.5") + 20, "+priority(offered)"),
    ("gpt-5", "2026-11-01", "priority", D("2.5") + 20, "+priority"),
    # [FLX] o3 flex in May 2025 was half of the then-standard $10 / $40
    ("o3", "2025-05-01", "flex", D(5) + 20, "+flex(offered,ratio)"),
    # before a tier was offered the served tier cannot have been billed at it: standard
    ("o3", "2025-04-15", "flex", D(10) + 40, "+flex-not-offered"),
    ("o3", "2025-06-20", "priority", D(2) + 8, "+priority-not-offered"),
    ("o3", "2025-07-01", "priority", D("3.5") + 14, "+priority(offered)"),
])
def test_tiers_priced_from_the_day_they_were_offered(model: str, day: str, tier: str, expected: D, source_part: str) -> None:
    r = price(model, day, input_tokens=M, output_tokens=M, service_tier=tier)
    assert r["cost_usd"] == expected and source_part in r["price_source"]


def test_flex_cached_input_before_the_library_date() -> None:
    """[FLX] gpt-5 flex cached input $0.0625 / 1M (half of $0.125)."""
    r = price("gpt-5", "2025-10-01", input_tokens=M, cached_input_tokens=M, service_tier="flex")
    assert r["cached_input_cost_usd"] == D("0.0625")


def test_long_context_tier_applies_above_the_threshold() -> None:
    small = price("gpt-5.4", "2026-11-01", input_tokens=100_000)
    large = price("gpt-5.4", "2026-11-01", input_tokens=300_000)
    assert small["input_cost_usd"] == D("0.25")
    assert large["input_cost_usd"] == D("1.5")


def test_fine_tuned_model_priced_by_its_base_when_unknown() -> None:
    r = price("ft:gpt-4.1-mini-2025-04-14:acme::Bx1", "2025-08-01", input_tokens=M, output_tokens=M)
    assert r["cost_usd"] == D("2") and r["price_source"].endswith("+ft-base")


@pytest.mark.parametrize(("returned", "known"), [("davinci:2023-07-21-v2", "davinci-002"),
                                                 ("babbage:2023-07-21-v2", "babbage-002"),
                                                 ("gpt-35-turbo-0125", "gpt-3.5-turbo")])
def test_names_the_api_returns_resolve_to_a_price(returned: str, known: str) -> None:
    pricer = Pricer()
    r = price(returned, "2025-03-01", input_tokens=M, output_tokens=M, pricer=pricer)
    assert r["cost_usd"] == price(known, "2025-03-01", input_tokens=M, output_tokens=M)["cost_usd"] is not None
    assert pricer.unpriced == set() and r["price_model"] == known


def test_davinci_002_price() -> None:
    """[PP] davinci-002 $2 / 1M input and output."""
    assert price("davinci:2023-07-21-v2", "2024-06-01", input_tokens=M, output_tokens=M)["cost_usd"] == D(4)


def test_unknown_model_has_null_cost_and_is_reported() -> None:
    pricer = Pricer()
    r = price("acme-llm-7", "2025-03-01", input_tokens=M, pricer=pricer)
    assert r["cost_usd"] is None and r["price_source"] is None and r["tool_cost_usd"] is None
    assert pricer.unpriced == {"acme-llm-7"}


def test_error_rows_cost_zero_not_null() -> None:
    r = price("gpt-4o-mini", "2025-03-01", input_tokens=0, output_tokens=0, error_type="rate_limit_exceeded")
    assert r["cost_usd"] == 0


def test_web_search_and_file_search_call_fees() -> None:
    """[WS] gpt-5: $10 per 1K web search calls, $2.50 per 1K file search calls, on top of tokens."""
    r = price("gpt-5", "2025-09-01", input_tokens=M, extra={"web_search_calls": [3], "file_search_calls": [2]})
    assert r["tool_cost_usd"] == D("0.035") and r["cost_usd"] == D("1.25") + D("0.035")


def test_code_interpreter_container_fee() -> None:
    """Builtin override: code interpreter $0.03 per container, from 2025-05-21."""
    r = price("gpt-4.1", "2025-06-01", extra={"code_interpreter_sessions": [2]})
    assert r["tool_cost_usd"] == D("0.06")
    assert price("gpt-4.1", "2025-05-20", extra={"code_interpreter_sessions": [2]})["tool_cost_usd"] == 0


def test_regional_endpoint_uplift() -> None:
    """[DR] gpt-5.4 on eu.api.openai.com costs 10% more than on the global endpoint."""
    k = 100_000  # under the 272K long-context threshold: $2.50 / $15 per 1M
    glob = price("gpt-5.4", "2026-04-01", input_tokens=k, output_tokens=k)
    eu = price("gpt-5.4", "2026-04-01", input_tokens=k, output_tokens=k, metadata={"host": "eu.api.openai.com"})
    assert glob["cost_usd"] == D("1.75") and eu["cost_usd"] == D("1.925") and "+regional1.1" in eu["price_source"]
    older = price("gpt-5", "2026-04-01", input_tokens=M, metadata={"host": "eu.api.openai.com"})
    assert older["cost_usd"] == D("1.25")  # released before 2026-03-05: no uplift


def test_override_file_wins_with_effective_dates(tmp_path: Path) -> None:
    f = tmp_path / "prices.yaml"
    f.write_text(
        "prices:\n"
        "  - {model: gpt-4o-mini, input: 1.0, cached_input: 0.5, output: 2.0, effective_until: 2025-03-01}\n"
        "  - {model: gpt-4o-mini, input: 3.0, output: 4.0, effective_from: 2025-03-01}\n"
        "  - {model: 'acme-*', input: 7.0, output: 9.0, source: 'acme price list 2025'}\n"
    )
    pricer = Pricer(*load_price_file(f))
    before = price("gpt-4o-mini-2024-07-18", "2025-02-28", input_tokens=M, cached_input_tokens=M // 2, pricer=pricer)
    assert before["cost_usd"] == D("0.75")
    assert before["price_source"] == "override:prices.yaml"
    after = price("gpt-4o-mini", "2025-03-01", input_tokens=M, output_tokens=M, pricer=pricer)
    assert after["cost_usd"] == D(7)
    assert price("acme-llm-7", "2025-03-01", input_tokens=M, pricer=pricer)["cost_usd"] == D(7)
    batch = price("acme-llm-7", "2025-03-01", input_tokens=M, batch=True, pricer=pricer)
    assert batch["cost_usd"] == D("3.5") and batch["price_source"].endswith("+batch50")


def test_invalid_price_file(tmp_path: Path) -> None:
    f = tmp_path / "prices.yaml"
    f.write_text("prices:\n  - {model: x, input: -1}\n")
    with pytest.raises(ConfigError, match=r"prices.yaml:2: prices.0.input: Input should be greater than or equal to 0"):
        load_price_file(f)


def test_builtin_overrides_carry_a_source_and_a_date() -> None:
    from attribution.price_data import builtin_overrides

    b = builtin_overrides()
    rows: list[Any] = [*b.aliases, *b.tiers_offered, *b.call_fees, *b.regional_uplift]
    assert rows and all(r.source and r.effective_from for r in rows)
    assert all(p.source and p.effective_from for p in b.prices)


def test_rates_are_resolved_once_per_distinct_combination(monkeypatch: pytest.MonkeyPatch) -> None:
    pricer = Pricer()
    resolved: list[str] = []
    real = pricer.resolve_name

    def counting(model: str, day: date) -> str:
        resolved.append(model)
        return real(model, day)

    monkeypatch.setattr(pricer, "resolve_name", counting)
    many = [_call("gpt-4o-mini", "2025-03-01", i, input_tokens=10, output_tokens=1) for i in range(5000)]
    out = Engine(load_rules(None), pricer).apply(calls_to_table(many))
    assert out.num_rows == 5000 and resolved == ["gpt-4o-mini"]


def _mixed_calls(n: int, seed: int) -> list[Call]:
    rnd = random.Random(seed)
    models = ["gpt-4o-mini", "gpt-5", "o3", "gpt-4.1-nano", "gpt-5.4", "davinci:2023-07-21-v2"]
    tiers = [None, "default", "flex", "priority"]
    calls = [_call(models[i % 6], f"2025-{9 + i % 3:02d}-0{1 + i % 9}", i, input_tokens=rnd.randint(1, 300_000),
                   cached_input_tokens=rnd.randint(0, 1), output_tokens=rnd.randint(0, 5000),
                   service_tier=tiers[i % 4] if i % 6 in (1, 2) else None, batch=(i % 7 == 0))
             for i in range(n)]
    rnd.shuffle(calls)
    return calls


def test_aggregate_cost_identical_to_the_last_digit_across_five_runs() -> None:
    """Five runs over the same calls in different orders and batch splits give the same digits."""
    totals = set()
    for run in range(5):
        calls = _mixed_calls(3000, seed=7)
        random.Random(run).shuffle(calls)
        cut = 500 + run * 400
        engine = Engine(load_rules(None), Pricer())
        parts = [engine.apply(calls_to_table(calls[:cut])), engine.apply(calls_to_table(calls[cut:]))]
        con = duckdb.connect()
        con.register("u", pa.concat_tables(parts))
        ((total,),) = con.execute("SELECT sum(cost_usd) FROM u").fetchall()
        by_parts = con.sql("SELECT sum(input_cost_usd + cached_input_cost_usd + output_cost_usd + audio_cost_usd"
                           " + tool_cost_usd) FROM u").fetchall()
        assert isinstance(total, D) and by_parts == [(total,)]
        totals.add(str(total))
    assert len(totals) == 1, totals


def test_cache_writes_cost_the_plain_input_rate() -> None:
    """[PC] OpenAI prompt caching guide: caching "has no additional fees"; the first call writes the
    cache and is billed at the input rate ($2.50 / 1M for gpt-4o), a later hit at the cached rate ($1.25).
    genai-prices carries no cache-write price for OpenAI models, and none may creep in."""
    from genai_prices import data

    (openai,) = [p for p in data.providers if p.id == "openai"]
    (gpt4o,) = [m for m in openai.models if m.id == "gpt-4o"]
    prices = gpt4o.prices if isinstance(gpt4o.prices, list) else [gpt4o.prices]
    assert all(getattr(getattr(p, "prices", p), "cache_write_mtok", None) is None for p in prices)
    write = price("gpt-4o", "2025-03-01", input_tokens=M, cached_input_tokens=0)
    hit = price("gpt-4o", "2025-03-01", input_tokens=M, cached_input_tokens=M)
    assert write["cost_usd"] == D("2.5") and hit["cost_usd"] == D("1.25")


def test_builtin_tool_calls_counted_from_response_items_and_web_search_options() -> None:
    from ingest.tool_fees import builtin_tool_calls

    resp = {"object": "response", "output": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "web_search_call", "id": "ws_2", "status": "completed"},
        {"type": "file_search_call", "id": "fs_1", "queries": ["q"]},
        {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_a"},
        {"type": "code_interpreter_call", "id": "ci_2", "container_id": "cntr_a"},  # same container: one fee
        {"type": "code_interpreter_call", "id": "ci_3"},  # no container id: its own
        {"type": "message", "content": [{"type": "output_text", "text": "done"}]}]}
    assert builtin_tool_calls({"model": "gpt-5"}, resp) == {"web_search": 2, "file_search": 1, "code_interpreter": 2}
    events = [{"type": "response.output_item.done", "item": {"type": "web_search_call", "id": "ws_1"}},
              {"type": "response.output_item.done", "item": {"type": "message"}}]
    assert builtin_tool_calls(None, events) == {"web_search": 1}
    assert builtin_tool_calls(None, [*events, {"type": "response.completed", "response": resp}])["web_search"] == 2
    chat = {"model": "gpt-4o-search-preview", "web_search_options": {}, "messages": []}
    assert builtin_tool_calls(chat, {"object": "chat.completion", "choices": []}) == {"web_search": 1}
    assert builtin_tool_calls(chat, None) == {}  # no response: nothing was served
    assert builtin_tool_calls({"model": "gpt-5", "tools": [{"type": "web_search"}]}, {"output": []}) == {}  # offered only


def test_builtin_tool_fees_priced_end_to_end_from_an_app_log(tmp_path: Path) -> None:
    """[WS] an ingested Responses call with two web searches and one code interpreter container:
    gpt-5 $10 / 1K searches + $0.03 per container (builtin override from 2025-05-21)."""
    import json

    from tests.conftest import ingest_files, tt_sql

    resp = {"id": "resp_fees1", "object": "response", "created_at": 1756720800, "model": "gpt-5-2025-08-07",
            "status": "completed", "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"},
                                               {"type": "web_search_call", "id": "ws_2", "status": "completed"},
                                               {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_1"},
                                               {"type": "message", "content": [{"type": "output_text", "text": "ok"}]}],
            "usage": {"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100}}
    log = tmp_path / "calls.jsonl"
    log.write_text(json.dumps({"timestamp": "2025-09-01T10:00:00Z", "status_code": 200,
                               "request": {"model": "gpt-5", "input": "search", "tools": [{"type": "web_search"}]},
                               "response": resp}) + "\n")
    ingest_files(tmp_path / "wh", log)
    ((tool_cost, cost),) = tt_sql(tmp_path / "wh", "SELECT tool_cost_usd, cost_usd FROM usage").fetchall()
    assert tool_cost == D("0.05")  # 2 x $0.01 + 1 x $0.03
    # the counts are columns of their own, not metadata entries
    assert tt_sql(tmp_path / "wh", "SELECT web_search_calls, file_search_calls, code_interpreter_sessions, "
                                   "metadata FROM calls").fetchall() == [(2, None, 1, None)]
    assert cost == D(1000) * D("1.25") / M + D(100) * D(10) / M + D("0.05")


def test_rows_from_before_the_count_columns_keep_their_fees() -> None:
    """Rows written before the tool-count columns existed carry the counts in `metadata`
    (`tokentrail.*` keys): re-attributing them prices the same fees."""
    table = calls_to_table([_call("gpt-5", "2025-09-01", input_tokens=M)])
    meta = pa.array([[("tokentrail.web_search_calls", "3"), ("tokentrail.code_interpreter_sessions", "1")]],
                    table.schema.field("metadata").type)
    old = table.set_column(table.column_names.index("metadata"), "metadata", meta)
    old = old.drop_columns(["web_search_calls", "file_search_calls", "code_interpreter_sessions"])
    (row,) = Engine(load_rules(None)).apply(old).to_pylist()
    assert row["tool_cost_usd"] == D("0.06")  # 3 x $0.01 + 1 container x $0.03


def test_a_warehouse_from_before_the_count_columns_takes_new_rows_and_reattributes(tmp_path: Path) -> None:
    """Tables written without the tool-count columns gain them on the next write (Delta schema merge)."""
    import json

    from deltalake import DeltaTable, write_deltalake

    from attribution import api
    from tests.conftest import FIXTURES, REPO

    wh = tmp_path / "wh"
    api.ingest([FIXTURES / "openai" / "app_calls.jsonl"], wh)
    counts = ["web_search_calls", "file_search_calls", "code_interpreter_sessions"]
    for name in ("calls", "usage"):  # as an older tokentrail wrote them
        old = pa.table(DeltaTable(str(wh / name)).to_pyarrow_table()).drop_columns(counts)
        write_deltalake(str(wh / name), old, mode="overwrite", schema_mode="overwrite", partition_by=["date"])
    resp = {"id": "resp_new1", "object": "response", "created_at": 1756720800, "model": "gpt-5-2025-08-07",
            "status": "completed", "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}],
            "usage": {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}}
    log = tmp_path / "new.jsonl"
    log.write_text(json.dumps({"timestamp": "2025-09-01T10:00:00Z", "status_code": 200,
                               "request": {"model": "gpt-5", "input": "x"}, "response": resp}) + "\n")
    api.ingest([log], wh)
    api.reattribute(REPO / "sample_logs" / "rules.yaml", wh)
    (row,) = api.sql("SELECT count(*) AS n, sum(web_search_calls) AS ws, sum(tool_cost_usd) AS fee FROM usage",
                     wh).to_pylist()
    assert (row["n"], row["ws"], row["fee"]) == (14, 1, D("0.01"))


def test_one_engine_applied_to_tables_of_different_shapes_keeps_each_ones_columns() -> None:
    """The result columns of a batch are remembered per SQL *and* input schema: a later batch with
    another column (a re-attributed warehouse's extra column, say) keeps it."""
    engine = Engine(load_rules(None))
    con = engine.connect()
    plain = calls_to_table([_call("gpt-4o-mini", "2025-03-01", input_tokens=7)])
    wider = plain.append_column("team_note", pa.array(["x"]))
    assert "team_note" not in engine.apply(plain, con).column_names
    out = engine.apply(wider, con)
    assert out.column("team_note").to_pylist() == ["x"]
    assert out.column("cost_usd").to_pylist() == engine.apply(plain, con).column("cost_usd").to_pylist()


def test_a_log_cannot_put_tool_counts_in_tokentrails_metadata_namespace(tmp_path: Path) -> None:
    """Older rows carried tool counts as `tokentrail.*` metadata, which pricing still reads; a request's own
    `metadata` is copied into the call's, so names in that namespace are dropped at ingest (no fee, no crash)."""
    import json

    from tests.conftest import ingest_files, tt_sql

    log = tmp_path / "calls.jsonl"
    lines = []
    for i, value in enumerate(["3", "abc"]):
        resp = {"id": f"chatcmpl-meta{i}", "object": "chat.completion", "created": 1756720800, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
        lines.append(json.dumps({"timestamp": "2025-09-01T10:00:00Z", "status_code": 200, "response": resp,
                                 "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],
                                             "metadata": {"tokentrail.web_search_calls": value, "team": "a"}}}))
    log.write_text("\n".join(lines) + "\n")
    ingest_files(tmp_path / "wh", log)
    rows = tt_sql(tmp_path / "wh", "SELECT map_keys(metadata), tool_cost_usd FROM usage ORDER BY call_id").fetchall()
    assert rows == [(["team"], D(0)), (["team"], D(0))]
