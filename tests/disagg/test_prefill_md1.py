"""DistServe's check: a prefill-only instance is an M/D/1 queue for TTFT."""

from __future__ import annotations

import pytest

from sim import simulate
from sim.config import from_dict
from tests.test_queueing import md1_wait_s


def pd_config(rate, step_s, num_requests, seed):
    cost = {"name": "constant", "step_s": step_s}
    return from_dict({
        "seed": seed,
        "workload": {"name": "synthetic", "num_requests": num_requests, "rate_rps": rate,
                     "input_tokens": 512, "output_tokens": 1},
        "cluster": {
            "router": "least_outstanding",
            "handoff": {"name": "distserve"},
            "pools": [
                {"name": "prefill", "role": "prefill", "num_replicas": 1, "cost_model": cost,
                 "scheduler": {"name": "distserve_prefill", "max_num_seqs": 1},
                 "kv": {"name": "paged", "num_blocks": 4000}},
                {"name": "decode", "role": "decode", "num_replicas": 1, "cost_model": cost,
                 "scheduler": "vllm_v1", "kv": {"name": "paged", "num_blocks": 4000}},
            ],
        },
        "engine": {"progress": False},
    })


@pytest.mark.parametrize("utilisation", [0.5, 0.8])
def test_prefill_pool_ttft_is_md1(utilisation):
    step_s = 0.05  # D: one prompt's prefill
    rate = utilisation / step_s
    ttfts = [simulate(pd_config(rate, step_s, 60_000, seed)).requests["ttft_s"].mean() for seed in range(2)]
    expected = step_s + md1_wait_s(rate, step_s)
    assert sum(ttfts) / len(ttfts) == pytest.approx(expected, rel=0.05)
