"""Known trends of the baseline schedulers on small cases."""

from __future__ import annotations

from sim import simulate
from tests.conftest import make_config

# decode-heavy load with long prompts mixed in; prefill costs 50 us per token
MIXED_LOAD = {"name": "synthetic", "num_requests": 400, "rate_rps": 3.0, "input_tokens": 64,
              "input_tokens_max": 6000, "output_tokens": 50, "output_tokens_max": 300}
COST = {"name": "constant", "step_s": 0.012, "per_prefill_token_s": 5e-5, "per_decode_token_s": 1e-4}


def _summary(scheduler):
    return simulate(make_config(scheduler=scheduler, workload=MIXED_LOAD, cost=COST, num_blocks=20000)).summary


def test_sarathi_bounds_inter_token_stalls_that_vllm_v0_suffers():
    vllm, sarathi = _summary("vllm"), _summary("sarathi")
    # vLLM v0 runs whole prompts in prefill-only steps: decodes stall for the whole prefill
    assert vllm["itl_p99_s"] > 2.0 * sarathi["itl_p99_s"]
    assert vllm["tpot_p99_s"] > sarathi["tpot_p99_s"]
    # chunking bounds every gap by one budget-sized step
    assert sarathi["itl_max_s"] <= COST["step_s"] + 512 * COST["per_prefill_token_s"] + 128 * 1e-4 + 1e-9


def test_orca_max_reservation_limits_batch_size_versus_paged_kv():
    small_kv = dict(workload={"name": "synthetic", "num_requests": 300, "rate_rps": 50.0, "input_tokens": 50,
                              "input_tokens_max": 200, "output_tokens": 20, "output_tokens_max": 200},
                    cost=COST, num_blocks=1024)  # 16k tokens: 8 Orca reservations of 2048
    orca = simulate(make_config(scheduler="orca", **small_kv)).summary
    paged = simulate(make_config(scheduler="vllm", **small_kv)).summary
    assert orca["mean_batch_size"] < paged["mean_batch_size"]
    assert orca["e2e_mean_s"] > paged["e2e_mean_s"]
