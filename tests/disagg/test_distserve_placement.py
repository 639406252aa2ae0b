"""DistServe's placement search runs end to end and picks a cheapest feasible placement."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import distserve_placement  # noqa: E402


def test_placement_search_reports_cheapest(capsys):
    assert distserve_placement.main(["--rate", "6", "--max-gpus", "2", "--requests", "200"]) == 0
    out = capsys.readouterr().out
    assert "cheapest for 6.0 req/s" in out
    # decode at tp=2 sustains more than at tp=1 (more bandwidth per instance)
    rows = [line.split() for line in out.splitlines() if line.startswith("decode")]
    rate = {(int(r[1]), int(r[2])): float(r[3]) for r in rows}
    assert rate[(2, 1)] > rate[(1, 1)]
