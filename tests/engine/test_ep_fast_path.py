"""The decode fast path equals stepping for an expert-parallel (EP) cost model too.

EP prices every step with its own routing realisation, so a fast-forward stretch must take
the same per-step route as stepping one iteration at a time (a short-run shortcut once
priced EP stretches with the plain MoE formula; see tests/hardware/test_hw_moe.py)."""

import pandas as pd

from sim import simulate


def _config(fast_forward: bool) -> dict:
    return {
        "seed": 0,
        "workload": {"name": "synthetic", "num_requests": 120, "rate_rps": 6.0,
                     "input_tokens": 50, "input_tokens_max": 400,
                     "output_tokens": 2, "output_tokens_max": 60},
        "cluster": {"pools": [{
            "name": "main", "num_replicas": 1, "scheduler": "vllm_v1",
            "hardware": {"device": "H100-SXM", "model": "Qwen3-30B-A3B"},
            "cost_model": {"name": "analytic", "expert_parallel": {"ep": 8, "routing": "zipf"}},
        }]},
        "engine": {"progress": False, "fast_forward": fast_forward},
    }


def test_ep_fast_path_equals_stepping():
    fast, stepped = simulate(_config(True)), simulate(_config(False))
    cols = ["id", "state", "first_token_s", "finish_s", "ttft_s", "tpot_s", "num_output_tokens"]
    pd.testing.assert_frame_equal(fast.requests[cols].reset_index(drop=True),
                                  stepped.requests[cols].reset_index(drop=True), check_exact=True)
    assert (fast.requests["state"] == "finished").sum() == 120
