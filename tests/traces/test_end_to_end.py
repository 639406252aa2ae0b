"""Every workload runs through the simulator by YAML alone (small sizes)."""

from __future__ import annotations

import pytest

from sim.api import simulate
from tests.conftest import make_config

WORKLOADS = {
    "azure": {"name": "trace", "path": "traces/data/azure_llm_2023_conv.csv", "max_requests": 60},
    "mooncake": {"name": "trace", "path": "traces/data/mooncake_conversation_trace.jsonl",
                 "transforms": [{"name": "max_requests", "count": 30},
                                {"name": "clip_lengths", "max_context_tokens": 4096}]},
    "sharegpt": {"name": "trace", "path": "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv",
                 "arrival": {"name": "gamma", "rate_rps": 5, "cv": 2}, "max_requests": 40,
                 "transforms": [{"name": "clip_lengths", "max_context_tokens": 2048}]},
    "synthetic": {"name": "synthetic", "num_requests": 50, "arrival": {"name": "mmpp"},
                  "lengths": {"input": {"name": "zipf", "scale_tokens": 16}, "output": {"name": "fixed", "tokens": 8}},
                  "transforms": [{"name": "slo_classes", "classes": [{"name": "a", "ttft_s": 1}, {"name": "b"}]}]},
    "sessions": {"name": "sessions", "num_sessions": 10, "rate_rps": 2, "think_time_s": 1,
                 "system_prompt_tokens": 64, "output_tokens": 16},
    "closed_loop": {"name": "closed_loop", "num_users": 4, "num_requests": 30, "input_tokens": 64,
                    "output_tokens": 8, "turns": 2},
    "agentic": {"name": "agentic", "num_jobs": 5, "rate_rps": 2, "calls_per_job": 3, "input_tokens": 128,
                "output_tokens": 8, "shape": "fanout"},
}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_simulates(name):
    result = simulate(make_config(workload=WORKLOADS[name], num_blocks=20000, kv={"enable_prefix_caching": True}))
    assert result.summary["num_requests"] == len(result.requests) > 0
