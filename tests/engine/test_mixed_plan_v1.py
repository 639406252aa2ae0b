"""vLLM v1 and the mixed-iteration fast plan (sim/engine/mixed_plan.py) and mixed stretches
(sim/engine/mixed_stretch.py): the promise holds only with the prompt last in ``running``.

``vllm_v1`` schedules its running requests in running order under one token budget: a decode
*after* the prompt mid-prefill gets its token only if the prompt's chunk left budget. So it
declares ``mixed_chunk_budget`` with ``mixed_prefill_last``: the replica forms the mixed plan
(and runs mixed stretches) only while the prompt is the last running request. Admission keeps
it so (a partial chunk takes the whole budget left) unless ``long_prefill_token_threshold``
caps an admitted chunk, or a request is attached behind it (a migration landing,
``Replica.attach_running``); and with more decodes than the budget the budget function says
None (the decodes past the budget wait). The tests run each such case declared, with the
scheduler planning every iteration and stepped, bit for bit; and show that dropping the order
check (``test_order_breaks_the_promise``) or the None past the budget moves a run, so neither
check is idle.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pandas as pd
import pytest

import sim.engine.mixed_stretch as mixed_stretch_module
import sim.engine.replica as replica_module
from policies.schedulers.splitwise import SplitwiseScheduler
from policies.schedulers.vllm_v1 import VllmV1Scheduler
from sim.engine.mixed_plan import mixed_plan
from sim.engine.request import State
from sim.tools.bench import DATA
from tests.cluster_run import run_cluster

BUDGET = 2048


def _mooncake(num_blocks: int, fast_forward: bool = True, record_steps: bool = True) -> dict:
    """The first Mooncake conversation requests (12k-token prompts sharing prefixes) on two
    replicas with prefix caching, routed by prefix affinity; ``num_blocks`` small: preemptions."""
    workload = {"name": "trace", "path": str(DATA / "mooncake_conversation_trace.jsonl"), "max_requests": 240}
    pool = {"name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": {"name": "vllm_v1", "max_num_batched_tokens": BUDGET},
            "kv": {"name": "paged", "num_blocks": num_blocks, "enable_prefix_caching": True}}
    return {"seed": 3, "workload": workload, "cluster": {"router": "prefix_affinity", "pools": [pool]},
            "output": {"record_token_times": True, "record_steps": record_steps},
            "engine": {"progress": False, "fast_forward": fast_forward}}


def _synthetic(scheduler: dict, fast_forward: bool = True, rate: float = 20.0) -> dict:
    """ShareGPT lengths on two replicas with prefix caching and a small token budget."""
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 300, "rate_rps": rate, "lengths": lengths}
    pool = {"name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": scheduler,
            "kv": {"name": "paged", "num_blocks": 20_000, "enable_prefix_caching": True}}
    return {"seed": 7, "workload": workload, "cluster": {"router": "round_robin", "pools": [pool]},
            "output": {"record_token_times": True, "record_steps": False},
            "engine": {"progress": False, "fast_forward": fast_forward}}


def _migrating(fast_forward: bool = True) -> dict:
    """ShareGPT lengths on four small-KV replicas under Llumnix's router and migration, with a
    256-token budget so that prompts are chunked while requests migrate in."""
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 300, "rate_rps": 20.0, "lengths": lengths}
    pool = {"name": "main", "num_replicas": 4, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": {"name": "vllm_v1", "max_num_batched_tokens": 256},
            "kv": {"name": "paged", "num_blocks": 1000, "enable_prefix_caching": True}}
    return {"seed": 5, "workload": workload,
            "cluster": {"router": {"name": "llumnix"}, "transfer": {"link": "ib-ndr"}, "pools": [pool],
                        "controllers": [{"name": "llumnix_migration"}]},
            "output": {"record_token_times": True, "record_steps": False},
            "engine": {"progress": False, "fast_forward": fast_forward}}


def _stepped(config: dict) -> dict:
    return {**copy.deepcopy(config), "engine": {"progress": False, "fast_forward": False}}


def _same_run(a, b, steps: bool = False) -> None:
    """Bit-identical requests, token times, iteration counts, ITL and the replicas' statistics
    (and the step log with ``steps``)."""
    pd.testing.assert_frame_equal(a.recorder.requests_frame(), b.recorder.requests_frame(), check_exact=True)
    assert a.recorder.token_times == b.recorder.token_times
    assert a.recorder.itl.count == b.recorder.itl.count
    assert a.recorder.itl.max_s == b.recorder.itl.max_s
    assert a.recorder.itl.mean_s() == b.recorder.itl.mean_s()  # exact sum: the same gaps
    for x, y in zip(a.replicas, b.replicas, strict=True):
        assert (x.num_steps, x.batch_size_sum, x.busy_prefill_s) == (y.num_steps, y.batch_size_sum, y.busy_prefill_s)
    if steps:
        pd.testing.assert_frame_equal(a.recorder.steps_frame(), b.recorder.steps_frame(), check_exact=True)


def _scheduler_plans(cluster) -> None:
    for rep in cluster.replicas:
        rep._mixed_budget = None


def _counting(monkeypatch, counts: dict) -> None:
    """Count mixed plans formed, the states refused for the order (a request behind the prompt)
    and the mixed stretches run (with the iterations they covered)."""
    real_stretch = mixed_stretch_module.MixedStretchMixin._mixed_stretch

    def plans(rep, budget):
        prefills = [r for r in rep.running if r.state != State.DECODE]
        if len(prefills) == 1 and rep.running[-1].state == State.DECODE:
            counts["behind"] += 1
        plan = mixed_plan(rep, budget)
        counts["plans"] += plan is not None
        return plan

    def stretches(self, plan):
        ran = yield from real_stretch(self, plan)
        if ran:
            counts["stretches"] += 1
            counts["iterations"] += self._st_last
        return ran

    monkeypatch.setattr(replica_module, "mixed_plan", plans)
    monkeypatch.setattr(mixed_stretch_module.MixedStretchMixin, "_mixed_stretch", stretches)


def _counts() -> dict:
    return {"plans": 0, "behind": 0, "stretches": 0, "iterations": 0}


def test_vllm_v1_declares_with_the_order():
    assert VllmV1Scheduler.mixed_prefill_last is True
    sched = VllmV1Scheduler(VllmV1Scheduler.Params(max_num_batched_tokens=64), None)
    assert [sched.mixed_chunk_budget(d) for d in (0, 10, 64, 65)] == [64, 54, 0, None]
    chunked = SplitwiseScheduler.Params(mode="chunked")
    reference = SplitwiseScheduler.Params(mode="reference")
    assert SplitwiseScheduler(chunked, None).mixed_chunk_budget is not None
    assert SplitwiseScheduler(reference, None).mixed_chunk_budget is None  # whole prompts, deferrals


@pytest.mark.parametrize("num_blocks", [pytest.param(40_000, id="prefix-cache"),
                                        pytest.param(2_500, id="prefix-cache-small-kv")])
def test_mixed_plan_equals_scheduler_with_prefix_cache(num_blocks, monkeypatch):
    """With the step log on (mixed stretches off): the replica's mixed plans against the
    scheduler planning every iteration (the step log too) and against stepping."""
    counts = _counts()
    config = _mooncake(num_blocks)
    _counting(monkeypatch, counts)
    fast = run_cluster(copy.deepcopy(config))
    monkeypatch.undo()
    planned = run_cluster(copy.deepcopy(config), before_run=_scheduler_plans)
    stepped = run_cluster(_mooncake(num_blocks, fast_forward=False))
    assert counts["plans"] > 400 and counts["stretches"] == 0
    _same_run(fast, planned, steps=True)
    _same_run(fast, stepped)
    frame = fast.recorder.requests_frame()
    assert (frame["state"] == "finished").sum() > 200
    assert frame["num_cached_tokens"].sum() > 0  # prefix-cache hits
    if num_blocks < 10_000:
        assert frame["num_preemptions"].sum() > 0


@pytest.mark.parametrize("num_blocks", [pytest.param(40_000, id="prefix-cache"),
                                        pytest.param(2_500, id="prefix-cache-small-kv")])
def test_mixed_stretch_equals_stepping_with_prefix_cache(num_blocks, monkeypatch):
    """Mixed stretches under vllm_v1 (12k-token prompts in 2,048-token chunks) against the
    scheduler planning every iteration, stepping, and the KV views read at every arrival."""
    counts = _counts()
    config = _mooncake(num_blocks, record_steps=False)
    seen = {"fast": [], "planned": [], "stepped": []}

    def watching(name, extra=None):
        def hook(cluster):
            route = cluster.router.route

            def watched(req, replicas):
                seen[name].append([(r.kv.num_free_blocks, r.kv.num_used_blocks, r.pending_prefill_tokens)
                                   for r in replicas])
                return route(req, replicas)

            cluster.router.route = watched
            if extra is not None:
                extra(cluster)
        return hook

    _counting(monkeypatch, counts)
    fast = run_cluster(copy.deepcopy(config), before_run=watching("fast"))
    monkeypatch.undo()
    planned = run_cluster(copy.deepcopy(config), before_run=watching("planned", _scheduler_plans))
    stepped = run_cluster(_stepped(config), before_run=watching("stepped"))
    assert counts["stretches"] > 100 and counts["iterations"] > 3 * counts["stretches"]
    _same_run(fast, planned)
    _same_run(fast, stepped)
    assert seen["fast"] == seen["planned"] == seen["stepped"]  # mid-stretch reads as stepping shows them
    if num_blocks < 10_000:
        assert fast.recorder.requests_frame()["num_preemptions"].sum() > 0


def test_admission_behind_a_capped_chunk():
    """``long_prefill_token_threshold`` caps an admitted chunk, so the next request is admitted
    behind the prompt: the order check keeps those iterations with the scheduler."""
    sched = {"name": "vllm_v1", "max_num_batched_tokens": 512, "long_prefill_token_threshold": 128}
    counts = _counts()
    config = _synthetic(sched)
    with pytest.MonkeyPatch.context() as m:
        _counting(m, counts)
        fast = run_cluster(copy.deepcopy(config))
    planned = run_cluster(copy.deepcopy(config), before_run=_scheduler_plans)
    stepped = run_cluster(_stepped(config))
    assert counts["behind"] > 0 and counts["plans"] > 100 and counts["stretches"] > 10
    _same_run(fast, planned)
    _same_run(fast, stepped)


def test_more_decodes_than_the_budget():
    """More decodes than the budget ahead of the prompt (reachable only by attaching requests:
    each running request takes a token of the budget, so admission alone keeps them fewer):
    ``schedule_running`` decodes only the first ``budget`` of them, so the budget says None and
    the replica forms no plan, changing nothing, and leaves the iteration to the scheduler."""
    sched = VllmV1Scheduler(VllmV1Scheduler.Params(max_num_batched_tokens=24), None)
    decodes = [SimpleNamespace(state=State.DECODE) for _ in range(30)]
    prompt = SimpleNamespace(state=State.PREFILL, remaining_prefill_tokens=100)

    def grow_decodes(plan, reqs):
        raise AssertionError("nothing may change")

    rep = SimpleNamespace(kv=SimpleNamespace(allocates_by_target=True), running=[*decodes, prompt], waiting=[],
                          _mixed_last=True, op_grow_decodes=grow_decodes)
    assert mixed_plan(rep, sched.mixed_chunk_budget) is None
    rep.running = [*decodes[:10], prompt, *decodes[10:]]  # a decode behind the prompt
    assert mixed_plan(rep, VllmV1Scheduler(VllmV1Scheduler.Params(), None).mixed_chunk_budget) is None


def test_order_breaks_the_promise():
    """Under migration the prompt mid-prefill is often not the last running request: with the
    order check on the run equals stepping; forcing the plan there moves the run."""
    counts = _counts()
    with pytest.MonkeyPatch.context() as m:
        _counting(m, counts)
        right = run_cluster(_migrating())
    stepped = run_cluster(_migrating(fast_forward=False))
    _same_run(right, stepped)
    assert counts["behind"] > 0 and counts["plans"] > 0

    def unordered(cluster):
        for rep in cluster.replicas:
            rep._mixed_last = False

    wrong = run_cluster(_migrating(), before_run=unordered)
    with pytest.raises(AssertionError):
        _same_run(wrong, right)
