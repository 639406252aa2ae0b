"""Router trends on small cases."""

from __future__ import annotations

from sim import simulate
from tests.conftest import make_config

MOONCAKE = {"name": "trace", "path": "traces/data/mooncake_conversation_trace.jsonl", "max_requests": 2500}
CACHE_COST = {"name": "constant", "step_s": 0.015, "per_prefill_token_s": 5e-5, "per_decode_token_s": 1e-4,
              "kv_capacity_tokens": 400_000}


def _run(router, **kw):
    cfg = make_config(router=router, num_replicas=4, workload=MOONCAKE, cost=CACHE_COST,
                      kv={"enable_prefix_caching": True}, num_blocks=60_000, **kw)
    return simulate(cfg).summary


def test_prefix_affinity_raises_hit_rate_on_mooncake():
    rr, affinity = _run("round_robin"), _run("prefix_affinity")
    assert affinity["prefix_hit_rate"] > 1.5 * rr["prefix_hit_rate"]
    assert affinity["prefix_hit_rate"] > 0.08


def test_cache_hits_cut_prefill_work():
    off = simulate(make_config(router="prefix_affinity", num_replicas=4, workload=MOONCAKE, cost=CACHE_COST,
                               num_blocks=25_000)).summary
    on = _run("prefix_affinity")
    assert off["prefix_hit_rate"] == 0.0
    assert on["ttft_mean_s"] < off["ttft_mean_s"]


def test_least_outstanding_beats_round_robin_on_bursty_tail():
    code = {"name": "trace", "path": "traces/data/azure_llm_2023_code.csv", "max_requests": 3000}
    cost = {"name": "constant", "step_s": 0.012, "per_prefill_token_s": 6e-5, "per_decode_token_s": 1e-4}
    rr = simulate(make_config(router="round_robin", num_replicas=4, workload=code, cost=cost,
                              num_blocks=30_000)).summary
    lo = simulate(make_config(router="least_outstanding", num_replicas=4, workload=code, cost=cost,
                              num_blocks=30_000)).summary
    assert lo["ttft_p99_s"] < rr["ttft_p99_s"]
