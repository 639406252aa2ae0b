"""A stepped iteration and the decode stretch after it as one wait (sim/engine/head_stretch.py).

Each case (one replica that nothing but the arrivals reads) runs three ways: with heads applied
at their start (the default), with the path off (``_head_stretch`` answering False: the loop
waits for each stepped iteration) and stepped one iteration at a time. The first two must agree
to the bit on everything the recorder and the replica keep, including the order of request rows
and what the router reads at every arrival; all three on what the conformance suite compares.
Each case also checks the path ran a head and a stretch in one wait many times, and that it
saved events, so it cannot pass idle.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import pytest

from sim.engine.cluster import Cluster
from sim.engine.head_stretch import HeadStretchMixin
from sim.engine.thru_finish import ThroughFinishMixin
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster

_LENGTHS = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}


def _alone(workload: dict, scheduler: Any = "vllm", **kv: Any) -> dict:
    pool = {"name": "main", "num_replicas": 1, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": scheduler, "kv": {"name": "paged", **kv}}
    return {"seed": 5, "workload": workload, "cluster": {"router": "round_robin", "pools": [pool]},
            "output": {"record_token_times": True}, "engine": {"progress": False}}


def _synthetic(n: int, rate: float) -> dict:
    return {"name": "synthetic", "num_requests": n, "rate_rps": rate, "lengths": _LENGTHS}


CASES = {
    # whole-prompt prefill iterations (vLLM v0), each followed by a decode stretch
    "vllm": _alone(_synthetic(400, 3.0)),
    # Sarathi-Serve: a prompt that fits one chunk admitted beside the decodes
    "sarathi": _alone(_synthetic(400, 4.0), {"name": "sarathi", "chunk_size": 512}),
    # vLLM v1 with prefix caching: the head commits the prompt's units (LRU) before the stretch
    "v1_prefix_cache": _alone({"name": "trace", "path": str(DATA / "mooncake_conversation_trace.jsonl"),
                               "max_requests": 200,
                               "transforms": [{"name": "clip_lengths", "max_context_tokens": 3000}]},
                              "vllm_v1", enable_prefix_caching=True, num_blocks=4000),
    # small KV: the decode stretch after a head may find no room (the scheduler preempts at its end)
    "small_kv": _alone(_synthetic(300, 1.0), num_blocks=1000),
    # the run stops at a time limit: no head may be applied across it
    "truncated": _alone(_synthetic(400, 3.0)) | {"engine": {"progress": False, "max_time_s": 60.0}},
}


def _head_off(cluster: Cluster) -> None:
    def off(plan, step_s, end):
        return False
        yield  # a generator that runs nothing: the loop waits for the iteration

    for rep in cluster.replicas:
        rep._head_stretch = off


def _observing(seen: list, heads: list | None = None) -> Any:
    """``before_run`` hook: what the router can read of the replica at every arrival (and the
    heads that went on into a stretch in the same wait)."""
    def hook(cluster: Cluster) -> None:
        route = cluster.router.route

        def observed(req, replicas):
            for v in replicas:
                v.sync()
                seen.append((cluster.env.now, v.num_outstanding, v.num_running, v.num_waiting,
                             v.pending_prefill_tokens, v.kv.num_used_blocks, v.kv.num_free_blocks,
                             tuple((r.id, r.num_output_tokens, r.num_computed_tokens, int(r.state)) for r in v.running),
                             cluster.num_done))
            return route(req, replicas)

        cluster.router.route = observed
        if heads is not None:
            for rep in cluster.replicas:
                def counting(plan, start=None, rep=rep):
                    heads.append(start is not None)  # a stretch that starts at a head's end
                    return (yield from ThroughFinishMixin._thru_stretch(rep, plan, start))
                rep._thru_stretch = counting
    return hook


def _raw_order(cluster: Cluster) -> tuple:
    rec = cluster.recorder
    floats, ints, _objs = rec.request_columns()
    return (list(ints["id"]), [t.hex() for t in floats["finish_s"]], [t.hex() for t in floats["first_token_s"]])


def _replica_stats(cluster: Cluster) -> list:
    return [(r.id, r.num_steps, r.batch_size_sum, r.busy_decode_s, r.busy_prefill_s, r.num_outstanding,
             r.kv.num_used, r.kv.num_free, r.kv.num_evictable) for r in cluster.replicas]


@pytest.mark.parametrize("case", list(CASES))
def test_head_and_stretch_in_one_wait(case):
    config = CASES[case]
    seen_on, seen_off, seen_step, heads = [], [], [], []
    on = run_cluster(copy.deepcopy(config), before_run=_observing(seen_on, heads))
    assert on.replicas[0].thru_alone
    assert sum(heads) >= 20, f"a head and its stretch ran in one wait only {sum(heads)} times"
    off_hook = _observing(seen_off)

    def off(cluster: Cluster) -> None:
        off_hook(cluster)
        _head_off(cluster)

    off_run = run_cluster(copy.deepcopy(config), before_run=off)
    stepped_cfg = copy.deepcopy(config)
    stepped_cfg["engine"]["fast_forward"] = False
    stepped = run_cluster(stepped_cfg, before_run=_observing(seen_step))
    assert next(on.env._eid) < next(off_run.env._eid)  # events saved
    assert_same_run(on, off_run)
    assert _raw_order(on) == _raw_order(off_run)
    assert _replica_stats(on) == _replica_stats(off_run)
    assert seen_on == seen_off  # every arrival reads the replica as without the path
    pd.testing.assert_frame_equal(on.recorder.visits_frame(), off_run.recorder.visits_frame(), check_exact=True)
    if case == "truncated":  # a stretch cut by the time limit never counts its iterations (as before)
        pd.testing.assert_frame_equal(on.recorder.requests_frame(), stepped.recorder.requests_frame(),
                                      check_exact=True)
        assert on.recorder.token_times == stepped.recorder.token_times
    else:
        assert_same_run(on, stepped)
    assert _raw_order(on) == _raw_order(stepped)
    assert [s[:5] + s[7:] for s in seen_on] == [s[:5] + s[7:] for s in seen_step]
    frame = on.recorder.requests_frame()
    if case == "small_kv":
        assert frame["num_preemptions"].sum() > 0
    if case == "truncated":
        assert on.truncated and (frame["state"] == "unfinished").sum() > 0
    if case == "v1_prefix_cache":
        assert frame["num_cached_tokens"].sum() > 0


def test_not_across_the_next_arrival():
    """The premise: a head ending at or after the next arrival stays stepped; heads with a finish
    in them are applied early too (the bounding arrival is still to come: the run cannot end)."""
    config = CASES["sarathi"]
    checked = {"bound": 0, "ok": 0, "finish": 0}

    def hook(cluster: Cluster) -> None:
        rep = cluster.replicas[0]

        def head_ok(plan, end):
            ok = HeadStretchMixin._head_ok(rep, plan, end)
            bound = rep.arrival_bound()
            if bound is not None and end >= bound:
                assert not ok
                checked["bound"] += 1
            elif ok:
                checked["ok"] += 1
                checked["finish"] += any(r.num_output_tokens + 1 >= r.output_tokens for r in plan.decode)
            return ok
        rep._head_ok = head_ok

    run_cluster(copy.deepcopy(config), before_run=hook)
    assert checked["bound"] > 0 and checked["ok"] > 20 and checked["finish"] > 0


def test_time_limit_inside_a_head():
    """A time limit that falls inside an iteration that would be a head: it stays stepped, so the
    run's cut records the iteration unfinished, as stepping does."""
    config = CASES["vllm"]
    spans: list = []

    def spy(cluster: Cluster) -> None:
        rep = cluster.replicas[0]

        def head_ok(plan, end):
            ok = HeadStretchMixin._head_ok(rep, plan, end)
            if ok:
                spans.append((rep.env.now, end))
            return ok
        rep._head_ok = head_ok

    run_cluster(copy.deepcopy(config), before_run=spy)
    start, end = spans[len(spans) // 2]
    limited = copy.deepcopy(config)
    limited["engine"]["max_time_s"] = (start + end) / 2
    refused: list = []

    def spy_limit(cluster: Cluster) -> None:
        rep = cluster.replicas[0]

        def head_ok(plan, end):
            ok = HeadStretchMixin._head_ok(rep, plan, end)
            refused.append(not ok and end >= rep.run_until > rep.env.now)
            return ok
        rep._head_ok = head_ok

    on = run_cluster(copy.deepcopy(limited), before_run=spy_limit)
    assert any(refused)  # the head across the limit was kept stepped
    stepped_cfg = copy.deepcopy(limited)
    stepped_cfg["engine"]["fast_forward"] = False
    stepped = run_cluster(stepped_cfg)
    pd.testing.assert_frame_equal(on.recorder.requests_frame(), stepped.recorder.requests_frame(), check_exact=True)
    assert on.recorder.token_times == stepped.recorder.token_times
