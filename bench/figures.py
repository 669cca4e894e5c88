"""The figures of `make bench`, one function per target of issue 17 (numbered as there).

Each returns figure records (see run.figure): what tokentrail took, what the baseline took on the
same input in the same run, the ratio, the target, and whether both computed the same thing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
from run import ROOT, SCALE, TT, child, corpus, figure, grow, peak_rss_of, timed, wall

RULES = ROOT / "sample_logs" / "rules.yaml"

# What a user writes in one DuckDB statement to get the core columns of this app log into Parquet:
# timestamp, route, client, status, model, request id, key (hashed), input and output tokens,
# from plain, streamed (last chunk's usage), Responses and embeddings bodies.
DUCKDB_EXTRACT = """COPY (
 SELECT CAST(timestamp AS TIMESTAMPTZ) AS ts, route, client_ip, status_code,
   coalesce(json_extract_string(response, '$.model'), json_extract_string(response, '$[0].model'),
            json_extract_string(request, '$.model')) AS model,
   json_extract_string(headers, '$.x-request-id') AS request_id,
   md5(json_extract_string(headers, '$.authorization')) AS key_hash,
   coalesce(json_extract(response, '$.usage.prompt_tokens'), json_extract(response, '$.usage.input_tokens'),
            json_extract(response, '$[#-1].usage.prompt_tokens'))::BIGINT AS input_tokens,
   coalesce(json_extract(response, '$.usage.completion_tokens'), json_extract(response, '$.usage.output_tokens'),
            json_extract(response, '$[#-1].usage.completion_tokens'), 0)::BIGINT AS output_tokens
 FROM read_json('{src}', format='newline_delimited', maximum_object_size=100000000,
   columns={{timestamp: 'VARCHAR', route: 'VARCHAR', client_ip: 'VARCHAR', status_code: 'INTEGER',
             headers: 'JSON', request: 'JSON', response: 'JSON'}})
 WHERE request IS NOT NULL
) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)"""


def fig1_ingest(work: Path) -> list[dict[str, Any]]:
    """1. Ingest of a log whose calls all carry usage vs one DuckDB statement on the same file: both as a
    user runs them (tokentrail's default of one worker per core, DuckDB's default of one thread per
    core), and both held to one core (`-j 1`, `SET threads = 1`)."""
    f = next(corpus(work / "usage-all", int(170_000 * SCALE), 0.0, one_file=True).iterdir())
    mb = f.stat().st_size / 1e6
    cores = os.cpu_count() or 1
    ours = child("ingest", str(work / "wh-ingest"), str(f), "--jobs", str(cores))
    ours_1 = child("ingest", str(work / "wh-ingest-1"), str(f), "--jobs", "1")
    con = duckdb.connect()
    dst = work / "duckdb-extract.parquet"
    extract_s, _ = timed(lambda: con.execute(DUCKDB_EXTRACT.format(src=f, dst=dst)))
    theirs = con.sql(f"SELECT count(*), sum(input_tokens), sum(output_tokens) FROM '{dst}'").fetchall()[0]
    count_s, _ = timed(lambda: con.sql(f"SELECT count(*) FROM read_json('{f}', format='newline_delimited', "
                                        "maximum_object_size=100000000)").fetchall())
    one = duckdb.connect()
    one.execute("SET threads = 1")
    extract_1_s, _ = timed(lambda: one.execute(DUCKDB_EXTRACT.format(src=f, dst=work / "duckdb-extract-1.parquet")))
    same = all([r["calls"], r["input_tokens"], r["output_tokens"]] == list(theirs) for r in (ours, ours_1))
    common = {"input_mb": round(mb, 1), "calls": ours["calls"], "tokentrail_mb_s": round(mb / ours["seconds"], 1),
              "outputs_equal": same, "duckdb_calls_tokens": list(theirs), "peak_rss_mb": ours["peak_rss_mb"]}
    return [
        figure(f"1. ingest (usage present) vs one DuckDB statement JSONL->Parquet, defaults ({cores} cores each)",
               ours["seconds"], "duckdb COPY (core columns) TO parquet", extract_s, 1.0, **common),
        figure("1b. ingest (usage present) vs DuckDB read_json count(*)", ours["seconds"],
               "duckdb read_json count(*)", count_s, 1.0, input_mb=round(mb, 1)),
        figure("1c. the same pair held to one core (-j 1 vs SET threads = 1)", ours_1["seconds"],
               "duckdb COPY (core columns) TO parquet, 1 thread", extract_1_s, 1.0, input_mb=round(mb, 1),
               tokentrail_mb_s=round(mb / ours_1["seconds"], 1), outputs_equal=same),
    ]


def fig2_estimation_ingest(work: Path) -> list[dict[str, Any]]:
    """2. Ingest with 30% of usage missing vs the same ingest with estimation off."""
    f = next(corpus(work / "missing-30", int(60_000 * SCALE), 0.30, one_file=True).iterdir())
    with_est = child("ingest", str(work / "wh-est"), str(f))
    without = child("ingest", str(work / "wh-noest"), str(f), "--no-estimate")
    return [figure("2. ingest, 30% lacking usage, vs the same with estimation off", with_est["seconds"],
                   "tokentrail ingest --no-estimate, same file", without["seconds"], 0.8,
                   input_mb=round(f.stat().st_size / 1e6, 1), estimated=with_est["estimated"],
                   peak_rss_mb=with_est["peak_rss_mb"])]


def fig3_estimation(work: Path) -> list[dict[str, Any]]:
    """3. Estimation vs raw tiktoken and peers (bench/estimation.py, loading excluded for all)."""
    import estimation

    r = estimation.run(SCALE, work)
    out = [figure("3. estimation vs raw tiktoken, same texts (repeating prompts)", r["tokentrail_s"],
                  "tiktoken encode_ordinary, no memo", r["raw_tiktoken_s"], 1.0, requests=r["requests"],
                  texts=r["texts"], no_repeats_ratio=r["ratio_vs_raw_tiktoken_no_repeats"],
                  vocabulary_load_s=r["vocabulary_load_s"])]
    for peer in ("litellm", "tokencost"):
        if f"{peer}_s" in r:
            out.append(figure(f"3{'b' if peer == 'litellm' else 'c'}. estimation vs {peer}, same requests",
                              r["tokentrail_vs_peers_s"], f"{peer}, vocabulary loaded first", r[f"{peer}_s"], 1.0,
                              same_counts=r[f"{peer}_same_counts"]))
    if "peers" in r:
        out[0]["peers"] = r["peers"]
    return out


def fig4_queries(work: Path) -> list[dict[str, Any]]:
    """4. `report` and `sql` vs DuckDB over the same Parquet files; `sql "select 1"` wall time."""
    from deltalake import write_deltalake

    n = int(2_000_000 * SCALE)
    wh = work / "wh-report"
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE u AS SELECT 'chatcmpl-' || i AS call_id,
        TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 86400 * 90 // {n}) AS ts,
        'key-' || (i % 25) AS key_name, 'feature-' || (i % 40) AS feature, 'user-' || (i % 5000) AS end_user,
        'gpt-4o-mini' AS model, (200 + i % 1800)::BIGINT AS input_tokens, 0::BIGINT AS cached_input_tokens,
        (50 + i % 400)::BIGINT AS output_tokens, 0::BIGINT AS reasoning_tokens, 'reported' AS token_source,
        (((200 + i % 1800) * 0.15 + (50 + i % 400) * 0.6) / 1e6)::DECIMAL(38, 12) AS cost_usd, now() AS ingested_at,
        'bench' AS source_file, i AS source_offset FROM range({n}) r(i)""")
    table = con.sql("SELECT *, CAST(ts AS DATE) AS date FROM u").to_arrow_table()
    for name in ("usage", "calls"):  # Delta tables, as tokentrail writes them
        write_deltalake(str(wh / name), table, partition_by=["date"])
    files = [str(p) for p in (wh / "usage").rglob("*.parquet")]
    ours = min((child("report", str(wh)) for _ in range(3)), key=lambda r: r["seconds"])
    agg = ("SELECT key_name, CAST(ts AS DATE) AS day, count(*), sum(input_tokens), sum(cached_input_tokens), "
           "sum(output_tokens), sum(reasoning_tokens), sum(cost_usd) FROM read_parquet($files) GROUP BY ALL")
    runs = [timed(lambda: duckdb.sql(agg, params={"files": files}).fetchall()) for _ in range(3)]
    duck_s, rows = min(runs, key=lambda r: r[0])
    same = (ours["groups"], ours["requests"], ours["input_tokens"]) == (len(rows), sum(r[2] for r in rows),
                                                                       sum(r[3] for r in rows))
    select1 = min(wall([*TT, "sql", "select 1", "--warehouse", str(wh)]) for _ in range(3))
    # `select 1` opens no table (a query opens only the tables it names): also time one that opens `usage`
    count_usage = min(wall([*TT, "sql", "select count(*) from usage", "--warehouse", str(wh)]) for _ in range(3))
    help_s = min(wall([*TT, "--help"]) for _ in range(3))
    return [
        figure("4. report --by key_name --by day vs DuckDB, same Parquet", ours["seconds"],
               "duckdb GROUP BY over the snapshot's files", duck_s, 0.8, calls=n, groups=ours["groups"],
               outputs_equal=same, note="best of 3 on both sides"),
        {"figure": "4b. sql \"select 1\" wall time, start-up included", "tokentrail_s": round(select1, 3),
         "baseline": "absolute target 0.3 s", "baseline_s": 0.3, "ratio": round(0.3 / select1, 2), "target": 1.0,
         "met": select1 < 0.3, "help_s": round(help_s, 3), "count_usage_s": round(count_usage, 3)},
    ]


