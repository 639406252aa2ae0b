"""Layered prefill: mechanics (G iterations per prompt, decodes every iteration) and trends vs Sarathi."""

from __future__ import annotations

from types import SimpleNamespace

from hardware.analytic import AnalyticCostModel
from sim import simulate
from sim.config import from_dict

LOAD = {"name": "synthetic", "num_requests": 160, "rate_rps": 6.0, "input_tokens": 256,
        "input_tokens_max": 4096, "output_tokens": 32, "output_tokens_max": 256}


def run(scheduler: dict, workload: dict = LOAD, num_blocks: int | None = None, steps: bool = False):
    pool = {"name": "main", "hardware": {"device": "H100-SXM", "model": "Qwen3-30B-A3B"}, "scheduler": scheduler}
    if num_blocks is not None:
        pool["kv"] = {"name": "paged", "num_blocks": num_blocks}
    return simulate(from_dict({"seed": 1, "workload": workload, "cluster": {"pools": [pool]},
                               "output": {"record_steps": steps}, "engine": {"progress": False}}))


def test_a_prompt_takes_exactly_g_iterations_beside_running_decodes():
    wl = {"name": "synthetic", "num_requests": 6, "rate_rps": 50.0, "input_tokens": 1500,
          "input_tokens_max": 1500, "output_tokens": 200, "output_tokens_max": 200}
    res = run({"name": "layered_prefill", "num_groups": 6, "max_prefill_tokens": 1500}, wl, steps=True)
    s = res.steps
    group_rows = s[s["batch_size"] > s["decode_tokens"]]
    assert len(group_rows) == 6 * 6  # one cohort per prompt, G iterations each
    assert (group_rows["prefill_tokens"] > 0).sum() == 6  # tokens count after the last group
    assert res.summary["num_completed"] == 6


def test_layered_prefill_beats_chunked_prefill_ttft_with_tbt_about_the_same():
    sarathi = run({"name": "sarathi"}).summary
    layered = run({"name": "layered_prefill", "num_groups": 4}).summary
    assert layered["ttft_mean_s"] < 0.8 * sarathi["ttft_mean_s"]
    assert layered["tpot_p99_s"] <= 1.15 * sarathi["tpot_p99_s"]
    assert layered["num_completed"] == sarathi["num_completed"] == LOAD["num_requests"]


def test_small_kv_preempts_and_still_accounts_for_every_request():
    res = run({"name": "layered_prefill", "num_groups": 4}, num_blocks=700).summary
    assert res["num_completed"] + res["num_rejected"] == LOAD["num_requests"]
    assert res["num_preemptions"] > 0


def test_one_layered_pass_reads_fewer_expert_bytes_than_its_chunks():
    hw = SimpleNamespace(device="H100-SXM", model="Qwen3-30B-A3B", tp=1, pp=1, weight_dtype="bf16", kv_dtype="bf16")
    b = AnalyticCostModel(None, hw).expert_weight_bytes
    prompt, decodes, chunk, groups = 4096, 2, 512, 4
    chunked = (prompt // chunk) * b(chunk + decodes)
    layered = groups * (b(prompt + decodes) / groups + (1 - 1 / groups) * b(decodes))
    assert layered < 0.6 * chunked
