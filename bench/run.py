"""`make bench`: every figure is a ratio to a baseline measured in the same run on the same input.

    BENCH_SCALE=1 (default, about 5 minutes on 2 cores: a 2 GB log, a file growing by 1 GB, a
    2M-call warehouse) … BENCH_SCALE=5 (a 10M-call warehouse, 10 GB log).

Writes bench/results.json (with machine and date) and prints a table. Ratios > 1 mean tokentrail
is faster than the baseline. Nothing here is asserted: these are measurements.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sample_logs"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
TT = [sys.executable, "-m", "attribution"]
RULES = ROOT / "sample_logs" / "rules.yaml"


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_child(args: list[str]) -> float:
    """Wall time of a child process (a CLI run, start-up included, as users see it)."""
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def peak_rss_of(args: list[str]) -> tuple[float, int]:
    """Peak RSS of one child measured alone (GNU time), so earlier children do not mask it."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *args], capture_output=True, text=True, check=True)
    wall, kb = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kb)


def corpus(out: Path, calls: int, missing: float, one_file: bool) -> Path:
    from make_samples import write_corpus

    write_corpus(out, calls, seed=11, missing_usage=missing, split_days=not one_file, compress_first=False, malformed=False)
    return out / "app"


def grow(src: Path, dst: Path, target_bytes: int) -> Path:
    """A big log made of copies of a smaller one (ids repeat; ingest does not care)."""
    data = src.read_bytes()
    with open(dst, "wb") as fh:
        written = 0
        while written < target_bytes:
            fh.write(data)
            written += len(data)
    return dst


def fig_ingest(work: Path) -> dict[str, Any]:
    logs = corpus(work / "usage-all", int(60_000 * SCALE), 0.0, one_file=True)
    f = next(logs.iterdir())
    mb = f.stat().st_size / 1e6
    base, (n,) = timed(lambda: duckdb.sql(f"SELECT count(*) FROM read_json('{f}', format='newline_delimited', "
                                           "maximum_object_size=100000000)").fetchall()[0])
    wh = work / "wh-ingest"
    ours = run_child([*TT, "ingest", str(f), "--warehouse", str(wh), "--rules", str(RULES), "-j", "1"])
    calls = _count(wh, "calls_all")
    return {"figure": "1. ingest, all calls carry usage", "input_mb": round(mb, 1), "calls": calls,
            "tokentrail_s": round(ours, 2), "tokentrail_mb_s": round(mb / ours, 1), "tokentrail_calls_s": round(calls / ours),
            "baseline": "duckdb read_json count(*)", "baseline_s": round(base, 2), "ratio": round(base / ours, 2),
            "target": ">= 1.0 (aim 2)", "lines": n}


