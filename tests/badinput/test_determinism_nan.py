"""Issue 19, defect 9: the determinism check must hold for runs whose requests have no
inter-token gaps (one output token each: ITL and TPOT are NaN)."""

from __future__ import annotations

import copy
import math

import yaml

from sim import simulate
from sim.tools.check import load_metrics, write_baseline
from sim.tools.output import write_run
from tests.conftest import make_config_dict, same_value
from tests.test_conformance import _same

ONE_TOKEN = {"name": "synthetic", "num_requests": 30, "rate_rps": 10.0, "input_tokens": 32, "output_tokens": 1}


def test_nan_metrics_compare_equal_run_to_run_and_to_their_golden(tmp_path):
    data = make_config_dict(workload=ONE_TOKEN)
    a, b = simulate(copy.deepcopy(data)), simulate(copy.deepcopy(data))
    a.summary.pop("wall_s"), b.summary.pop("wall_s")
    nan_keys = [k for k, v in a.summary.items() if isinstance(v, float) and math.isnan(v)]
    assert "itl_p99_s" in nan_keys and "tpot_mean_s" in nan_keys
    assert any(a.summary[k] != b.summary[k] for k in nan_keys)  # what `==` said
    assert all(_same(a.summary[k], b.summary[k]) for k in a.summary)
    # a baseline stores NaN as null: the golden comparison must accept it
    write_run(a, tmp_path / "run")
    baseline = tmp_path / "golden.yaml"
    write_baseline(baseline, load_metrics(tmp_path / "run"), None, "test")
    golden = yaml.safe_load(baseline.read_text())["metrics"]
    assert any(v is None for v in golden.values())
    assert all(_same(v, b.summary.get(k)) for k, v in golden.items())


def test_same_value_recurses_and_still_tells_values_apart():
    assert same_value({"x": [float("nan"), 1]}, {"x": [None, 1]})
    assert not same_value({"x": 1.0}, {"x": float("nan")})
    assert not same_value([1, 2], [1, 2, 3])
