"""Rewrite the README's benchmark section from bench/results.json (run after `make bench`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _cell(f: dict[str, Any]) -> tuple[str, str, str, str]:
    """(tokentrail, baseline, ratio, target) for one figure record."""
    if "peak_rss_mb" in f and isinstance(f["peak_rss_mb"], dict):  # memory: sizes -> MB
        ours = ", ".join(f"{mb} MB ({size} log)" for size, mb in f["peak_rss_mb"].items())
        return ours, "—", "—", f"{f['target']}: {'met' if f['met'] else '**not met**'}"
    if "watch_peak_rss_mb" in f:
        ours = f"{f['watch_peak_rss_mb']} MB while a file grew {f['watch_grew_mb']} MB ({f['watch_calls']:,} calls)"
        return ours, "—", "—", f"{f['target']}: {'met' if f['met'] else '**not met**'}"
    ours = f"{f['tokentrail_s']} s"
    if "tokentrail_mb_s" in f:
        ours += f" ({f['tokentrail_mb_s']} MB/s on {f['input_mb']} MB)"
    base = f"{f['baseline']}: {f['baseline_s']} s"
    if "outputs_equal" in f:
        base += "; same output" if f["outputs_equal"] else "; **outputs differ**"
    target = f"≥ {f['target']}" if isinstance(f["target"], int | float) else str(f["target"])
    return ours, base, str(f["ratio"]), f"{target}: {'met' if f['met'] else '**not met**'}"


def section(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [START, f"Measured {m['date']}: {m['cores']} cores, {m['memory_mb']:,} MB RAM, Python {m['python']}, "
             f"`BENCH_SCALE={m['bench_scale']}`, {r.get('total_seconds', '?')} s in all.", "",
             "| figure | tokentrail | baseline (same run, same input) | ratio | target |", "|---|---|---|---|---|"]
    for f in r["figures"]:
        ours, base, ratio, target = _cell(f)
        lines.append(f"| {f['figure']} | {ours} | {base} | {ratio} | {target} |")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section(results), text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
