"""Fault scenarios shared by the local and the S3 tests: real writers, real watchers, real SIGKILLs.

Several log directories, each with its own writer (appending and rotating in all three styles,
pausing up to `rotation_pause` seconds between a rotation's two steps, so watcher passes land
while the copy and the original both hold the same calls) and its own watcher process, all
committing to one warehouse. Watchers are SIGKILLed at random
moments and restarted; meanwhile `reattribute` and `compact` processes are started and
SIGKILLed at random moments too. At the end every written call must be in `calls` and in
`usage` exactly once (raw rows, not the de-duplicating views).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HELPER = Path(__file__).parent / "log_writer.py"
PY = [sys.executable, "-m", "attribution"]


def _spawn(args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    if log is None:
        return subprocess.Popen([*PY, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    with open(log, "ab") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([*PY, *args], stdout=subprocess.DEVNULL, stderr=err, env=env)


def run_scenario(tmp_path: Path, warehouse: str, env: dict[str, str], *, hosts: int, total: int, rate: float,
                 kills_per_host: int, seed: int, rules: Path, side_kills: int = 4,
                 flush_seconds: str = "0.1", rotation_pause: float = 0.5) -> dict[str, int]:
    rnd = random.Random(seed)
    dirs = []
    writers = []
    for h in range(hosts):
        d = tmp_path / f"host{h}" / "logs"
        d.mkdir(parents=True)
        dirs.append(d)
        writers.append(subprocess.Popen([sys.executable, str(HELPER), str(d), str(total), str(rate),
                                         str(rnd.randint(0, 9999)), f"h{h}-", str(rotation_pause)]))

    def watch(d: Path) -> subprocess.Popen[bytes]:
        return _spawn(["watch", str(d), "--warehouse", warehouse, "--rules", str(rules),
                       "--flush-seconds", flush_seconds, "--flush-rows", "40"], env, d.parent / "watch.err")

    watchers = [watch(d) for d in dirs]
    started = [time.monotonic()] * hosts
    kills = [0] * hosts
    side = {"reattribute": 0, "compact": 0}
    try:
        deadline = time.monotonic() + 600
        while (any(w.poll() is None for w in writers) or sum(kills) < hosts * kills_per_host) \
                and time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.3, 1.2))
            h = rnd.choice([i for i in range(hosts) if kills[i] < kills_per_host] or [0])
            if kills[h] < kills_per_host:
                watchers[h].send_signal(signal.SIGKILL)
                watchers[h].wait(30)
                kills[h] += 1
                watchers[h] = watch(dirs[h])
                started[h] = time.monotonic()
            kind = rnd.choice(("reattribute", "compact"))
            if side[kind] < side_kills:
                args = ["reattribute", "--rules", str(rules)] if kind == "reattribute" else ["compact", "--vacuum-hours", "0"]
                p = _spawn([*args, "--warehouse", warehouse], env)
                time.sleep(rnd.uniform(0.1, 2.0))
                p.send_signal(signal.SIGKILL)
                p.wait(30)
                side[kind] += 1
        for w in writers:
            assert w.wait(600) == 0
        # a process still importing Python when SIGTERM arrives dies of it (-15) before any handler
        # exists: stop each watcher only once it has been up long enough to have started
        time.sleep(max(1.5, max(started) + 8.0 - time.monotonic()))
        for w in watchers:
            w.send_signal(signal.SIGTERM)
        for d, w in zip(dirs, watchers, strict=True):
            code = w.wait(120)
            assert code == 0, (code, (d.parent / "watch.err").read_text()[-3000:])
    finally:
        for p in [*writers, *watchers]:
            if p.poll() is None:
                p.kill()
                p.wait()
    for d in dirs:  # a last pass over what the killed watchers may have left behind
        final = subprocess.run([*PY, "watch", str(d), "--warehouse", warehouse, "--rules", str(rules), "--once"],
                               capture_output=True, text=True, timeout=300, env=env)
        assert final.returncode == 0, final.stderr
    return {"kills": sum(kills), **side}


def check_exactly_once(tmp_path: Path, warehouse: str, env: dict[str, str], hosts: int, total: int) -> None:
    from attribution.query import connect

    written = []
    for h in range(hosts):
        ids = (tmp_path / f"host{h}" / f"written-h{h}-.txt").read_text().split()
        assert len(ids) == total
        written += ids
    con = connect(warehouse)
    dirs = [tmp_path / f"host{h}" / "logs" for h in range(hosts)]
    for view in ("calls_all", "usage_all"):
        assert_each_once(con, view, written, dirs)
    (n_q,), = con.sql("SELECT count(*) FROM quarantine").fetchall()
    assert n_q == 0, "a line was cut: a partial line was taken as complete"
    # totals match the input: every writer's tokens, call by call
    (tokens,), = con.sql("SELECT sum(input_tokens) FROM usage_all").fetchall()
    expected = sum(10 + int(i[-8:]) % 7 for i in written)
    assert tokens == expected


def assert_each_once(con: object, view: str, written: list[str], log_dirs: list[Path]) -> None:
    """Every written call is in `view` once: none stored twice, none lost, nothing else."""
    counts = Counter(r[0] for r in con.sql(f"SELECT call_id FROM {view}").fetchall())  # type: ignore[attr-defined]
    duplicated = {k: n for k, n in counts.items() if n > 1}
    missing = set(written) - set(counts)
    assert not duplicated, f"{view}: {len(duplicated)} calls duplicated, e.g. {sorted(duplicated)[:5]}" + \
        where(con, view, duplicated, log_dirs)
    assert not missing, f"{view}: {len(missing)} calls lost, e.g. {sorted(missing)[:5]}" + where(con, view, {}, log_dirs)
    assert set(counts) == set(written)


def where(con: object, view: str, ids: dict[str, int], log_dirs: list[Path]) -> str:
    """For a failure message: which sources and files the named calls were read from, and the log files
    (with inodes) in each directory: a rare failure must say enough to be explained from its message alone."""
    lines = []
    if ids:
        listed = ", ".join("'" + i + "'" for i in sorted(ids)[:400])
        rows = con.sql(f"SELECT source_id, source_file, min(source_offset), max(source_offset), count(*) "  # type: ignore[attr-defined]
                       f"FROM {view} WHERE call_id IN ({listed}) GROUP BY ALL ORDER BY 3").fetchall()
        lines += [f"  {sid} {Path(f).name} offsets {lo}..{hi} ({n} rows)" for sid, f, lo, hi, n in rows]
    for d in log_dirs:
        lines.append(f"  {d.parent.name}: " + " ".join(f"{p.name}({p.stat().st_ino})" for p in sorted(d.iterdir())))
    return "\n" + "\n".join(lines)
