"""Decode stretches that go on through a finish (sim/engine/thru_finish.py).

Each case runs three ways: with the next stretch formed at the finish (the default), with it
formed by the loop as before (``_decode_rest`` answering None), and stepped one iteration at a
time. The first two must agree to the bit on everything the recorder and the replicas keep,
including the order in which request rows and visits were recorded (a finish applied at the
wrong time, or in another order among replicas, moves them); all three on what the conformance
suite compares. Each case also checks the new path was taken many times, so it cannot pass idle.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.engine.cluster import Cluster
from sim.engine.thru_finish import ThroughFinishMixin
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster, unbounded

_LENGTHS = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}


def _pool(num_replicas: int, scheduler: Any = "vllm", **kv: Any) -> dict:
    return {"name": "main", "num_replicas": num_replicas,
            "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1}, "cost_model": "analytic",
            "scheduler": scheduler, "kv": {"name": "paged", **kv}}


def _config(workload: dict, pools: list, router: Any = "round_robin", **cluster: Any) -> dict:
    return {"seed": 5, "workload": workload, "cluster": {"router": router, "pools": pools, **cluster},
            "output": {"record_token_times": True, "record_steps": True},
            "engine": {"progress": False}}


def _synthetic(n: int, rate: float) -> dict:
    return {"name": "synthetic", "num_requests": n, "rate_rps": rate, "lengths": _LENGTHS}


_SESSIONS = {"name": "sessions", "num_sessions": 40, "rate_rps": 4.0, "turns": 2, "turns_max": 4,
             "think_time_s": 0.5, "system_prompt_tokens": 256, "input_tokens": 200, "output_tokens": 96}

CASES = {
    # one replica: stretches bounded by the next arrival, finishes with nothing waiting
    "one_replica": _config(_synthetic(400, 3.0), [_pool(1)]),
    # round robin's picks ahead bound each of four replicas' stretches
    "round_robin_4": _config(_synthetic(400, 8.0), [_pool(4)]),
    # least outstanding reads every replica's count at each arrival (unbounded stretches)
    "least_outstanding_4": _config(_synthetic(400, 8.0), [_pool(4)], router="least_outstanding"),
    # small KV: finishes free blocks the next stretch counts on; shortfalls preempt
    "small_kv": _config(_synthetic(300, 1.0), [_pool(1, num_blocks=1000)]),
    # prefix caching over sessions: a finish makes its units evictable, which later blocks evict
    "sessions_prefix": _config(_SESSIONS, [_pool(2, enable_prefix_caching=True, num_blocks=500)],
                               router="least_outstanding"),
    # closed loop: a finish issues its user's next request (on_done acts at the finish's time)
    "closed_loop": _config({"name": "closed_loop", "num_users": 12, "num_requests": 300, "think_time_s": 0.3,
                            "lengths": _LENGTHS}, [_pool(1)]),
    # a controller reads the replicas at its ticks (between and at stretches' finishes)
    "autoscaler": _config(_synthetic(300, 6.0), [_pool(2, scheduler="vllm_v1")], router="least_outstanding",
                          controllers=[{"name": "reactive_autoscaler", "pools": ["main"], "min_replicas": 1,
                                        "max_replicas": 3, "period_s": 0.37}]),
}


def _no_through(cluster: Cluster) -> None:
    """``before_run`` hook: the loop forms every next stretch, as before this module."""
    for rep in cluster.replicas:
        rep._decode_rest = lambda rep=rep: ThroughFinishMixin._decode_rest(rep) and None


def _counted(counts: list) -> Any:
    def hook(cluster: Cluster) -> None:
        for rep in cluster.replicas:
            def counting(rep=rep):
                batch = ThroughFinishMixin._decode_rest(rep)
                counts.append(batch is not None)
                return batch
            rep._decode_rest = counting
    return hook


def _raw_order(cluster: Cluster) -> tuple:
    rec = cluster.recorder
    floats, ints, _objs = rec.request_columns()
    return (list(ints["id"]), [t.hex() for t in floats["finish_s"]], list(rec._v_request),
            [t.hex() for t in rec._v_end], list(rec._v_left))  # (hex: NaN equals NaN)


def _replica_stats(cluster: Cluster) -> list:
    return [(r.id, r.num_steps, r.batch_size_sum, r.busy_decode_s, r.busy_prefill_s, r.num_outstanding)
            for r in cluster.replicas]


@pytest.mark.parametrize("case", list(CASES))
def test_through_finish_equals_the_loop_and_stepping(case):
    config = CASES[case]
    counts: list[bool] = []
    thru = run_cluster(copy.deepcopy(config), before_run=_counted(counts))
    assert sum(counts) >= 20, f"the next stretch was formed at a finish only {sum(counts)} times"
    loop = run_cluster(copy.deepcopy(config), before_run=_no_through)
    stepped_cfg = copy.deepcopy(config)
    stepped_cfg["engine"]["fast_forward"] = False
    stepped = run_cluster(stepped_cfg)
    assert_same_run(thru, loop)
    assert _raw_order(thru) == _raw_order(loop)  # rows and visits recorded in the same order, at the same times
    assert _replica_stats(thru) == _replica_stats(loop)
    pd.testing.assert_frame_equal(thru.recorder.steps_frame(), loop.recorder.steps_frame(), check_exact=True)
    pd.testing.assert_frame_equal(thru.recorder.visits_frame(), loop.recorder.visits_frame(), check_exact=True)
    assert next(thru.env._eid) == next(loop.env._eid)  # the same events: only the loop's round trip is saved
    assert_same_run(thru, stepped)
    assert _raw_order(thru)[:3] == _raw_order(stepped)[:3]
    pd.testing.assert_frame_equal(thru.recorder.visits_frame(), stepped.recorder.visits_frame(), check_exact=True)
    a, b = thru.recorder.steps_frame(), stepped.recorder.steps_frame()
    assert len(a) == len(b)
    for col in a.columns:  # a stretch's row times come from its end times: equal to 1e-12 s
        x, y = a[col].to_numpy(), b[col].to_numpy()
        assert (np.allclose(x, y, rtol=0, atol=1e-12) if x.dtype.kind == "f" else np.array_equal(x, y)), col


def test_through_finish_unbounded_one_replica():
    """One replica whose stretches are not bounded by the next arrival: an arrival cuts a stretch
    formed at a finish just as one formed by the loop."""
    config = CASES["one_replica"]
    counts: list[bool] = []

    def hook(cluster: Cluster) -> None:
        unbounded(cluster)
        _counted(counts)(cluster)

    thru = run_cluster(copy.deepcopy(config), before_run=hook)
    assert sum(counts) >= 20

    def loop_hook(cluster: Cluster) -> None:
        unbounded(cluster)
        _no_through(cluster)

    loop = run_cluster(copy.deepcopy(config), before_run=loop_hook)
    assert_same_run(thru, loop)
    assert _raw_order(thru) == _raw_order(loop)
    assert _replica_stats(thru) == _replica_stats(loop)


# ---------------------------------------------------------------------------- one wait through finishes

def _alone(workload: dict, **kv: Any) -> dict:
    config = _config(workload, [_pool(1, **kv)])
    config["output"] = {"record_token_times": True}  # a per-iteration log keeps the stretches apart
    return config


ALONE = {
    "one_replica": _alone(_synthetic(400, 3.0)),
    "small_kv": _alone(_synthetic(300, 1.0), num_blocks=1000),
    # some requests never fit: their arrival is rejected, and the stretch it bounded ends uncut
    "rejected": _alone(_synthetic(300, 0.5), num_blocks=300),
    # prefix caching: a finish makes its prompt's units evictable, and later blocks evict them
    "prefix_cache": _alone({"name": "trace", "path": str(DATA / "mooncake_conversation_trace.jsonl"),
                            "max_requests": 250}, enable_prefix_caching=True, num_blocks=4000),
    # the run stops at a time limit mid-stretch: finishes before it are recorded as finished
    "truncated": _alone(_synthetic(400, 3.0)) | {"engine": {"progress": False, "max_time_s": 60.0}},
}


def _observing(seen: list, crossings: list | None = None) -> Any:
    """``before_run`` hook: record what the router can read of the replica at every arrival (and
    count the finishes applied by a stretch that went on through them)."""
    def hook(cluster: Cluster) -> None:
        route = cluster.router.route

        def observed(req, replicas):
            for v in replicas:
                v.sync()
                seen.append((cluster.env.now, v.num_outstanding, v.num_running, v.kv.num_used_blocks,
                             v.kv.num_free_blocks, tuple((r.id, r.num_output_tokens, int(r.state)) for r in v.running),
                             cluster.num_done, cluster.recorder.num_done))
            return route(req, replicas)
        cluster.router.route = observed
        if crossings is not None:
            for rep in cluster.replicas:
                def counting(done, alloc, rep=rep):
                    crossings.append(rep.env.now)
                    return ThroughFinishMixin._thru_cross(rep, done, alloc)
                rep._thru_cross = counting
    return hook


@pytest.mark.parametrize("case", list(ALONE))
def test_one_wait_through_finishes(case):
    config = ALONE[case]
    seen_thru, seen_loop, seen_step, crossings = [], [], [], []
    thru = run_cluster(copy.deepcopy(config), before_run=_observing(seen_thru, crossings))
    assert len(crossings) >= 10, f"a stretch went on through finishes only {len(crossings)} times"
    assert thru.replicas[0].thru_alone

    def off(cluster: Cluster) -> None:
        for rep in cluster.replicas:
            rep.thru_alone = False
        _observing(seen_loop)(cluster)

    loop = run_cluster(copy.deepcopy(config), before_run=off)
    stepped_cfg = copy.deepcopy(config)
    stepped_cfg["engine"]["fast_forward"] = False
    stepped = run_cluster(stepped_cfg, before_run=_observing(seen_step))
    assert_same_run(thru, loop)
    assert _raw_order(thru) == _raw_order(loop)
    assert _replica_stats(thru) == _replica_stats(loop)  # busy_decode_s to the bit: the same sums in order
    pd.testing.assert_frame_equal(thru.recorder.visits_frame(), loop.recorder.visits_frame(), check_exact=True)
    assert seen_thru == seen_loop  # every arrival saw the finishes before it applied, and no later ones
    assert next(thru.env._eid) < next(loop.env._eid)  # fewer events: one wait through the finishes
    if case == "truncated":  # a stretch cut by the time limit never counts its iterations (as before)
        pd.testing.assert_frame_equal(thru.recorder.requests_frame(), stepped.recorder.requests_frame(),
                                      check_exact=True)
        assert thru.recorder.token_times == stepped.recorder.token_times
    else:
        assert_same_run(thru, stepped)
    assert _raw_order(thru)[:3] == _raw_order(stepped)[:3]
    assert seen_thru == seen_step
    frame = thru.recorder.requests_frame()
    if case == "rejected":
        assert (frame["state"] == "rejected").sum() > 0
    if case == "truncated":
        assert thru.truncated and (frame["state"] == "unfinished").sum() > 0


def test_not_alone_no_wait_through():
    """Where something but the arrivals could read the replica or act at a finish's time (another
    replica, a controller, a predictor, a closed loop) or a per-iteration log is kept, finishes
    are applied by the process at their time (the next stretch formed there, ``_decode_rest``)."""
    base = ALONE["one_replica"]
    assert run_cluster(copy.deepcopy(base)).replicas[0].thru_alone
    changes = {
        "two replicas": lambda c: c["cluster"]["pools"][0].update(num_replicas=2),
        "controller": lambda c: c["cluster"].update(controllers=[
            {"name": "reactive_autoscaler", "pools": ["main"], "min_replicas": 1, "max_replicas": 1}]),
        "predictor": lambda c: c["cluster"].update(predictor={"name": "noisy", "sigma": 0.5}),
        "closed loop": lambda c: c.update(workload=copy.deepcopy(CASES["closed_loop"]["workload"])),
        "steps log": lambda c: c["output"].update(record_steps=True),
    }
    for what, change in changes.items():
        config = copy.deepcopy(base)
        config["workload"]["num_requests"] = 60
        change(config)
        cluster = run_cluster(config)
        assert not any(rep.thru_alone for rep in cluster.replicas), what
