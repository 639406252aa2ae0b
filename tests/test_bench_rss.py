"""servesim bench's peak memory is the child's own, not its parent's (sim/tools/bench.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_a_child_does_not_report_its_parents_peak():
    ballast = bytearray(400 * 1024 * 1024)  # 400 MiB resident in this (parent) process
    ballast[::4096] = b"x" * len(ballast[::4096])
    out = subprocess.run([sys.executable, "-c", "from sim.tools.bench import peak_rss_kb; print(peak_rss_kb())"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    del ballast
    assert 1_000 < float(out.stdout) < 200 * 1024  # KiB: the child alone is some tens of MB