def fig_estimation(work: Path) -> dict[str, Any]:
    """Estimation cost vs raw tiktoken over exactly the texts that needed counting."""
    from ingest.formats.base import ParseContext
    from ingest.formats.openai_app import OpenAIAppFormat
    from ingest.formats.openai_bodies import EstimateRequest
    from ingest.keys import KeyHasher
    from ingest.tokens import Plan, TokenCounter, encoding_for_model, fill_estimates, get_encoding, plan_input

    logs = corpus(work / "missing-30", int(30_000 * SCALE), 0.30, one_file=True)
    f = next(logs.iterdir())
    from ingest.pipeline import DEFAULT_CHUNK_LINES

    fmt = OpenAIAppFormat()
    ctx = ParseContext(str(f), "bench", KeyHasher(b"x" * 32))
    counter = TokenCounter()
    get_encoding("o200k_base"), get_encoding("cl100k_base")
    raw = ours = 0.0
    n = n_texts = n_chars = 0
    chat_requests: list[Any] = []

    def measure(chunk: list[Any]) -> None:
        """One chunk as the pipeline sees it: raw tiktoken over its texts vs fill_estimates on its calls."""
        nonlocal raw, ours, n, n_texts, n_chars
        texts: list[tuple[str, str]] = []
        for c in chunk:
            est = c._estimate
            enc, _ = encoding_for_model(est.model)
            if c.input_tokens is None:
                texts += [(enc, t) for t in plan_input(est.endpoint, est.request, est.model, enc).texts]
            if c.output_tokens is None and est.output_texts is not None:
                p = Plan()
                for t in est.output_texts:
                    p.add(t)
                texts += [(enc, t) for t in p.texts]
            if est.endpoint == "chat.completions" and est.request and len(chat_requests) < 2000:
                chat_requests.append(est.request)
        encs = {name: get_encoding(name) for name in {e for e, _ in texts}}
        t_raw, _ = timed(lambda: [len(encs[e].encode_ordinary(t)) for e, t in texts])
        t_ours, k = timed(lambda: fill_estimates(chunk, counter))
        raw, ours, n = raw + t_raw, ours + t_ours, n + k
        n_texts, n_chars = n_texts + len(texts), n_chars + sum(len(t) for _, t in texts)

    chunk: list[Any] = []
    with open(f, "rb") as fh:
        for i, line in enumerate(fh):
            ctx.offset = i
            chunk.extend(c for c in fmt.parse(json.loads(line), ctx) if isinstance(c._estimate, EstimateRequest))
            if (i + 1) % DEFAULT_CHUNK_LINES == 0:
                measure(chunk)
                chunk = []
    measure(chunk)
    wh = work / "wh-missing"
    whole = run_child([*TT, "ingest", str(f), "--warehouse", str(wh), "--rules", str(RULES), "-j", "1"])
    out = {"figure": "2. estimation for calls lacking usage (30%)", "calls_estimated": n, "texts": n_texts,
           "chars": n_chars, "tokentrail_s": round(ours, 3),
           "baseline": "tiktoken encode_ordinary, same texts, no memo", "baseline_s": round(raw, 3),
           "ratio": round(raw / ours, 2),
           "memo_hit_rate": round(counter.hits / max(counter.hits + counter.misses, 1), 3),
           "whole_ingest_s": round(whole, 2),
           "whole_ingest_mb_s": round(f.stat().st_size / 1e6 / whole, 1), "target": ">= 0.8 (memo: > 1)"}
    out.update(litellm_comparison(chat_requests))
    return out


