"""vLLM v1 and the mixed-iteration fast plan (sim/engine/mixed_plan.py): why it does not declare
``mixed_chunk_budget``, and its fast path against stepping where the plan would apply.

``vllm_v1`` schedules its running requests in running order under one token budget: a decode
*after* the prompt mid-prefill gets its token only if the prompt's chunk left budget. The
promise (policies/schedulers/base.py) is decode-first, so it holds only while the prompt
mid-prefill is the newest running request. Admission keeps it so (a partial chunk takes the
whole budget left, so nobody is admitted after it) unless ``long_prefill_token_threshold`` caps
an admitted chunk, or a request is attached behind it (a hand-off or a migration landing,
``Replica.attach_running``). The mixed plan does not check that order, so ``vllm_v1`` cannot
declare: ``test_order_breaks_the_promise`` shows a run moving under Llumnix migration when its
budget function is forced on. The other tests check ``vllm_v1``'s fast path (prefix caching,
preemptions, migration) against stepping, bit for bit, and count the iterations the mixed
plan would take if declared with the prompt-newest check (they must pass then as well).
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest

import sim.engine.replica as replica_module
from policies.schedulers.vllm_v1 import VllmV1Scheduler
from sim.engine.mixed_plan import mixed_plan
from sim.engine.request import State
from sim.tools.bench import DATA
from tests.cluster_run import run_cluster

BUDGET = 2048


def _mooncake(num_blocks: int, fast_forward: bool = True) -> dict:
    """The first Mooncake conversation requests (12k-token prompts sharing prefixes) on two
    replicas with prefix caching, routed by prefix affinity; ``num_blocks`` small: preemptions."""
    workload = {"name": "trace", "path": str(DATA / "mooncake_conversation_trace.jsonl"), "max_requests": 240}
    pool = {"name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": {"name": "vllm_v1", "max_num_batched_tokens": BUDGET},
            "kv": {"name": "paged", "num_blocks": num_blocks, "enable_prefix_caching": True}}
    return {"seed": 3, "workload": workload, "cluster": {"router": "prefix_affinity", "pools": [pool]},
            "output": {"record_token_times": True, "record_steps": True},
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
            "output": {"record_token_times": True, "record_steps": True},
            "engine": {"progress": False, "fast_forward": fast_forward}}


def _same_run(a, b, steps: bool = True) -> None:
    """Bit-identical requests, token times, iteration counts and ITL (and the step log, unless
    one side steps: fast-path stretches time their log rows by stretch)."""
    pd.testing.assert_frame_equal(a.recorder.requests_frame(), b.recorder.requests_frame(), check_exact=True)
    assert a.recorder.token_times == b.recorder.token_times
    assert sum(r.num_steps for r in a.replicas) == sum(r.num_steps for r in b.replicas)
    assert a.recorder.itl.count == b.recorder.itl.count
    assert a.recorder.itl.max_s == b.recorder.itl.max_s
    assert a.recorder.itl.mean_s() == b.recorder.itl.mean_s()  # the same gaps in the same order
    if steps:
        pd.testing.assert_frame_equal(a.recorder.steps_frame(), b.recorder.steps_frame(), check_exact=True)


def _scheduler_plans(cluster) -> None:
    for rep in cluster.replicas:
        rep._mixed_budget = None


def _mixed_states(counts: dict):
    """A ``Replica._loop`` hook counting the iterations in the mixed plan's state (one prompt
    mid-prefill among decodes, nothing swapped or paused), and those where it is not the newest."""
    def counted(rep, budget):
        prefills = [r for r in rep.running if r.state != State.DECODE]
        if len(prefills) == 1:
            counts["mixed"] += 1
            counts["not_newest"] += rep.running[-1].state == State.DECODE
        return None if budget is _count_only else mixed_plan(rep, budget)
    return counted


def test_vllm_v1_does_not_declare():
    assert VllmV1Scheduler.mixed_chunk_budget is None  # see the module docstring


@pytest.mark.parametrize("num_blocks", [pytest.param(40_000, id="prefix-cache"),
                                        pytest.param(2_500, id="prefix-cache-small-kv")])
def test_fast_path_equals_stepping_with_prefix_cache(num_blocks, monkeypatch):
    counts = {"mixed": 0, "not_newest": 0}
    config = _mooncake(num_blocks)

    def force(cluster):  # the mixed plan's state is reached only where the plan is asked for
        for rep in cluster.replicas:
            rep._mixed_budget = rep._mixed_budget or _count_only

    monkeypatch.setattr(replica_module, "mixed_plan", _mixed_states(counts))
    fast = run_cluster(copy.deepcopy(config), before_run=force)
    monkeypatch.undo()
    planned = run_cluster(copy.deepcopy(config), before_run=_scheduler_plans)
    stepped = run_cluster(_mooncake(num_blocks, fast_forward=False))
    _same_run(fast, planned)  # the declared plan (if any) against the scheduler planning
    _same_run(fast, stepped, steps=False)
    frame = fast.recorder.requests_frame()
    assert (frame["state"] == "finished").sum() > 200
    assert frame["num_cached_tokens"].sum() > 0  # prefix-cache hits
    assert counts["mixed"] > 400 and counts["not_newest"] == 0  # admission keeps the prompt newest
    if num_blocks < 10_000:
        assert frame["num_preemptions"].sum() > 0


def _count_only(num_decodes: int) -> int:
    """A stand-in budget on a replica whose scheduler declares none: the hook only counts."""
    raise AssertionError("unreachable: the counting hook returns before asking")


def test_order_breaks_the_promise(monkeypatch):
    """Under migration the prompt mid-prefill is often not the newest running request; forcing
    the decode-first plan there moves the run (so ``vllm_v1`` must not declare)."""
    counts = {"mixed": 0, "not_newest": 0}

    def forced(cluster):
        for rep in cluster.replicas:
            rep._mixed_budget = _v1_budget_256

    monkeypatch.setattr(replica_module, "mixed_plan", _mixed_states(counts))
    wrong = run_cluster(_migrating(), before_run=forced)
    monkeypatch.undo()
    right = run_cluster(_migrating())
    stepped = run_cluster(_migrating(fast_forward=False))
    _same_run(right, stepped, steps=False)
    assert counts["not_newest"] > 0
    with pytest.raises(AssertionError):
        _same_run(wrong, right)


def _v1_budget_256(num_decodes: int) -> int:
    """What ``vllm_v1`` with a 256-token budget would declare: the budget left after the decodes."""
    return 256 - num_decodes if num_decodes < 256 else 0
