"""DistServe vs vLLM in DistServe's own setting: OPT-13B/66B/175B on A100-80GB, per GPU.

As DistServe's paper (Zhong et al., OSDI 2024, section 6) and its artifact run it: the
chatbot workload (ShareGPT, Poisson arrivals), SLOs TTFT / TPOT of 0.25 / 0.1 s (OPT-13B),
0.4 / 0.1 s (66B), 4.0 / 0.2 s (175B); goodput = the highest rate with >= 90% of requests
meeting both, divided by the GPUs used. Placements are the artifact's
(``evaluation/2-benchmark-serving/2-start-api-server.py``): vLLM tp 1 / 4 / 8; DistServe one
prefill instance (tp, pp) = (2, 1) / (4, 1) / (3, 3) and one decode instance (1, 1) /
(2, 2) / (4, 3), on one NVLink (A100) node: 3 / 8 / 21 GPUs. vLLM is v0 (``vllm``
scheduler: whole prompts, max 1,024 sequences, 16,384 batched tokens, as the artifact
starts it) on the 2023 vLLM stack's overheads; DistServe on its own stack's
(``hardware/calibration_constants.py``). Paper: up to 7.4x more requests per GPU.

Lengths: DistServe tokenises ShareGPT V3 with several turns concatenated into the prompt
(total < 2048 tokens) and publishes no statistics, so two length sets bracket it: ``v3fit``
(``sharegpt_v3_fit_vllm_paper_stats.csv``, first-turn prompts as vLLM's paper processes them,
mean 161 / 338 tokens; a fit to published means) and ``sharegpt4`` (the openchat ShareGPT4
lengths, median prompt ~1,700, clipped to 2,048 tokens). Capacity is measured in a
steady-state window (``servesim capacity``'s search, seeds with a 95% CI).

The artifact's OPT-175B prefill instance (tp 3, pp 3 = 9 GPUs) spans two nodes, which the
engine rejects (no inter-node TP/PP); ``--placement OPT-175B=4,2,4,2`` runs the nearest
placement inside a node instead (not the paper's).

    python experiments/distserve_paper_setting.py [--quick] [--models OPT-13B,OPT-66B] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pd_configs import ROOT, colocated, distserve, hardware  # noqa: E402

from sim.tools.capacity import find_capacity  # noqa: E402

LENGTHS = {"v3fit": str(ROOT / "traces" / "data" / "sharegpt_v3_fit_vllm_paper_stats.csv"),
           "sharegpt4": str(ROOT / "traces" / "data" / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
# model: (TTFT s, TPOT s, vLLM tp, DistServe prefill (tp, pp), decode (tp, pp)), from the paper / artifact
SETTINGS = {"OPT-13B": (0.25, 0.1, 1, (2, 1), (1, 1)),
            "OPT-66B": (0.4, 0.1, 4, (4, 1), (2, 2)),
            "OPT-175B": (4.0, 0.2, 8, (3, 3), (4, 3))}
VLLM_V0 = {"name": "vllm", "max_num_seqs": 1024, "max_num_batched_tokens": 16384}
PAPER = 7.4


def workload(lengths: str, requests: int) -> dict:
    """Poisson arrivals over a length file, total tokens < 2048 as DistServe filters."""
    return {"name": "trace", "path": LENGTHS[lengths], "arrival": {"name": "poisson", "rate_rps": 1.0},
            "max_requests": requests, "transforms": [{"name": "clip_lengths", "max_context_tokens": 2047}]}


def _stack(config: dict, stack: str, mem: float = 0.95) -> dict:
    for pool in config["cluster"]["pools"]:
        pool["cost_model"] = {"name": "analytic", "stack": stack}
        pool["kv"] = {"name": "paged", "block_size": 16, "gpu_memory_utilization": mem}
    return config


def systems(model: str, lengths: str, requests: int) -> dict[str, tuple[dict, int]]:
    """{name: (config, GPUs)} for vLLM and DistServe with the artifact's placements."""
    _, _, vtp, (ptp, ppp), (dtp, dpp) = SETTINGS[model]
    w = workload(lengths, requests)
    vllm = _stack(colocated(w, 1, hardware("A100-80GB", model, vtp), VLLM_V0), "vllm")
    ds = _stack(distserve(w, 1, 1, hardware("A100-80GB", model, ptp, ppp), hardware("A100-80GB", model, dtp, dpp),
                          link="nvlink3"), "distserve")
    return {"vLLM v0": (vllm, vtp), "DistServe": (ds, ptp * ppp + dtp * dpp)}


def main(argv: list[str] | None = None) -> int:
    """Print per-GPU capacity of both systems for each model and length set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="OPT-13B, v3fit, 1 seed, 400 requests")
    parser.add_argument("--models", default=",".join(SETTINGS))
    parser.add_argument("--lengths", default="v3fit,sharegpt4")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rtol", type=float, default=0.03)
    parser.add_argument("--min-window-e2e", type=float, default=5.0)
    parser.add_argument("--placement", action="append", default=[], metavar="MODEL=PTP,PPP,DTP,DPP",
                        help="override DistServe's placement, e.g. OPT-175B=4,2,4,2 (the artifact's 3x3 prefill "
                             "spans two 8-GPU nodes, which the engine does not model)")
    args = parser.parse_args(argv)
    for item in args.placement:
        model, _, spec = item.partition("=")
        ptp, ppp, dtp, dpp = (int(x) for x in spec.split(","))
        SETTINGS[model] = (*SETTINGS[model][:3], (ptp, ppp), (dtp, dpp))
    models, lengths = args.models.split(","), args.lengths.split(",")
    if args.quick:
        models, lengths, args.seeds, args.requests, args.rtol, args.min_window_e2e = \
            ["OPT-13B"], ["v3fit"], 1, 400, 0.1, 1.0
    print(f"A100-80GB; capacity = highest rate with >= 90% meeting TTFT and TPOT, per GPU; {args.requests} "
          f"requests, {args.seeds} seed(s), mean +/- 95% CI")
    print(f"{'model':<9} {'lengths':<10} {'system':<10} {'GPUs':>4} {'req/s':>16} {'req/s/GPU':>10} {'steady':>7}")
    for model in models:
        ttft, tpot = SETTINGS[model][:2]
        for lens in lengths:
            per_gpu = {}
            for name, (cfg, gpus) in systems(model, lens, args.requests).items():
                r = find_capacity(cfg, slo={"ttft_s": ttft, "tpot_s": tpot}, attainment=0.9, rtol=args.rtol,
                                  seeds=args.seeds, min_window_e2e=args.min_window_e2e, start=0.5)
                value = r.value or 0.0
                per_gpu[name] = value / gpus
                print(f"{model:<9} {lens:<10} {name:<10} {gpus:>4} {value:8.3f} +/- {r.value_ci95:5.3f} "
                      f"{value / gpus:10.3f} {str(r.steady):>7}", flush=True)
            ratio = per_gpu["DistServe"] / per_gpu["vLLM v0"] if per_gpu["vLLM v0"] else float("inf")
            print(f"  -> {model} {lens}: DistServe / vLLM per GPU = {ratio:.2f}x (paper: up to {PAPER}x; "
                  f"SLO TTFT {ttft} s, TPOT {tpot} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
