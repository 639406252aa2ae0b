"""Capacity search: the bracket is within tolerance and straddles the target attainment."""

from __future__ import annotations

import json

import pytest

from sim.api import simulate
from sim.config import set_dotted
from sim.errors import ConfigError
from sim.tools.capacity import find_capacity, parse_slo, rate_param
from sim.tools.capacity_slo import coerce_spec, evaluate
from sim.tools.cli import main
from tests.conftest import make_config_dict
from tests.experiments.conftest import small_base


def _window(data: dict, param: str, value: float, slo: dict) -> float:
    point = json.loads(json.dumps(data))
    set_dotted(point, param, value)
    return evaluate(simulate(point), coerce_spec(slo), 0.9)


def test_synthetic_capacity_brackets_the_target():
    data = make_config_dict(workload={"name": "synthetic", "num_requests": 400, "rate_rps": 5.0,
                                      "input_tokens": 256, "input_tokens_max": 1024,
                                      "output_tokens": 8, "output_tokens_max": 64},
                            cost={"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-4})
    result = find_capacity(data, attainment=0.9, slo={"ttft_s": 0.5}, rtol=0.05)
    assert result.param == "workload.rate_rps"
    assert result.value is not None and result.upper is not None
    assert result.upper - result.value <= 0.05 * result.value
    assert result.attainment >= 0.9
    # the window's attainment (warm-up and drain excluded) straddles the target
    assert _window(data, result.param, result.value, {"ttft_s": 0.5}).attainment >= 0.9
    assert _window(data, result.param, result.upper, {"ttft_s": 0.5}).attainment < 0.9
    assert result.goodput_rps_per_gpu == pytest.approx(result.goodput_rps)  # one GPU


def test_quickstart_capacity_from_the_cli(capsys):
    argv = ["capacity", "configs/quickstart.yaml", "--slo", "ttft=0.5,tpot=0.05", "--attainment", "0.9",
            "--set", "workload.max_requests=1000", "--json"]
    assert main(argv) == 2  # found, but 1,000 requests at ~60 req/s are a transient: flagged
    out = json.loads(capsys.readouterr().out)
    assert out["steady"] is False and out["window_s"] < 5 * out["max_e2e_s"]
    assert out["param"] == "workload.rate_scale"
    assert out["attainment"] >= 0.9
    assert out["upper"] - out["value"] <= out["rtol"] * out["value"]
    assert out["num_gpus"] == 4 and out["goodput_rps_per_gpu"] == pytest.approx(out["goodput_rps"] / 4)
    assert {p["passed"] for p in out["probes"]} == {True, False}


def test_rate_knob_per_workload():
    assert rate_param(small_base()) == "workload.rate_scale"
    assert rate_param(make_config_dict()) == "workload.rate_rps"
    gamma = make_config_dict(workload={"name": "synthetic", "arrival": {"name": "gamma", "rate_rps": 2, "cv": 2}})
    assert rate_param(gamma) == "workload.arrival.rate_rps"


def test_slo_flag_parsing():
    assert parse_slo("ttft=0.5,tpot=0.05") == {"ttft_s": 0.5, "tpot_s": 0.05}
    assert parse_slo("e2e_s=3") == {"e2e_s": 3.0}
    for bad in ("ttft", "tbt=1", "ttft=-1", "ttft=fast", "p0_tbt=1", "p99_speed=1", "p101_ttft=1"):
        with pytest.raises(ConfigError):
            parse_slo(bad)
