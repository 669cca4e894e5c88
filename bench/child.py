"""One measured library call in a fresh process: imports and start-up are excluded from `seconds`.

    python bench/child.py ingest WAREHOUSE PATH [--jobs N] [--no-estimate]
    python bench/child.py report WAREHOUSE
    python bench/child.py reattribute WAREHOUSE RULES

Prints one JSON object: `seconds` (the call alone), `peak_rss_mb` (the whole process, imports
included, as a user's process would be), and what the call produced so the bench can check that
tokentrail and its baseline computed the same thing.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RULES = ROOT / "sample_logs" / "rules.yaml"


def _peak_rss_mb() -> int:
    """This process's own high-water mark (VmHWM). Not `ru_maxrss`: Linux carries that across exec,
    so it would report the bench process's size at the moment it forked this child."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def ingest(args: argparse.Namespace) -> dict[str, object]:
    from attribution import api
    from ingest.pipeline import IngestOptions

    options = IngestOptions(jobs=args.jobs)
    if args.no_estimate:
        options.estimate = False  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    report = api.ingest([args.path], args.warehouse, rules=RULES, options=options)
    seconds = time.perf_counter() - t0
    from attribution.query import connect

    calls, inp, out = connect(args.warehouse).sql(
        "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM calls_all").fetchall()[0]
    return {"seconds": seconds, "calls": int(calls), "input_tokens": int(inp or 0), "output_tokens": int(out or 0),
            "estimated": report.summary.as_dict().get("estimated")}


def report(args: argparse.Namespace) -> dict[str, object]:
    from attribution.query import connect
    from attribution.reports import report as run_report

    t0 = time.perf_counter()
    table = run_report(args.warehouse, ["key_name", "day"], con=connect(args.warehouse))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "groups": table.num_rows,
            "requests": int(sum(table.column("requests").to_pylist())),
            "input_tokens": int(sum(table.column("input_tokens").to_pylist()))}


def reattribute(args: argparse.Namespace) -> dict[str, object]:
    from attribution import api
    from attribution.current import build_engine
    from attribution.reattribute import reattribute as run

    store = api.open_store(args.warehouse, write=True)
    engine = build_engine(store, args.rules, None, remember=False)
    t0 = time.perf_counter()
    result = run(store, engine)
    return {"seconds": time.perf_counter() - t0, "rows": result.rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("warehouse")
    p.add_argument("path")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--no-estimate", action="store_true")
    p = sub.add_parser("report")
    p.add_argument("warehouse")
    p = sub.add_parser("reattribute")
    p.add_argument("warehouse")
    p.add_argument("rules", nargs="?", default=str(RULES))
    args = parser.parse_args()
    out = {"ingest": ingest, "report": report, "reattribute": reattribute}[args.cmd](args)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