def litellm_comparison(chats: list[Any]) -> dict[str, Any]:
    """LiteLLM's token_counter on the same chat requests, if it installed into bench/.venv-litellm."""
    py = ROOT / "bench" / ".venv-litellm" / "bin" / "python"
    if not py.exists():
        return {"litellm": "not installed (bench/.venv-litellm missing)"}
    if not chats:
        return {}
    from ingest.tokens import TokenCounter, count_request_input

    counter = TokenCounter()
    ours, _ = timed(lambda: [count_request_input(r, counter=counter) for r in chats])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(chats, fh)
    script = ("import json,sys,time\nfrom litellm import token_counter\nreqs=json.load(open(sys.argv[1]))\n"
              "t=time.perf_counter()\n[token_counter(model=r['model'], messages=r['messages']) for r in reqs]\n"
              "print(time.perf_counter()-t)\n")
    try:
        out = subprocess.run([str(py), "-c", script, fh.name], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        theirs = float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return {"litellm": "installed but token_counter could not run offline here"}
    return {"litellm_token_counter_s": round(theirs, 3), "tokentrail_same_requests_s": round(ours, 3),
            "ratio_vs_litellm": round(theirs / ours, 2), "litellm_requests": len(chats)}


def fig_report(work: Path) -> dict[str, Any]:
    """report --by key_name --by day on a synthetic warehouse vs DuckDB aggregating the same JSONL."""
    n = int(2_000_000 * SCALE)
    wh = work / "wh-report"
    jsonl = work / "report.jsonl"
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE u AS SELECT 'chatcmpl-' || i AS call_id,
        TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 86400 * 90 // {n}) AS ts,
        'key-' || (i % 25) AS key_name, 'feature-' || (i % 40) AS feature, 'user-' || (i % 5000) AS end_user,
        'gpt-4o-mini' AS model, (200 + i % 1800)::BIGINT AS input_tokens, 0::BIGINT AS cached_input_tokens,
        (50 + i % 400)::BIGINT AS output_tokens, 0::BIGINT AS reasoning_tokens, 'reported' AS token_source,
        ((200 + i % 1800) * 0.15 + (50 + i % 400) * 0.6) / 1e6 AS cost_usd, now() AS ingested_at,
        'bench' AS source_file, i AS source_offset FROM range({n}) r(i)""")
    from deltalake import write_deltalake

    table = con.sql("SELECT *, CAST(ts AS DATE) AS date FROM u").to_arrow_table()
    for name in ("usage", "calls"):  # Delta tables, as tokentrail writes them
        write_deltalake(str(wh / name), table, partition_by=["date"])
    parquet_files = [str(f) for f in (wh / "usage").rglob("*.parquet")]
    con.execute(f"COPY u TO '{jsonl}' (FORMAT json)")
    from attribution.reports import report

    ours, table = timed(lambda: report(wh, ["key_name", "day"]))
    same_files, _ = timed(lambda: duckdb.sql(
        "SELECT key_name, CAST(ts AS DATE) AS day, count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), "
        "sum(reasoning_tokens), sum(cost_usd) FROM read_parquet($files) GROUP BY ALL", params={"files": parquet_files}
    ).fetchall())
    base, rows = timed(lambda: duckdb.sql(
        f"SELECT key_name, CAST(ts AS DATE) AS day, count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), "
        f"sum(reasoning_tokens), sum(cost_usd) FROM read_json('{jsonl}', format='newline_delimited') GROUP BY ALL").fetchall())
    return {"figure": "3. report --by key_name --by day", "calls": n, "groups": table.num_rows,
            "tokentrail_s": round(ours, 2), "baseline": "duckdb aggregate from JSONL", "baseline_s": round(base, 2),
            "ratio": round(base / ours, 1), "target": ">= 50", "baseline_groups": len(rows),
            "duckdb_same_parquet_s": round(same_files, 2), "ratio_vs_same_parquet": round(same_files / ours, 2)}


def fig_memory(work: Path) -> dict[str, Any]:
    base = corpus(work / "mem", int(20_000 * SCALE), 0.1, one_file=True)
    src = next(base.iterdir())
    sizes = [int(500e6 * SCALE), int(2e9 * SCALE)]  # the 2 GB log at the default scale
    out: dict[str, Any] = {"figure": "4. peak RSS", "target": "< 300 MB, independent of size"}
    for size in sizes:
        big = grow(src, work / f"big-{size}.jsonl", size)
        wh = work / f"wh-mem-{size}"
        wall, kb = peak_rss_of([*TT, "ingest", str(big), "--warehouse", str(wh), "-j", "1"])
        out[f"ingest_{size // 1_000_000}MB_peak_rss_mb"] = round(kb / 1024)
        out[f"ingest_{size // 1_000_000}MB_s"] = round(wall, 1)
        big.unlink()
    out.update(fig_watch(work, src, int(1.05e9 * SCALE)))  # a file growing by 1 GB
    return out


def fig_watch(work: Path, src: Path, grow_bytes: int) -> dict[str, Any]:
    """A watcher tailing a file that grows by `grow_bytes`, vs batch ingest of the same file."""
    logs = work / "watch-logs"
    logs.mkdir()
    target = logs / "app.log"
    target.touch()
    wh = work / "wh-watch"
    data = src.read_bytes()
    per_copy_wh = work / "wh-per-copy"
    subprocess.run([*TT, "ingest", str(src), "--warehouse", str(per_copy_wh), "-j", "1"], check=True, stdout=subprocess.DEVNULL)
    per_copy = _rows_committed(per_copy_wh)
    proc = subprocess.Popen([*TT, "watch", str(logs), "--warehouse", str(wh), "--flush-seconds", "1", "--flush-rows", "20000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    t0 = time.perf_counter()
    written = 0
    copies = 0
    with open(target, "ab") as fh:
        while written < grow_bytes:
            fh.write(data)
            fh.flush()
            written += len(data)
            copies += 1
    expected = copies * per_copy
    deadline = time.monotonic() + 3600
    while _rows_committed(wh) < expected and time.monotonic() < deadline:
        time.sleep(0.25)
    watch_s = time.perf_counter() - t0
    watch_rss = _vm_hwm_kb(proc.pid)  # the watcher's own peak RSS, read before it exits
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    calls = _rows_committed(wh)
    batch_wh = work / "wh-watch-batch"
    batch_s, batch_kb = peak_rss_of([*TT, "ingest", str(target), "--warehouse", str(batch_wh), "-j", "1"])
    return {"watch_grew_mb": round(written / 1e6), "watch_calls": calls, "watch_s": round(watch_s, 1),
            "watch_calls_s": round(calls / watch_s), "watch_peak_rss_mb": round(watch_rss / 1024),
            "batch_same_file_s": round(batch_s, 1), "batch_peak_rss_mb": round(batch_kb / 1024),
            "watch_vs_batch_throughput_ratio": round(batch_s / watch_s, 2)}


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _count(wh: Path, view: str) -> int:
    """Rows of a view over the warehouse's current Delta snapshot (0 before the first commit)."""
    from attribution.query import connect
    from ingest.store import Store

    if not Store(wh).exists():
        return 0
    return int(connect(wh).sql(f"SELECT count(*) FROM {view}").fetchall()[0][0])


def _rows_committed(wh: Path) -> int:
    return _count(wh, "calls_all") + _count(wh, "quarantine")


def fig_parallel(work: Path) -> dict[str, Any]:
    logs = corpus(work / "many", int(120_000 * SCALE), 0.1, one_file=False)
    one = run_child([*TT, "ingest", str(logs), "--warehouse", str(work / "wh-j1"), "-j", "1"])
    jobs = os.cpu_count() or 1
    many = run_child([*TT, "ingest", str(logs), "--warehouse", str(work / "wh-jn"), "-j", str(jobs)])
    return {"figure": "5. parallel ingest of many files", "files": len(list(logs.iterdir())), "jobs": jobs,
            "one_core_s": round(one, 2), "all_cores_s": round(many, 2), "ratio": round(one / many, 2), "target": ">= 1.7"}


def fig_reattribute(work: Path) -> dict[str, Any]:
    from deltalake import DeltaTable

    wh = work / "wh-ingest"  # from figure 1
    dt = DeltaTable(str(wh / "calls"))
    parts = sorted({p["date"] for p in dt.partitions()})
    rows = _count(wh, "calls_all")
    ours = run_child([*TT, "reattribute", "--rules", str(RULES), "--warehouse", str(wh)])
    out_dir = work / "copy-baseline"
    out_dir.mkdir()
    files = dt.file_uris()
    base, _ = timed(lambda: [duckdb.sql(f"COPY (SELECT * FROM read_parquet($files)) TO '{out_dir / d}.parquet' "
                                        "(FORMAT parquet, COMPRESSION zstd)",
                                        params={"files": [f for f in files if f"date={d}/" in f]}) for d in parts])
    return {"figure": "reattribute (issue 9)", "rows": rows, "partitions": len(parts), "tokentrail_s": round(ours, 2),
            "rows_per_s": round(rows / ours), "baseline": "duckdb COPY (SELECT * FROM read_parquet) per partition",
            "baseline_s": round(base, 2), "ratio": round(base / ours, 2)}


def machine() -> dict[str, Any]:
    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    return {"cores": os.cpu_count(), "memory_mb": mem, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "bench_scale": SCALE}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tokentrail-bench-"))
    results: dict[str, Any] = {"machine": machine(), "figures": []}
    try:
        for fig in (fig_ingest, fig_estimation, fig_reattribute, fig_report, fig_parallel, fig_memory):
            t0 = time.perf_counter()
            r = fig(work)
            r["bench_seconds"] = round(time.perf_counter() - t0, 1)
            results["figures"].append(r)
            print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    m = results["machine"]
    t = Table(title=f"tokentrail bench: {m['cores']} cores, {m['memory_mb']} MB, {m['date']}, scale {m['bench_scale']}")
    for c in ("figure", "tokentrail", "baseline", "ratio", "target"):
        t.add_column(c)
    for f in results["figures"]:
        ours = f.get("tokentrail_s", f.get("all_cores_s", ""))
        base = f.get("baseline_s", f.get("one_core_s", ""))
        t.add_row(f["figure"], str(ours), f"{base} ({f.get('baseline', 'one core')})" if base != "" else "",
                  str(f.get("ratio", "")), str(f.get("target", "")))
    Console(width=170).print(t)


if __name__ == "__main__":
    main()
