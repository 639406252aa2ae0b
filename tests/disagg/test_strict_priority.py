"""Strict short-first priority (preemptive, recompute) starves long prompts under steady load.

Starved, as in ``experiments/pecsched_azure.py``'s ``fifo_x:K`` rule: a long request whose JCT
exceeds K times the same request's JCT under FIFO, or that never finishes. The clock runs until
every request finishes, so the count does not depend on where it stops (the earlier
'unfinished at the cut' count did). PecSched's paper definition was not found (see the
experiment's docstring); K = 2 is a project choice.
"""

from __future__ import annotations

from experiments.pecsched_azure import fifo_jcts, starved
from sim import simulate
from sim.config import from_dict

COST = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-5, "kv_capacity_tokens": 2_000_000}
LONG = 100_000
FIFO = {"name": "vllm", "max_num_batched_tokens": 600_000}
STRICT = {"name": "strict_priority", "max_num_batched_tokens": 600_000}


def config(scheduler: dict, horizon_s: float = 3000.0) -> dict:
    # steady shorts (~60% busy) plus every 20th request a 500K-token prompt (5 s of prefill alone)
    return {
        "seed": 1,
        "workload": {"name": "synthetic", "num_requests": 600, "rate_rps": 5.0,
                     "lengths": {"input": {"name": "uniform", "min_tokens": 200, "max_tokens": 2000},
                                 "output": {"name": "uniform", "min_tokens": 5, "max_tokens": 30}},
                     "transforms": [{"name": "inject_long_inputs", "top_fraction": 0.05,
                                     "min_tokens": 400_000, "max_tokens": 500_000},
                                    {"name": "priority_by_length", "long_input_tokens": LONG}]},
        "cluster": {"pools": [{"num_replicas": 1, "cost_model": COST, "scheduler": scheduler}]},
        "engine": {"progress": False, "max_time_s": horizon_s},
    }


def long_requests(scheduler: dict):
    df = simulate(from_dict(config(scheduler))).requests
    return df[df["input_tokens"] > LONG]


def test_strict_priority_starves_long_requests_layer_preemption_does_not():
    fifo = long_requests(FIFO)
    ref = fifo_jcts(fifo, LONG)
    strict = long_requests(STRICT)
    pec = long_requests({"name": "pecsched", "long_input_tokens": LONG})
    assert len(strict) >= 20
    assert starved(fifo, "fifo_x:2", ref) == 0
    # every long request finishes once arrivals stop: the starvation is delay, not loss
    assert starved(strict, "unfinished") == 0
    assert starved(strict, "fifo_x:2", ref) >= 0.8 * len(strict)
    # keeping finished layers' KV when cut (PecSched's preemption) avoids it
    assert starved(pec, "fifo_x:2", ref) <= 0.1 * len(pec)


def test_shorts_first_and_long_work_is_recomputed():
    df = simulate(from_dict(config(STRICT))).requests
    short = df[df["input_tokens"] <= LONG]
    long = df[df["input_tokens"] > LONG]
    assert (short["state"] == "finished").mean() > 0.95
    assert long["num_preemptions"].sum() > 0
