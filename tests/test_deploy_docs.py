"""docs/deploy.md's systemd unit: the same text as docs/tokentrail-watch.service, and systemd accepts it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

UNIT = REPO / "docs" / "tokentrail-watch.service"


def test_the_guide_shows_the_unit_file_verbatim() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    block = re.search(r"```ini\n(.*?)```", guide, re.S)
    assert block is not None and block.group(1) == UNIT.read_text()


def test_no_setting_carries_an_end_of_line_comment() -> None:
    for n, line in enumerate(UNIT.read_text().splitlines(), 1):
        if "=" in line and not line.lstrip().startswith("#"):
            assert " #" not in line and "\t#" not in line, f"line {n}: systemd would read the comment as part of the value"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's binary exists: point it at this checkout's console script
    exe = Path(sys.executable).parent / "tokentrail"
    unit = tmp_path / "tokentrail-watch.service"
    unit.write_text(UNIT.read_text().replace("/opt/tokentrail/.venv/bin/tokentrail", str(exe)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr  # a bad value is only a warning on stderr