def fig5_memory(work: Path) -> list[dict[str, Any]]:
    """5. Peak RSS with estimation on, from a 50 MB to a 2 GB log; and a watcher on a growing file."""
    src = next(corpus(work / "mem", int(20_000 * SCALE), 0.3, one_file=True).iterdir())
    sizes = [int(50e6 * SCALE), int(500e6 * SCALE), int(2e9 * SCALE)]
    rss: dict[str, int] = {}
    secs: dict[str, float] = {}
    for size in sizes:
        big = grow(src, work / f"big-{size}.jsonl", size)
        s, mb = peak_rss_of([*TT, "ingest", str(big), "--warehouse", str(work / f"wh-mem-{size}"), "-j", "1"])
        rss[f"{size // 1_000_000}MB"], secs[f"{size // 1_000_000}MB"] = mb, s
        big.unlink()
    peak = max(rss.values())
    watch = watch_rss(work, src, int(1.05e9 * SCALE))
    return [
        {"figure": "5. peak RSS of ingest with estimation, 50 MB -> 2 GB log", "peak_rss_mb": rss, "seconds": secs,
         "target": "< 300 MB, flat", "met": peak < 300 and max(rss.values()) - min(rss.values()) < 50},
        {"figure": "5b. peak RSS of watch while a file grows", **watch, "target": "< 200 MB",
         "met": watch["watch_peak_rss_mb"] < 200},
    ]


