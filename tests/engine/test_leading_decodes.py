"""Decodes grown at once ahead of a prefill (``ReplicaOps.grow_leading_decodes``) change nothing.

``SchedulerBase.schedule_running`` gives the running decodes ahead of the first running prefill
their token in one all-or-nothing KV take when they all fit the budget; the same requests, token
times, iterations, ITL and KV (prefix cache LRU included) must come out as growing them one by one,
also with a small KV (preemptions: the take fails and the loop goes one by one).
"""

from __future__ import annotations

import copy

import pytest

from sim.engine.ops import ReplicaOps
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster


def _config(scheduler: dict, num_blocks: int, rate_rps: float) -> dict:
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 400, "rate_rps": rate_rps, "lengths": lengths}
    pool = {"name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": scheduler,
            "kv": {"name": "paged", "num_blocks": num_blocks, "enable_prefix_caching": True}}
    return {"seed": 7, "workload": workload, "cluster": {"router": "round_robin", "pools": [pool]},
            "output": {"record_token_times": True, "record_steps": True},
            "engine": {"progress": False}}


CASES = [pytest.param({"name": "vllm_v1", "max_num_batched_tokens": 512}, 20_000, 14.0, id="vllm_v1"),
         pytest.param({"name": "vllm_v1", "max_num_batched_tokens": 256, "max_num_seqs": 64}, 900, 14.0, id="small-kv")]


@pytest.mark.parametrize("scheduler, num_blocks, rate_rps", CASES)
def test_leading_decodes_at_once_equal_one_by_one(scheduler, num_blocks, rate_rps, monkeypatch):
    taken = {"calls": 0, "decodes": 0}
    grow = ReplicaOps.grow_leading_decodes

    def counted(self, plan, max_num):
        n = grow(self, plan, max_num)
        taken["calls"] += bool(n)
        taken["decodes"] += n
        return n

    config = _config(scheduler, num_blocks, rate_rps)
    monkeypatch.setattr(ReplicaOps, "grow_leading_decodes", counted)
    fast = run_cluster(copy.deepcopy(config))
    monkeypatch.setattr(ReplicaOps, "grow_leading_decodes", lambda self, plan, max_num: 0)
    slow = run_cluster(copy.deepcopy(config))
    assert taken["calls"] > 100 and taken["decodes"] > taken["calls"]  # it grew decodes at once, often
    assert_same_run(fast, slow)
    for a, b in zip(fast.replicas, slow.replicas, strict=True):
        assert a.kv.evictable_units() == b.kv.evictable_units()
        assert (a.kv.num_free, a.kv.num_used, a.kv.num_evictable) == (b.kv.num_free, b.kv.num_used, b.kv.num_evictable)
    if num_blocks < 1000:
        assert fast.recorder.requests_frame()["num_preemptions"].sum() > 0  # the take failed at times



@pytest.mark.parametrize("scheduler, num_blocks, rate_rps", CASES)
def test_all_decoding_grown_at_once_equals_the_prefill_check_and_grow_decodes(scheduler, num_blocks, rate_rps,
                                                                             monkeypatch):
    """``grow_all_decoding`` (one pass for the check, the running list as the decodes) does what
    ``schedule_running`` did before it: ``grow_decodes`` when ``running_prefills_now()`` is empty,
    else nothing; the same runs, KV and LRU, with a small KV too."""
    seen = {"grown": 0, "refused": 0}
    grow = ReplicaOps.grow_all_decoding

    def counted(self, plan):
        n = grow(self, plan)
        seen["grown" if n is not None else "refused"] += 1
        return n

    def before(self, plan):  # the check and the call it replaced
        return None if self.running_prefills_now() else self.grow_decodes(plan)

    config = _config(scheduler, num_blocks, rate_rps)
    monkeypatch.setattr(ReplicaOps, "grow_all_decoding", counted)
    fast = run_cluster(copy.deepcopy(config))
    monkeypatch.setattr(ReplicaOps, "grow_all_decoding", before)
    slow = run_cluster(copy.deepcopy(config))
    assert seen["grown"] > 100 and seen["refused"] > 10
    assert_same_run(fast, slow)
    for a, b in zip(fast.replicas, slow.replicas, strict=True):
        assert a.kv.evictable_units() == b.kv.evictable_units()
        assert (a.kv.num_free, a.kv.num_used, a.kv.num_evictable) == (b.kv.num_free, b.kv.num_used, b.kv.num_evictable)
