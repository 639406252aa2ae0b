"""Strict short-first priority (preemptive, recompute) starves long prompts under steady load."""

from __future__ import annotations

from sim import simulate
from sim.config import from_dict

COST = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-5, "kv_capacity_tokens": 2_000_000}


def config(scheduler: dict, horizon_s: float = 120.0) -> dict:
    # steady shorts (~60% busy) plus every 20th request a 500K-token prompt (5 s of prefill alone)
    return {
        "seed": 1,
        "workload": {"name": "synthetic", "num_requests": 600, "rate_rps": 5.0,
                     "lengths": {"input": {"name": "uniform", "min_tokens": 200, "max_tokens": 2000},
                                 "output": {"name": "uniform", "min_tokens": 5, "max_tokens": 30}},
                     "transforms": [{"name": "inject_long_inputs", "top_fraction": 0.05,
                                     "min_tokens": 400_000, "max_tokens": 500_000},
                                    {"name": "priority_by_length", "long_input_tokens": 100_000}]},
        "cluster": {"pools": [{"num_replicas": 1, "cost_model": COST, "scheduler": scheduler}]},
        "engine": {"progress": False, "max_time_s": horizon_s},
    }


def long_unfinished(scheduler: dict) -> tuple[int, int]:
    df = simulate(from_dict(config(scheduler))).requests
    long = df[df["input_tokens"] > 100_000]
    return int((long["state"] != "finished").sum()), len(long)


def test_strict_priority_starves_long_requests_fifo_does_not():
    starved, num_long = long_unfinished({"name": "strict_priority", "max_num_batched_tokens": 600_000})
    fifo_starved, _ = long_unfinished({"name": "vllm", "max_num_batched_tokens": 600_000})
    assert num_long >= 20
    assert starved >= 0.8 * num_long
    assert fifo_starved < 0.5 * num_long


def test_shorts_first_and_long_work_is_recomputed():
    df = simulate(from_dict(config({"name": "strict_priority", "max_num_batched_tokens": 600_000}))).requests
    short = df[df["input_tokens"] <= 100_000]
    long = df[df["input_tokens"] > 100_000]
    assert (short["state"] == "finished").mean() > 0.95
    assert long["num_preemptions"].sum() > 0
