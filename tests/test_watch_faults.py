"""Fault injection: SIGKILL a real watcher at random moments while a real writer appends and rotates.

At the end every call the writer wrote is in the warehouse exactly once (raw rows, not the
de-duplicating view). `make soak` runs the long variant (TOKENTRAIL_SOAK=1).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.faults import assert_each_once

from attribution.query import connect

HELPER = Path(__file__).parent / "helpers" / "log_writer.py"
SOAK = bool(os.environ.get("TOKENTRAIL_SOAK"))


def _watch(logs: Path, wh: Path) -> subprocess.Popen[bytes]:
    with open(logs.parent / "watch.err", "ab") as err:  # kept for a failure's post-mortem
        return subprocess.Popen([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh),
                                 "--flush-seconds", "0.1", "--flush-rows", "40"],
                                stdout=subprocess.DEVNULL, stderr=err)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    kills_wanted, total, rate = (200, 60_000, 600.0) if SOAK else (22, 6_000, 250.0)
    rnd = random.Random(int(os.environ.get("TOKENTRAIL_FAULT_SEED", "20261124")))
    logs, wh = tmp_path / "logs", tmp_path / "wh"
    logs.mkdir()
    writer = subprocess.Popen([sys.executable, str(HELPER), str(logs), str(total), str(rate), str(rnd.randint(0, 9999)),
                               "", "0.5"])  # no id prefix; rotations pause up to 0.5 s between their two steps
    kills = 0
    try:
        while kills < kills_wanted or writer.poll() is None:
            w = _watch(logs, wh)
            time.sleep(rnd.uniform(0.4, 1.6))
            if kills < kills_wanted:
                w.send_signal(signal.SIGKILL)
                w.wait(30)
                kills += 1
            else:  # enough kills: let one watcher run until the writer is done, then stop it cleanly
                writer.wait(600)
                time.sleep(1.5)
                w.send_signal(signal.SIGTERM)
                assert w.wait(60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0
    final = subprocess.run([sys.executable, "-m", "attribution", "watch", str(logs), "--warehouse", str(wh), "--once"],
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    written = (tmp_path / "written.txt").read_text().split()
    assert len(written) == total
    assert_each_once(connect(wh), "calls_all", written, [logs])
    assert kills >= kills_wanted
    quarantined = list((wh / "quarantine").glob("*/*.parquet"))
    assert not quarantined, "a line was cut: a partial line was taken as complete"