def watch_rss(work: Path, src: Path, grow_bytes: int) -> dict[str, Any]:
    logs = work / "watch-logs"
    logs.mkdir()
    target = logs / "app.log"
    target.touch()
    wh = work / "wh-watch"
    data = src.read_bytes()
    per_copy = child("ingest", str(work / "wh-per-copy"), str(src))["calls"]
    proc = subprocess.Popen([*TT, "watch", str(logs), "--warehouse", str(wh), "--flush-seconds", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    t0 = time.perf_counter()
    written = copies = 0
    with open(target, "ab") as fh:
        while written < grow_bytes:
            fh.write(data)
            fh.flush()
            written += len(data)
            copies += 1
    deadline = time.monotonic() + 1800
    while _calls(wh) < copies * per_copy and time.monotonic() < deadline:
        time.sleep(0.5)
    watch_s = time.perf_counter() - t0
    hwm = _vm_hwm_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    return {"watch_grew_mb": round(written / 1e6), "watch_calls": _calls(wh), "watch_s": round(watch_s, 1),
            "watch_peak_rss_mb": hwm}


def _vm_hwm_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def _calls(wh: Path) -> int:
    from attribution.query import connect
    from ingest.store import Store

    if not Store(wh).exists():
        return 0
    return int(connect(wh).sql("SELECT count(*) FROM calls_all").fetchall()[0][0])


def fig6_parallel(work: Path) -> list[dict[str, Any]]:
    """6. Two workers vs one: many files, and one big file."""
    cores = os.cpu_count() or 1
    logs = corpus(work / "many", int(120_000 * SCALE), 0.1, one_file=False)
    one = child("ingest", str(work / "wh-j1"), str(logs), "--jobs", "1")
    many = child("ingest", str(work / "wh-jn"), str(logs), "--jobs", str(cores))
    big = next(corpus(work / "one-big", int(120_000 * SCALE), 0.1, one_file=True).iterdir())
    big_one = child("ingest", str(work / "wh-b1"), str(big), "--jobs", "1")
    big_many = child("ingest", str(work / "wh-bn"), str(big), "--jobs", str(cores))
    return [
        figure(f"6. parallel ingest, {len(list(logs.iterdir()))} files, {cores} workers vs 1", many["seconds"],
               "the same with one worker", one["seconds"], 1.8, outputs_equal=one["calls"] == many["calls"]),
        figure(f"6b. parallel ingest, one {big.stat().st_size // 1_000_000} MB file, {cores} workers vs 1",
               big_many["seconds"], "the same with one worker", big_one["seconds"], 1.8,
               outputs_equal=big_one["calls"] == big_many["calls"]),
    ]


def fig7_reattribute(work: Path) -> list[dict[str, Any]]:
    """7. `reattribute` of the figure-1 warehouse vs DuckDB copying the same partitions."""
    from deltalake import DeltaTable

    wh = work / "wh-ingest"
    dt = DeltaTable(str(wh / "usage"))
    parts = sorted({p["date"] for p in dt.partitions()})
    ours = child("reattribute", str(wh))
    out = work / "copy-baseline"
    out.mkdir()
    files = dt.file_uris()
    base, _ = timed(lambda: [duckdb.sql(f"COPY (SELECT * FROM read_parquet($files)) TO '{out / d}.parquet' "
                                        "(FORMAT parquet, COMPRESSION zstd)",
                                        params={"files": [f for f in files if f"date={d}/" in f]}) for d in parts])
    return [figure("7. reattribute vs DuckDB copying the same partitions", ours["seconds"],
                   "duckdb COPY (SELECT * FROM read_parquet) per partition", base, 0.8, rows=ours["rows"],
                   partitions=len(parts))]


FIGURES = [("ingest", fig1_ingest), ("reattribute", fig7_reattribute), ("estimation_ingest", fig2_estimation_ingest),
           ("estimation", fig3_estimation), ("queries", fig4_queries), ("parallel", fig6_parallel),
           ("memory", fig5_memory)]
