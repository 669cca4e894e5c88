"""Rewrite the README's benchmark section from bench/results.json (run after `make bench`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def met(ratio: float | None, target: float) -> str:
    return "met" if ratio is not None and ratio >= target else "**not met**"


def section(r: dict) -> str:
    m = r["machine"]
    f = {x["figure"][:2]: x for x in r["figures"]}
    f1, f2, f3, f4, f5, fr = f["1."], f["2."], f["3."], f["4."], f["5."], f["re"]
    rss = {k: v for k, v in f4.items() if k.endswith("_peak_rss_mb") and k.startswith("ingest_")}
    rss_text = ", ".join(f"{v} MB ({k.split('_')[1]} log)" for k, v in rss.items())
    peak = max([*rss.values(), f4["watch_peak_rss_mb"]])
    rows = [
        ("1. `ingest`, all calls carry usage", f"{f1['tokentrail_s']} s ({f1['tokentrail_mb_s']} MB/s, "
         f"{f1['tokentrail_calls_s']:,} calls/s) on {f1['input_mb']} MB", f"DuckDB `read_json` count: {f1['baseline_s']} s",
         f1["ratio"], f"≥ 1.0 (aim 2): {met(f1['ratio'], 1.0)}"),
        ("2. estimation, 30% of calls lacking usage", f"{f2['tokentrail_s']} s for {f2['calls_estimated']:,} calls "
         f"(memo hit rate {f2['memo_hit_rate']:.0%})", f"raw `tiktoken.encode_ordinary` over the same {f2['texts']:,} texts: "
         f"{f2['baseline_s']} s", f2["ratio"], f"≥ 0.8: {met(f2['ratio'], 0.8)}; > 1 with the memo: {met(f2['ratio'], 1.0)}"),
        *([("2b. the same chat requests", f"{f2.get('tokentrail_same_requests_s')} s",
            f"LiteLLM `token_counter`: {f2.get('litellm_token_counter_s')} s ({f2.get('litellm_requests')} requests)",
            f2.get("ratio_vs_litellm"), "—")] if f2.get("ratio_vs_litellm") is not None else []),
        ("3. `report --by key_name --by day`", f"{f3['tokentrail_s']} s on {f3['calls']:,} calls",
         f"DuckDB aggregate straight from the JSONL: {f3['baseline_s']} s", f3["ratio"], f"≥ 50: {met(f3['ratio'], 50)}"),
        *([("3b. the same report", f"{f3['tokentrail_s']} s",
            f"DuckDB over the same Parquet files: {f3['duckdb_same_parquet_s']} s", f3["ratio_vs_same_parquet"],
            f"≥ 0.8 (issue 17): {met(f3['ratio_vs_same_parquet'], 0.8)}")] if "ratio_vs_same_parquet" in f3 else []),
        ("4. peak RSS", f"ingest {rss_text}; watch {f4['watch_peak_rss_mb']} MB while a file grew {f4['watch_grew_mb']} MB",
         "—", "—", f"< 300 MB, independent of size: {'met' if peak < 300 else 'flat, **' + str(peak - 300) + ' MB over**'}"),
        ("4b. watcher throughput", f"{f4['watch_calls_s']:,} calls/s from append to committed Parquet",
         f"batch `ingest` of the same file: {f4['batch_same_file_s']} s", f4["watch_vs_batch_throughput_ratio"], "—"),
        (f"5. parallel ingest, {f5['files']} files", f"{f5['all_cores_s']} s with {f5['jobs']} workers",
         f"one worker: {f5['one_core_s']} s", f5["ratio"], f"≥ 1.7: {met(f5['ratio'], 1.7)}"),
        ("re-attribution",
         f"{fr['tokentrail_s']} s, {fr['rows_per_s']:,} rows/s ({fr['rows']:,} rows, {fr['partitions']} partitions)",
         f"DuckDB `COPY (SELECT * FROM read_parquet)`: {fr['baseline_s']} s", fr["ratio"], "—"),
    ]
    lines = [START, f"Measured {m['date']}: {m['cores']} cores, {m['memory_mb']:,} MB RAM, Python {m['python']}, "
             f"`BENCH_SCALE={m['bench_scale']}`.", "", "| figure | tokentrail | baseline (same run) | ratio | target |",
             "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(lines) + "\n" + END


def main() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section(results), text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
