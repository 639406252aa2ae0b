"""Bad sweep files fail before any point runs, naming the problem."""

from __future__ import annotations

import pytest

from sim.tools.cli import main
from sim.tools.sweep import SweepError, load_sweep
from tests.experiments.conftest import small_base, write_sweep

CASES = [
    ({"grid": {"cluster.pools[0].schedular.name": ["vllm_v1"]}}, "cluster.pools[0].schedular"),
    ({"grid": {"workload.rate_scal": [1, 2]}}, "workload.rate_scal"),
    ({"grid": {}}, "grid: is empty"),
    ({"grid": {"workload.rate_scale": []}}, "grid.workload.rate_scale: empty list"),
    ({"zip": {"workload.rate_scale": [1, 2, 3], "slo.ttft_s": [0.5, 1.0]}},
     "zip: lists differ in length (workload.rate_scale: 3, slo.ttft_s: 2)"),
    ({"grid": {"workload.rate_scale": [1, -2]}}, "workload.rate_scale"),
    ({"points": []}, "points: expected a non-empty list"),
    ({"seeds": 0}, "seeds"),
    ({"gird": {"workload.rate_scale": [1]}}, "unknown section 'gird'; did you mean 'grid'?"),
    ({"grid": {"seed": [1, 2]}}, "vary the seed with 'seeds:'"),
    ({"grid": {"workload.rate_scale": [1]}, "zip": {"workload.rate_scale": [2]}}, "already swept in grid"),
]


@pytest.mark.parametrize("section, message", CASES)
def test_bad_sweep_is_rejected_with_its_problem_named(section, message):
    with pytest.raises(SweepError) as info:
        load_sweep({"base": small_base(), **section})
    assert message in str(info.value)


def test_missing_base_and_missing_trace_are_named(tmp_path):
    with pytest.raises(SweepError, match="missing 'base'"):
        load_sweep({"grid": {"workload.rate_scale": [1]}})
    with pytest.raises(SweepError, match="config file not found: nowhere.yaml"):
        load_sweep({"base": "nowhere.yaml"}, base_dir=tmp_path)
    with pytest.raises(SweepError, match="trace file not found"):
        load_sweep({"base": small_base(), "grid": {"workload.path": ["no/such/trace.csv"]}})


@pytest.mark.parametrize("section, message", CASES[:5])
def test_cli_fails_before_any_point_runs(tmp_path, capsys, section, message):
    path = write_sweep(tmp_path / "bad.yaml", {"base": small_base(), **section})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and message in err and "Traceback" not in err
    assert not out.exists()  # nothing ran, nothing was written
