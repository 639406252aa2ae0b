"""JANUS's scaler follows a rate step on an attention pool holding an expert pool."""

from __future__ import annotations

import copy

import pytest

from sim import simulate
from sim.errors import ConfigError
from sim.tools.gates import scenario


def _run(cfg):
    res = simulate(cfg)
    return res.summary, res.actions


def test_scaler_adds_and_drains_attention_replicas_and_saves_gpu_hours_vs_the_peak():
    cfg = scenario("controller", "janus_scaler")
    scaled, actions = _run(cfg)
    assert set(actions["kind"]) == {"add_replica", "drain_replica"}
    fixed = {}
    for n in (1, 4):
        c = copy.deepcopy(cfg)
        c["cluster"]["controllers"] = []
        c["cluster"]["pools"][0]["num_replicas"] = n
        fixed[n] = _run(c)[0]
    assert scaled["num_completed"] == scaled["num_requests"]
    assert scaled["gpu_hours"] < 0.85 * fixed[4]["gpu_hours"]  # cheaper than provisioning for the peak
    assert scaled["tpot_mean_s"] < fixed[1]["tpot_mean_s"]  # and faster than the base cluster


def test_scaler_needs_an_attention_pool():
    cfg = scenario("controller", "janus_scaler")
    cfg["cluster"]["controllers"][0]["attention_pool"] = "experts"
    with pytest.raises(ConfigError) as err:
        simulate(cfg)
    assert "attention_pool" in str(err.value)
