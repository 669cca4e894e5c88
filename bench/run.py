"""`make bench`: the figures of issue 17, each a ratio to a baseline measured in the same run on the same input.

    BENCH_SCALE=1 (default, under 10 minutes on 2 cores: a 450 MB log, a 2 GB log for memory, a file
    growing by 1 GB under a watcher, a 2M-call warehouse) … BENCH_SCALE=4 for everything 4x larger.

Fairness: tokentrail's library call is timed inside a fresh process with imports and start-up
excluded (bench/child.py), as DuckDB's statement is timed with its connection already open; both
sides' outputs are compared (calls and token sums) and the comparison is recorded next to the
ratio. Ratios > 1 mean tokentrail is faster. Nothing here is asserted: these are measurements.
Writes bench/results.json with machine and date; `bench/readme_table.py` renders it into README.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sample_logs"))
sys.path.insert(0, str(ROOT))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
PY = sys.executable
CHILD = [PY, str(ROOT / "bench" / "child.py")]
TT = [PY, "-m", "attribution"]


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def child(*args: str) -> dict[str, Any]:
    """A measured library call in a fresh process (see bench/child.py)."""
    out = subprocess.run([*CHILD, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {args[0]} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def wall(args: list[str]) -> float:
    """Wall time of a CLI run, start-up included, as a user at a terminal sees it."""
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def peak_rss_of(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one CLI run measured alone (GNU time)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *args], capture_output=True, text=True, check=True)
    secs, kb = out.stderr.strip().splitlines()[-1].split()
    return float(secs), int(kb) // 1024


def corpus(out: Path, calls: int, missing: float, one_file: bool) -> Path:
    from make_samples import write_corpus

    write_corpus(out, calls, seed=11, missing_usage=missing, split_days=not one_file, compress_first=False,
                 malformed=False)
    return out / "app"


def grow(src: Path, dst: Path, target_bytes: int) -> Path:
    """A big log made of copies of a smaller one (ids repeat; ingest stores every line)."""
    data = src.read_bytes()
    with open(dst, "wb") as fh:
        written = 0
        while written < target_bytes:
            fh.write(data)
            written += len(data)
    return dst


def figure(name: str, ours_s: float, baseline: str, baseline_s: float, target: float, **extra: Any) -> dict[str, Any]:
    ratio = baseline_s / ours_s if ours_s else None
    return {"figure": name, "tokentrail_s": round(ours_s, 3), "baseline": baseline, "baseline_s": round(baseline_s, 3),
            "ratio": round(ratio, 2) if ratio is not None else None, "target": target,
            "met": ratio is not None and ratio >= target, **extra}


def main() -> None:
    from figures import FIGURES

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tokentrail-bench-"))
    results: dict[str, Any] = {"machine": machine(), "figures": []}
    only = set(os.environ.get("BENCH_ONLY", "").split(",")) - {""}
    try:
        for key, fig in FIGURES:
            if only and key not in only:
                continue
            t0 = time.perf_counter()
            for r in fig(work):
                r["key"] = key
                r["bench_seconds"] = round(time.perf_counter() - t0, 1)
                results["figures"].append(r)
                print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = round(time.perf_counter() - started, 1)  # the whole run, wall clock
    if not only:
        (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def machine() -> dict[str, Any]:
    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    return {"cores": os.cpu_count(), "memory_mb": mem, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "bench_scale": SCALE}


def print_table(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"\ntokentrail bench: {m['cores']} cores, {m['memory_mb']} MB, {m['date']}, scale {m['bench_scale']}")
    for f in results["figures"]:
        status = "met" if f.get("met") else "NOT MET"
        print(f"  {f['figure']:<58} ours {f.get('tokentrail_s')!s:>8}  base {f.get('baseline_s')!s:>8}  "
              f"ratio {f.get('ratio')!s:>6}  target {f.get('target')}  {status}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
