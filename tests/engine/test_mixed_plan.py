"""The mixed-iteration fast plan (sim/engine/mixed_plan.py) equals the scheduler's own plan.

A replica whose scheduler declares ``mixed_chunk_budget`` forms the decode-first chunked
iteration itself while one prompt is mid-prefill. That must change nothing: the same requests,
token times, per-iteration log and ITL (to the bit: the same gaps in the same order) as letting
the scheduler plan every iteration, and as stepping with the fast path off; also when something
waits (only a chunk that fills the budget) and when KV runs short (the scheduler preempts).
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest

import sim.engine.replica as replica_module
from sim.engine.mixed_plan import mixed_plan
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster


def _config(scheduler: dict, num_blocks: int, fast_forward: bool = True) -> dict:
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 400, "rate_rps": 12.0, "lengths": lengths}
    pool = {"name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": scheduler,
            "kv": {"name": "paged", "num_blocks": num_blocks, "enable_prefix_caching": True}}
    return {"seed": 5, "workload": workload, "cluster": {"router": "round_robin", "pools": [pool]},
            "output": {"record_token_times": True, "record_steps": True},
            "engine": {"progress": False, "fast_forward": fast_forward}}


def _scheduler_plans(cluster) -> None:
    for rep in cluster.replicas:
        rep._mixed_budget = None


SCHEDULERS = [pytest.param({"name": "sarathi", "chunk_size": 256, "max_num_seqs": 64}, 20_000, id="sarathi"),
              pytest.param({"name": "sarathi", "chunk_size": 512, "max_num_seqs": 64}, 700, id="sarathi-small-kv"),
              pytest.param({"name": "splitfuse", "token_budget": 384}, 20_000, id="splitfuse")]


@pytest.mark.parametrize("scheduler, num_blocks", SCHEDULERS)
def test_mixed_plan_equals_scheduler_and_stepping(scheduler, num_blocks, monkeypatch):
    calls = {"plan": 0, "waiting": 0}

    def counted(rep, budget):
        waiting = bool(rep.waiting)
        plan = mixed_plan(rep, budget)
        if plan is not None:
            calls["plan"] += 1
            calls["waiting"] += waiting
        return plan

    config = _config(scheduler, num_blocks)
    monkeypatch.setattr(replica_module, "mixed_plan", counted)
    fast = run_cluster(copy.deepcopy(config))
    monkeypatch.undo()
    assert calls["plan"] > 500 and calls["waiting"] > 0  # it formed plans, also with requests waiting
    planned = run_cluster(copy.deepcopy(config), before_run=_scheduler_plans)
    stepped = run_cluster(copy.deepcopy(_config(scheduler, num_blocks, fast_forward=False)))
    assert_same_run(fast, planned)
    assert fast.recorder.itl.mean_s() == planned.recorder.itl.mean_s()  # same gaps, same order
    pd.testing.assert_frame_equal(fast.recorder.steps_frame(), planned.recorder.steps_frame(), check_exact=True)
    assert_same_run(fast, stepped)
    frame = fast.recorder.requests_frame()
    assert (frame["state"] == "finished").sum() > 300
    if num_blocks < 1000:  # short of KV: requests were preempted
        assert frame["num_preemptions"].sum() > 0


def test_chunk_without_room_falls_back_to_the_scheduler(monkeypatch):
    """When the chunk's KV cannot be had, the scheduler plans from the same state (and preempts)."""
    fallbacks = []
    real = replica_module.mixed_plan

    def spy(rep, budget):
        before = rep.kv.num_used
        schedule = rep.scheduler.schedule

        def traced(ops):
            fallbacks.append(rep.kv.num_used - before)
            return schedule(ops)

        rep.scheduler.schedule = traced
        try:
            return real(rep, budget)
        finally:
            del rep.scheduler.schedule

    config = _config({"name": "sarathi", "chunk_size": 512, "max_num_seqs": 64}, 700)
    monkeypatch.setattr(replica_module, "mixed_plan", spy)
    fast = run_cluster(copy.deepcopy(config))
    monkeypatch.undo()
    assert fallbacks  # the chunk's grow failed at least once, after the decodes took their blocks
    planned = run_cluster(copy.deepcopy(config), before_run=_scheduler_plans)
    assert_same_run(fast, planned)
    assert fast.recorder.itl.mean_s() == planned.recorder.itl.mean_s()


