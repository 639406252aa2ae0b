"""Decode stretches with a blocked queue (sim/engine/blocked_stretch.py).

With a small KV cache and arrivals faster than it drains, requests wait that cannot start and
``vllm_v1`` decodes the running batch iteration after iteration; the replica runs those
iterations as stretches. That must change nothing: the same requests, token times, iterations,
ITL and summary (busy time and energy to the bit) as with the promise withdrawn and as
stepping, with one replica, with Llumnix's router and migrations reading and cutting the
stretches, in priority order, and with prefix caching (where the KV's answer is read).
"""

from __future__ import annotations

import copy
import math

import pytest

from policies.schedulers.vllm_v1 import VllmV1Scheduler
from sim import simulate
from sim.engine import blocked_stretch
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster


def _config(num_replicas: int = 1, **extra) -> dict:
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 250, "rate_rps": 6.0 * num_replicas, "lengths": lengths}
    pool = {"name": "main", "num_replicas": num_replicas,
            "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1}, "cost_model": "analytic",
            "scheduler": "vllm_v1", "kv": {"name": "paged", "num_blocks": 500}}
    data = {"seed": 5, "workload": workload, "cluster": {"router": "round_robin", "pools": [pool]},
            "output": {"record_token_times": True}, "engine": {"progress": False, "fast_forward": True}}
    for key, value in extra.items():
        target = data
        *path, last = key.split(".")
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return data


def _llumnix() -> dict:
    return _config(4, **{"cluster.router": {"name": "llumnix"}, "cluster.transfer": {"link": "ib-ndr"},
                         "cluster.controllers": [{"name": "llumnix_migration"}]})


def _priority() -> dict:
    data = _config(**{"cluster.pools.0.scheduler": {"name": "vllm_v1", "order": "priority"}})
    data["workload"]["transforms"] = [{"name": "assign_priorities", "levels": [0, 1, 2]}]
    return data


def _prefix() -> dict:
    data = _config(**{"cluster.pools.0.kv.enable_prefix_caching": True})
    data["workload"] = {"name": "sessions", "num_sessions": 80, "rate_rps": 8.0, "turns": 2, "turns_max": 4,
                        "think_time_s": 0.5, "system_prompt_tokens": 512, "input_tokens": 300,
                        "output_tokens": 200}
    return data


CASES = {"one_replica": _config, "llumnix": _llumnix, "priority": _priority, "prefix": _prefix}


def _summary(data: dict) -> dict:
    out = simulate(copy.deepcopy(data)).summary
    out.pop("wall_s")
    out.pop("num_events")
    return out


def _moved(a: dict, b: dict) -> dict:
    return {k: (a[k], b.get(k)) for k in a
            if not (a[k] == b.get(k) or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b.get(k))))}


@pytest.mark.parametrize("case", list(CASES))
def test_blocked_stretches_change_nothing(case, monkeypatch):
    data = CASES[case]()
    counted = {"stretches": 0}
    detect = blocked_stretch.blocked_decode

    def spy(rep, plan, num_waiting, num_running):
        ok = detect(rep, plan, num_waiting, num_running)
        counted["stretches"] += ok
        return ok

    monkeypatch.setattr("sim.engine.replica.blocked_decode", spy)
    fast = run_cluster(copy.deepcopy(data))
    summary = _summary(data)
    if case != "prefix":  # with prefix caching most of the queue's waits see evictable units: few stretches
        assert counted["stretches"] > 50, counted
    with monkeypatch.context() as m:
        m.setattr(VllmV1Scheduler, "blocked_decode_safe", False)
        withdrawn = run_cluster(copy.deepcopy(data))
        assert not _moved(summary, _summary(data))  # busy time and energy included
    stepped_data = copy.deepcopy(data)
    stepped_data["engine"]["fast_forward"] = False
    stepped = run_cluster(stepped_data)
    assert_same_run(fast, withdrawn)
    assert_same_run(fast, stepped)
    assert [r.busy_decode_s for r in fast.replicas] == [r.busy_decode_s for r in withdrawn.replicas]
    if case != "prefix":  # fewer events: the blocked iterations ran as stretches
        assert next(fast.env._eid) < next(withdrawn.env._eid)


def test_admission_stable_reads_the_cache():
    """Paged KV: stable while no cached unit can be evicted (none evictable), not once one can."""
    data = _prefix()
    seen = set()

    def look(cluster) -> None:
        kv = cluster.replicas[0].kv
        answer = kv.admission_stable

        def spy() -> bool:
            ok = answer()
            seen.add((ok, kv.num_evictable == 0))
            return ok

        kv.admission_stable = spy

    run_cluster(copy.deepcopy(data), before_run=look)
    assert seen == {(True, True), (False, False)}


def test_promise_is_opt_in():
    from policies.schedulers.base import SchedulerBase
    from policies.schedulers.splitwise import SplitwiseParams, SplitwiseScheduler
    from policies.schedulers.vllm_v0 import VllmV0Scheduler

    assert SchedulerBase.blocked_decode_safe is False and VllmV0Scheduler.blocked_decode_safe is False
    assert VllmV1Scheduler.blocked_decode_safe is True
    for mode, safe in (("chunked", True), ("reference", False)):  # reference mode counts deferrals per iteration
        assert SplitwiseScheduler(SplitwiseParams(mode=mode), None).blocked_decode_safe is safe
