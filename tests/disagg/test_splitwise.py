"""Splitwise's machine rules: prompt-machine choice, borrowing, push, starvation guard, power."""

from __future__ import annotations

from collections import deque

import numpy as np

from sim import simulate
from sim.config import from_dict
from sim.engine.request import Request
from sim.engine.seams import BuildContext

COST = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5, "kv_bytes_per_token": 131072.0}


def splitwise_dict(num_prompt=1, num_token=1, token_blocks=20000, workload=None, max_pending=8192):
    return {
        "workload": workload or {"name": "synthetic", "num_requests": 40, "rate_rps": 1e9, "input_tokens": 3000,
                                 "output_tokens": 20, "arrival": {"name": "all_at_once"}},
        "cluster": {
            "router": {"name": "splitwise", "max_pending_tokens": max_pending},
            "handoff": {"name": "splitwise"},
            "pools": [
                {"name": "prompt", "role": "prefill", "num_replicas": num_prompt, "cost_model": COST,
                 "scheduler": "splitwise", "kv": {"name": "paged", "num_blocks": 20000}},
                {"name": "token", "role": "decode", "num_replicas": num_token, "cost_model": COST,
                 "scheduler": "splitwise", "kv": {"name": "paged", "num_blocks": token_blocks}},
            ],
        },
        "engine": {"progress": False},
    }


def test_full_prompt_machines_borrow_a_token_machine():
    res = simulate(from_dict(splitwise_dict()))
    df = res.requests
    assert (df["state"] == "finished").all()
    # 40 x 3000-token prompts at once: the prompt machine takes what fits under 8192 pending
    # tokens while busy; the rest run end to end on the borrowed token machine (no KV copy)
    borrowed = df[df["transfer_s"] == 0.0]
    moved = df[df["transfer_s"] > 0.0]
    assert len(borrowed) > 0 and len(moved) > 0
    assert (borrowed["pool"] == "token").all()


def test_no_token_room_decodes_in_place():
    # the token machine cannot hold a single request: the prompt machine decodes (mixed)
    data = splitwise_dict(token_blocks=50, workload={"name": "synthetic", "num_requests": 5, "rate_rps": 1.0,
                                                     "input_tokens": 3000, "output_tokens": 20})
    df = simulate(from_dict(data)).requests
    assert (df["state"] == "finished").all()
    assert (df["pool"] == "prompt").all()
    assert (df["transfer_s"] == 0.0).all()


def test_push_goes_to_least_scheduled_memory():
    data = splitwise_dict(num_token=2, max_pending=10**9,
                          workload={"name": "synthetic", "num_requests": 20, "rate_rps": 5.0,
                                    "input_tokens": 2000, "output_tokens": 200})
    df = simulate(from_dict(data)).requests
    assert (df["pool"] == "token").all()
    counts = df["replica"].value_counts()
    assert len(counts) == 2 and abs(counts.iloc[0] - counts.iloc[1]) <= 2


def test_request_preempted_four_times_goes_first():
    from policies.schedulers.splitwise import SplitwiseParams, SplitwiseScheduler

    class Rep:
        waiting = deque()

    rep = Rep()
    a, b, c = (Request(i, 0.0, 10, 10) for i in range(3))
    c.num_preemptions = 4
    rep.waiting.extend([a.view, b.view, c.view])
    scheduler = SplitwiseScheduler(SplitwiseParams(), BuildContext(rng=np.random.default_rng(0)))
    assert scheduler.peek(rep) is c.view
    c.num_preemptions = 3
    assert scheduler.peek(rep) is a.view


def test_power_per_phase_feeds_energy():
    data = splitwise_dict(workload={"name": "synthetic", "num_requests": 20, "rate_rps": 2.0,
                                    "input_tokens": 2000, "output_tokens": 100})
    for pool in data["cluster"]["pools"]:
        pool["cost_model"] = "analytic"
        pool["hardware"] = {"device": "H100-SXM", "model": "Llama-3-8B"}
        pool["kv"] = {"name": "paged"}
    s = simulate(from_dict(data)).summary
    # H100: prompt 700 W, token 380 W, idle 75 W (Splitwise): energy between all-idle and all-prompt
    span_gpu_s = s["gpu_hours"] * 3600
    assert 75 * span_gpu_s < s["energy_j"] < 700 * span_gpu_s
