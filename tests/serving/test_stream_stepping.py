"""Weight-streaming slices: the engine's shortcuts on their stepped iterations change nothing.

A streaming replica has no decode stretches (each iteration waits for its weight stream over
the chip's shared link), but with the fast path on it still forms its pure-decode plans itself
(``Replica.fast_plan``: ``_decode_all``, the scheduler's plan by ``fast_forward_safe``'s
promise) and prices them by the cost model's faster pure-decode form. With the fast path off
the scheduler plans every iteration and ``step_time_s`` prices it: requests, token times, link
uses and HBM rows must be identical.
"""

from __future__ import annotations

import pandas as pd

from sim import simulate
from sim.engine.fast_path import DecodeStretchMixin
from sim.engine.serving_records import link_frame, memory_frame
from tests.conftest import same_value

MODELS = [f"{b}@v{k}" for k in range(2) for b in ("Llama-3-8B", "Qwen2.5-7B", "Llama-3.2-1B")]


def _config(fast_forward: bool) -> dict:
    return {
        "seed": 1,
        "workload": {"name": "synthetic", "num_requests": 160, "rate_rps": 3.0, "input_tokens": 128,
                     "input_tokens_max": 1024, "output_tokens": 16, "output_tokens_max": 128,
                     "transforms": [{"name": "assign_models", "models": MODELS, "zipf_a": 1.0, "burst_factor": 4.0,
                                     "on_mean_s": 10.0, "off_mean_s": 30.0}]},
        "cluster": {"router": "c2cserve", "controllers": [{"name": "c2cserve_rho"}], "pools": [{
            "name": "mig", "num_replicas": 4, "hardware": {"device": "GH200-96GB:1g.24gb", "model": "Llama-3-8B"},
            "serving": {"models": MODELS, "weights_home": "grace", "stream": True, "keep_alive_s": 20.0,
                        "switch_overhead_s": 0.1, "slices_per_chip": 2}}]},
        "output": {"record_token_times": True},
        "engine": {"progress": False, "fast_forward": fast_forward},
    }


def test_streaming_slices_plan_and_price_as_the_scheduler_and_step_time_s(monkeypatch):
    formed = []
    decode_all = DecodeStretchMixin._decode_all

    def counting(self):
        plan = decode_all(self)
        if plan is not None and getattr(self, "models", None) is not None:
            formed.append(len(plan.decode))
        return plan

    monkeypatch.setattr(DecodeStretchMixin, "_decode_all", counting)
    fast = simulate(_config(True))
    assert len(formed) > 1000  # the replica formed its own plans (none are formed with the fast path off)
    formed.clear()
    stepped = simulate(_config(False))
    assert not formed
    a, b = fast.requests.sort_values("id"), stepped.requests.sort_values("id")
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)
    assert fast.summary["num_completed"] == 160
    for frame in (link_frame, memory_frame):
        pd.testing.assert_frame_equal(frame(fast.models), frame(stepped.models), check_exact=True)
    moved = {k: (v, stepped.summary.get(k)) for k, v in fast.summary.items()
             if k not in ("wall_s", "num_events") and not same_value(v, stepped.summary.get(k))}
    assert not moved
