"""Exactly once across hosts, crashes and object storage (ARCHITECTURE.md, "Exactly once").

Three hosts (each a log directory, a writer and a watcher) commit to one warehouse, local or
on a real S3-compatible server on 127.0.0.1; watchers, `reattribute` and `compact` are SIGKILLed
at random moments. Every call must be in `calls` and `usage` exactly once, totals equal.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.faults import check_exactly_once, run_scenario
from s3server import BUCKET, s3_server

RULES = "version: 1\nrules:\n  feature:\n    - {id: f, when: {route: {prefix: /}}, value: faults}\n"


def _rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


@pytest.mark.slow
def test_three_hosts_one_local_warehouse_with_sigkills(tmp_path: Path) -> None:
    wh = str(tmp_path / "wh")
    done = run_scenario(tmp_path, wh, dict(os.environ), hosts=3, total=1200, rate=120.0, kills_per_host=4,
                        seed=int(os.environ.get("TOKENTRAIL_FAULT_SEED", "12")), rules=_rules(tmp_path))
    assert done["kills"] == 12 and done["reattribute"] >= 1 and done["compact"] >= 1
    check_exactly_once(tmp_path, wh, {}, hosts=3, total=1200)


@pytest.mark.slow
def test_three_hosts_one_s3_warehouse_with_sigkills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with s3_server() as env:
        wh = f"s3://{BUCKET}/warehouse"
        done = run_scenario(tmp_path, wh, env, hosts=3, total=800, rate=80.0, kills_per_host=3,
                            seed=int(os.environ.get("TOKENTRAIL_FAULT_SEED", "13")), rules=_rules(tmp_path),
                            side_kills=3, flush_seconds="0.5")
        assert done["kills"] == 9
        for k, v in env.items():
            if k.startswith("AWS_"):
                monkeypatch.setenv(k, v)
        check_exactly_once(tmp_path, wh, env, hosts=3, total=800)
