"""Decode stretches priced only up to the next arrival (sim/engine/fast_path.py, ``_price_until``).

With one entry replica every arrival cuts its stretch, so the replica prices a stretch only up
to the iteration the next arrival falls in. That must change nothing: the same requests, token
times, ITL (to the bit: same gaps, same order) as pricing whole stretches and as stepping, also
when an arrival does not come in (rejected: the stretch goes on past its bound).
"""

from __future__ import annotations

import copy

import pytest

from sim.engine.fast_path import DecodeStretchMixin
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster, unbounded


def _config(scheduler: str, fast_forward: bool = True) -> dict:
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 300, "rate_rps": 0.2, "lengths": lengths}
    pool = {"name": "main", "num_replicas": 1, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": scheduler,
            "kv": {"name": "paged", "num_blocks": 400}}  # 6,400 tokens: some requests never fit (rejected)
    return {"seed": 3, "workload": workload, "cluster": {"router": "round_robin", "pools": [pool]},
            "output": {"record_token_times": True},
            "engine": {"progress": False, "fast_forward": fast_forward}}


@pytest.mark.parametrize("scheduler", ["vllm", "sarathi"])
def test_bounded_stretches_change_nothing(scheduler, monkeypatch):
    calls = {"first": 0, "extend": 0}
    price = DecodeStretchMixin._price_until

    def counted(self, bound, at_least=1):
        calls["extend" if at_least > 1 else "first"] += 1
        return price(self, bound, at_least)

    monkeypatch.setattr(DecodeStretchMixin, "_price_until", counted)
    bounded = run_cluster(copy.deepcopy(_config(scheduler)))
    # stretches were bounded, and some went on past a bound (its arrival was rejected)
    assert calls["first"] > 100 and calls["extend"] > 0
    whole = run_cluster(copy.deepcopy(_config(scheduler)), before_run=unbounded)
    stepped = run_cluster(copy.deepcopy(_config(scheduler, fast_forward=False)))
    frame = bounded.recorder.requests_frame()
    assert (frame["state"] == "rejected").any() and (frame["state"] == "finished").sum() > 100
    assert_same_run(bounded, whole)
    assert bounded.recorder.itl.mean_s() == whole.recorder.itl.mean_s()  # same gaps, same order
    assert bounded.recorder.itl.max_s == whole.recorder.itl.max_s
    assert_same_run(bounded, stepped)
    # fewer events: a stretch ends where the next arrival cuts it, with no moved wait left behind
    assert next(bounded.env._eid) < next(whole.env._eid)


def test_no_bound_with_several_entry_replicas():
    config = _config("vllm")
    config["cluster"]["pools"][0]["num_replicas"] = 2
    config["cluster"]["router"] = "least_outstanding"  # round robin tells its picks ahead: test_router_lookahead.py
    seen = []

    def spy(cluster) -> None:
        for rep in cluster.replicas:
            bound = rep.arrival_bound
            rep.arrival_bound = lambda bound=bound: seen.append(bound()) or seen[-1]

    run_cluster(config, before_run=spy)
    assert seen and all(b is None for b in seen)
