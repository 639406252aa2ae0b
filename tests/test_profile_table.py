"""The profile table (sim/tools/profile_table.py): areas by file, shares that add up, a real run."""

from __future__ import annotations

import pytest

from sim.tools import bench
from sim.tools.profile_table import COLUMNS, area_of, markdown, profile_scenario


@pytest.mark.parametrize("filename, area", [
    ("/x/site-packages/simpy/core.py", "SimPy kernel"),
    ("/repo/sim/engine/fast_path.py", "fast path"),
    ("/repo/sim/engine/spec_stretch.py", "speculation"),
    ("/repo/sim/engine/replica.py", "replica loop"),
    ("/repo/policies/kv/paged.py", "KV"),
    ("/repo/hardware/analytic.py", "cost model"),
    ("/repo/traces/azure.py", "workload"),
    ("~", "builtins"),
    ("/repo/sim/api.py", "other"),
])
def test_area_of(filename, area):
    assert area_of(filename) == area


def test_a_real_profile_adds_up(monkeypatch):
    small = bench._config({"name": "trace", "path": str(bench.DATA / "azure_llm_2023_code.csv"), "max_requests": 150},
                          bench._pool(2), "least_outstanding")
    monkeypatch.setitem(bench.SCENARIOS, "tiny", lambda: small)
    row = profile_scenario("tiny", top=3)
    assert set(row["shares"]) == set(COLUMNS)
    assert sum(row["shares"].values()) == pytest.approx(100.0)
    assert row["shares"]["replica loop"] > 0 and row["shares"]["SimPy kernel"] > 0
    assert row["events_per_request"] > 1 and len(row["top"]) == 3
    table = markdown([row])
    assert "| `tiny` |" in table and table.count("\n") == 6
