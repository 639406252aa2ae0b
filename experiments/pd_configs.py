"""Config builders shared by the P/D disaggregation experiments (DistServe, Splitwise)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAREGPT = str(ROOT / "traces" / "data" / "sharegpt_8k_lengths_llama2_tokenizer.csv")


def sharegpt_poisson(rate_rps: float, num_requests: int, max_context_tokens: int = 8192) -> dict:
    """ShareGPT lengths (clipped to the model's context) with Poisson arrivals."""
    return {"name": "trace", "path": SHAREGPT, "arrival": {"name": "poisson", "rate_rps": rate_rps},
            "max_requests": num_requests,
            "transforms": [{"name": "clip_lengths", "max_context_tokens": max_context_tokens}]}


def hardware(device: str, model: str, tp: int = 1, pp: int = 1) -> dict:
    """A pool's hardware block."""
    return {"device": device, "model": model, "tp": tp, "pp": pp}


def colocated(workload: dict, num_replicas: int, hw: dict, scheduler: str | dict = "vllm") -> dict:
    """Mixed replicas behind a least-outstanding router (vLLM-style colocated serving)."""
    return {"seed": 0, "workload": workload,
            "cluster": {"router": "least_outstanding",
                        "pools": [{"name": "mixed", "role": "mixed", "num_replicas": num_replicas, "hardware": hw,
                                   "cost_model": "analytic", "scheduler": scheduler, "kv": {"name": "paged"}}]},
            "engine": {"progress": False}}


def distserve(workload: dict, num_prefill: int, num_decode: int, prefill_hw: dict, decode_hw: dict,
              link: str = "nvlink4") -> dict:
    """DistServe: prefill and decode pools, least-loaded routing, pull-based KV hand-off."""
    return {"seed": 0, "workload": workload,
            "cluster": {"router": "least_outstanding",
                        "handoff": {"name": "distserve", "link": link},
                        "pools": [
                            {"name": "prefill", "role": "prefill", "num_replicas": num_prefill, "hardware": prefill_hw,
                             "cost_model": "analytic", "scheduler": "distserve_prefill", "kv": {"name": "paged"}},
                            {"name": "decode", "role": "decode", "num_replicas": num_decode, "hardware": decode_hw,
                             "cost_model": "analytic", "scheduler": "vllm_v1", "kv": {"name": "paged"}}]},
            "engine": {"progress": False}}