# ---------------------------------------------------------------------------- mixed stretches

def _no_mixed_stretch(cluster) -> None:
    def off(plan):
        return False
        yield  # a generator that runs nothing: the iteration is stepped

    for rep in cluster.replicas:
        rep._mixed_stretch = off


def _watching(seen: list):
    """A before_run hook wrapping the router: at every arrival it reads each replica's KV view and
    pending prefill tokens (mid-stretch reads: sync_kv, pending_prefill_now) and records them."""
    def hook(cluster) -> None:
        route = cluster.router.route

        def watched(req, replicas):
            seen.append([(r.kv.num_free_blocks, r.kv.num_used_blocks, r.pending_prefill_tokens) for r in replicas])
            return route(req, replicas)

        cluster.router.route = watched
    return hook


STRETCH_CASES = [
    pytest.param({"name": "sarathi", "chunk_size": 256, "max_num_seqs": 64}, 20_000, "round_robin", id="sarathi"),
    pytest.param({"name": "sarathi", "chunk_size": 512, "max_num_seqs": 64}, 700, "least_pending_tokens",
                 id="sarathi-small-kv"),
    pytest.param({"name": "splitfuse", "token_budget": 384}, 20_000, "least_pending_tokens", id="splitfuse")]


@pytest.mark.parametrize("scheduler, num_blocks, router", STRETCH_CASES)
def test_mixed_stretch_equals_stepping(scheduler, num_blocks, router, monkeypatch):
    """Stretch on vs off vs stepping: requests, token times, ITL (count, max, exact mean), the
    replicas' statistics, and every KV / pending-prefill view read at arrivals (mid-stretch)."""
    import sim.engine.mixed_stretch as mixed_stretch_module

    stats = {"stretches": 0, "cut": 0, "iterations": 0}
    real = mixed_stretch_module.MixedStretchMixin._mixed_stretch

    def counted(self, plan):
        ran = yield from real(self, plan)
        if ran:
            stats["stretches"] += 1
            stats["iterations"] += self._st_last
            stats["cut"] += self._st_cut
        return ran

    config = _config(scheduler, num_blocks)
    config["output"]["record_steps"] = False  # the steps log keeps mixed iterations stepped
    config["cluster"]["router"] = router
    config["workload"]["rate_rps"] = 20.0
    runs = {}
    for name, cfg, hook in [("fast", config, None), ("off", config, _no_mixed_stretch),
                            ("stepped", {**config, "engine": {"progress": False, "fast_forward": False}}, None)]:
        seen: list = []
        if name == "fast":
            monkeypatch.setattr(mixed_stretch_module.MixedStretchMixin, "_mixed_stretch", counted)
        watch = _watching(seen)

        def before(cluster, hook=hook, watch=watch):
            watch(cluster)
            if hook is not None:
                hook(cluster)

        runs[name] = (run_cluster(copy.deepcopy(cfg), before_run=before), seen)
        monkeypatch.undo()
    assert stats["stretches"] > 100 and stats["iterations"] > 2 * stats["stretches"] and stats["cut"] > 10
    fast, seen_fast = runs["fast"]
    for other in ("off", "stepped"):
        run, seen = runs[other]
        assert_same_run(fast, run)
        assert fast.recorder.itl.mean_s() == run.recorder.itl.mean_s()
        assert seen_fast == seen  # KV and pending-prefill views read mid-stretch as stepping shows them
        for a, b in zip(fast.replicas, run.replicas, strict=True):  # busy decode seconds: a decode
            # stretch adds its span, not its steps, so only the stretch-off run has them to the bit
            assert (a.num_steps, a.batch_size_sum, a.busy_prefill_s) == \
                (b.num_steps, b.batch_size_sum, b.busy_prefill_s)
            assert other == "stepped" or a.busy_decode_s == b.busy_decode_s
    frame = fast.recorder.requests_frame()
    assert (frame["state"] == "finished").sum() > 300
    if num_blocks < 1000:
        assert frame["num_preemptions"].sum() > 0
