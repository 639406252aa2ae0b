"""Attention pools holding an expert pool: every request served, contention, batching, bad configs."""

from __future__ import annotations

import copy

import pytest

from sim import simulate
from sim.config import from_dict
from sim.errors import ConfigError

MODEL = {"device": "H100-SXM", "model": "Qwen3-30B-A3B"}
LOAD = {"name": "synthetic", "num_requests": 200, "rate_rps": 30.0, "input_tokens": 64,
        "input_tokens_max": 1024, "output_tokens": 16, "output_tokens_max": 128}


def disagg(num_attn: int = 2, num_expert_replicas: int = 1, batching: bool = True) -> dict:
    return {"seed": 0, "workload": dict(LOAD), "engine": {"progress": False}, "cluster": {
        "router": "least_outstanding", "pools": [
            {"name": "attn", "role": "attention", "num_replicas": num_attn, "hardware": dict(MODEL),
             "cost_model": {"name": "analytic", "moe_layers": "remote"},
             "holds": {"pool": "experts", "batching": batching}},
            {"name": "experts", "role": "expert", "num_replicas": num_expert_replicas, "hardware": dict(MODEL),
             "cost_model": {"name": "analytic", "expert_parallel": {"ep": 4, "routing": "zipf"}}}]}}


def test_every_request_is_served_and_expert_gpus_are_billed():
    s = simulate(from_dict(disagg())).summary
    assert s["num_completed"] == LOAD["num_requests"]
    assert s["num_gpus"] == 2 + 4


def test_attention_replicas_contend_for_the_expert_pool():
    one = simulate(from_dict(disagg(num_attn=4, num_expert_replicas=1, batching=False))).summary
    two = simulate(from_dict(disagg(num_attn=4, num_expert_replicas=2, batching=False))).summary
    assert two["tpot_mean_s"] < one["tpot_mean_s"]  # a second expert server removes queueing


def test_batching_holders_together_beats_one_at_a_time():
    batched = simulate(from_dict(disagg(num_attn=4, batching=True))).summary
    serial = simulate(from_dict(disagg(num_attn=4, batching=False))).summary
    assert batched["tpot_mean_s"] < serial["tpot_mean_s"]


def test_same_seed_same_results():
    a = simulate(from_dict(disagg())).requests
    b = simulate(from_dict(disagg())).requests
    assert a.equals(b)


@pytest.mark.parametrize("change,key", [
    (lambda c: c["cluster"]["pools"][0].pop("holds"), "cluster.pools[0].holds"),
    (lambda c: c["cluster"]["pools"][0]["holds"].update(pool="nope"), "cluster.pools[0].holds.pool"),
    (lambda c: c["cluster"]["pools"][1].update(role="mixed"), "cluster.pools[0].holds.pool"),
    (lambda c: c["cluster"]["pools"][1].update(cost_model={"name": "analytic"}),
     "cluster.pools[1].cost_model.expert_parallel"),
])
def test_bad_hold_configs_name_the_key(change, key):
    cfg = copy.deepcopy(disagg())
    change(cfg)
    with pytest.raises(ConfigError) as err:
        simulate(from_dict(cfg))
    assert key in str(err.value)
