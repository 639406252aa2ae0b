"""Trend: C2CServe against the best serverless baseline on a small multi-model case.

Four GH200 1g.24gb slices on one chip (sharing its C2C link), eight models (variants of
three architectures) by Zipf popularity with bursts, Poisson arrivals. C2CServe (stream from
Grace, ``c2cserve`` placement, ``c2cserve_rho``) must have a lower mean cold start than the
best of time-sharing (swap from host memory over C2C) and ServerlessLLM (tiered store), with
TTFT and TPOT attainment over 95%; with rho ignoring contention, attainment must fall.
"""

from __future__ import annotations

from sim import simulate

BASES = ["Llama-3-8B", "Qwen2.5-7B", "Llama-3.2-1B"]
MODELS = [f"{b}@v{k}" for k in range(3) for b in BASES][:8]
SLO = {"ttft_s": 2.0, "tpot_s": 0.1}


def run(router: str, serving: dict, controllers: list | None = None) -> dict:
    cfg = {
        "seed": 0,
        "workload": {"name": "synthetic", "num_requests": 240, "rate_rps": 2.0, "input_tokens": 128,
                     "input_tokens_max": 1024, "output_tokens": 16, "output_tokens_max": 96,
                     "transforms": [{"name": "assign_models", "models": MODELS, "zipf_a": 1.0, "burst_factor": 4.0,
                                     "on_mean_s": 10.0, "off_mean_s": 60.0}]},
        "cluster": {"router": router, "controllers": controllers or [], "pools": [{
            "name": "mig", "num_replicas": 4, "hardware": {"device": "GH200-96GB:1g.24gb", "model": BASES[0]},
            "serving": {"models": MODELS, "keep_alive_s": 20.0, "switch_overhead_s": 0.1, "slices_per_chip": 4,
                        **serving}}]},
        "slo": SLO, "engine": {"progress": False},
    }
    return simulate(cfg).summary


def test_c2cserve_cold_starts_beat_the_best_serverless_baseline_and_rho_must_see_contention():
    base = {
        "timeshare": run("model_affinity", {"weights_home": "host_memory"}),
        "serverlessllm": run("serverlessllm", {"weights_home": "tiered"}),
    }
    c2c = run("c2cserve", {"weights_home": "grace", "stream": True},
              [{"name": "c2cserve_rho", "ttft_slo_s": SLO["ttft_s"], "tpot_slo_s": SLO["tpot_s"]}])
    static = run("c2cserve", {"weights_home": "grace", "stream": True},
                 [{"name": "c2cserve_rho", "contention_aware": False}])
    best = min(base.values(), key=lambda s: s["cold_start_mean_s"])
    assert c2c["cold_start_mean_s"] < best["cold_start_mean_s"]
    assert c2c["slo_attainment_ttft"] > 0.95 and c2c["slo_attainment_tpot"] > 0.95
    assert c2c["serving_num_loads"] == 0 and c2c["c2c_utilisation"] > 0
    assert static["slo_attainment"] < c2c["slo_attainment"]
