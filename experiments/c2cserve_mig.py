"""C2CServe vs serverless baselines on GH200 MIG slices, on the Azure 2023 conversation arrivals.

Workload: the Azure 2023 conversation trace's arrivals and lengths (a window, rate scaled,
prompts clipped to 4,096 tokens), each request given one of 12 models by Zipf popularity
(a = 1) with per-model bursts (``assign_models``): four variants each of Llama-3-8B,
Qwen2.5-7B and Llama-3.2-1B (``Base@tag``: same architecture, own weights), so most models
are invoked rarely. Cluster: 2 GH200-96GB, each as four 1g.24gb slices (8 slices; the four
slices of a chip share its NVLink-C2C link), analytic cost model, vLLM v1 scheduling.

Systems (same slices, same switch overhead of 0.1 s, keep-alive 60 s):

- dedicated: one model per slice at a time, a new engine per switch (14.2 s vLLM start) after
  loading the weights from local NVMe with safetensors (3.65 GB/s per node), ``model_affinity``;
- serverlessllm: ServerlessLLM's multi-tier store (host-memory checkpoint cache, else NVMe at
  its loader's 22.9 GB/s) and startup-time-optimised placement, engines kept warm (swap);
- timeshare: time-sharing with model swapping: models swapped into a running engine from
  host memory (Grace, over the shared C2C link), as many resident as HBM holds;
- c2cserve: weights in Grace, a switched-to model runs at once streaming them over C2C
  (HybridGEMM rho), ``c2cserve`` placement and the ``c2cserve_rho`` controller;
- c2cserve_static: the same with rho computed as if each slice had the link alone and no
  feedback (``contention_aware: false``): the paper's "rho ignores contention" ablation.

``--moe``: eight Qwen3-30B-A3B variants (61 GB each, one fits a GH200's HBM at a time) on
four whole GH200s (7g.96gb, one per chip, so no C2C sharing between slices): the MoE case.

Measured in steady state: requests arriving after the first ``warmup`` seconds and before
the window's last ``warmup`` seconds. Cold start = arrival until a slice could run the
request's model; "cold TTFT" = TTFT of the requests that had one. Run::

    .venv/bin/python experiments/c2cserve_mig.py --quick      # one seed, 150 s window
    .venv/bin/python experiments/c2cserve_mig.py              # seeds 0-2, 900 s window
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd

from sim import simulate
from sim.engine.metrics import slo_mask
from sim.tools.figures import figure_dir

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
DEVICE = "GH200-96GB:1g.24gb"
BASES = ["Llama-3-8B", "Qwen2.5-7B", "Llama-3.2-1B"]
MODELS = [f"{b}@v{k}" for k in range(4) for b in BASES]
SLO = {"ttft_s": 2.0, "tpot_s": 0.1}
COMMON = {"keep_alive_s": 60.0, "switch_overhead_s": 0.1, "slices_per_chip": 4}

SYSTEMS: dict[str, dict] = {
    "dedicated": {"router": "model_affinity",
                  "serving": {"weights_home": "storage", "switch": "restart", "max_resident": 1}},
    "serverlessllm": {"router": "serverlessllm", "serving": {"weights_home": "tiered"}},
    "timeshare": {"router": "model_affinity", "serving": {"weights_home": "host_memory"}},
    "c2cserve": {"router": "c2cserve", "serving": {"weights_home": "grace", "stream": True},
                 "controllers": [{"name": "c2cserve_rho", **{f"{k}_slo_s": v for k, v in
                                                            (("ttft", SLO["ttft_s"]), ("tpot", SLO["tpot_s"]))}}]},
    "c2cserve_static": {"router": "c2cserve", "serving": {"weights_home": "grace", "stream": True},
                        "controllers": [{"name": "c2cserve_rho", "contention_aware": False}]},
}


MOE = {"device": "GH200-96GB:7g.96gb", "bases": ["Qwen3-30B-A3B"], "variants": 8, "slices_per_chip": 1}


def config(system: str, seed: int, window_s: float, rate_scale: float, num_slices: int, moe: bool = False) -> dict:
    """The run config of one system (``moe``: eight Qwen3-30B-A3B variants on whole GH200s)."""
    spec = copy.deepcopy(SYSTEMS[system])
    bases, models, device = BASES, MODELS, DEVICE
    common = dict(COMMON)
    if moe:
        bases, device = MOE["bases"], MOE["device"]
        models = [f"{b}@v{k}" for k in range(MOE["variants"]) for b in bases]
        common["slices_per_chip"] = MOE["slices_per_chip"]
    serving = {"models": models, **common, **spec["serving"]}
    return {
        "seed": seed,
        "workload": {"name": "trace", "path": str(TRACE), "transforms": [
            {"name": "window", "start_s": 0, "duration_s": window_s},
            {"name": "rate_scale", "factor": rate_scale},
            {"name": "clip_lengths", "max_context_tokens": 4096},
            {"name": "assign_models", "models": models, "zipf_a": 1.0, "burst_factor": 4.0,
             "on_mean_s": 30.0, "off_mean_s": 300.0}]},
        "cluster": {"router": spec["router"], "controllers": spec.get("controllers", []),
                    "pools": [{"name": "mig", "num_replicas": num_slices,
                               "hardware": {"device": device, "model": bases[0]},
                               "scheduler": {"name": "vllm_v1", "max_num_batched_tokens": 2048},
                               "serving": serving}]},
        "slo": dict(SLO),
        "engine": {"progress": False},
    }


def measure(system: str, seed: int, window_s: float, rate_scale: float, warmup_s: float,
            num_slices: int, moe: bool = False) -> dict:
    """One run's steady-state row."""
    res = simulate(config(system, seed, window_s, rate_scale, num_slices, moe))
    df = res.requests
    span = window_s / rate_scale
    df = df[(df["arrival_s"] >= warmup_s) & (df["arrival_s"] < span - warmup_s)]
    masks = slo_mask(df, SLO["ttft_s"], SLO["tpot_s"], None)
    cold = df[df["cold_start_s"] > 0]
    return {
        "system": system, "seed": seed, "requests": len(df),
        "cold_frac": len(cold) / max(len(df), 1),
        "cold_mean_s": float(cold["cold_start_s"].mean()) if len(cold) else 0.0,
        "cold_p99_s": float(np.percentile(cold["cold_start_s"], 99)) if len(cold) else 0.0,
        "cold_per_req_s": float(df["cold_start_s"].mean()) if len(df) else 0.0,
        "cold_ttft_mean_s": float(cold["ttft_s"].mean()) if len(cold) else 0.0,
        "ttft_att": float(masks["ttft"].mean()), "tpot_att": float(masks["tpot"].mean()),
        "slo_att": float(masks["all"].mean()),
        "switches": res.summary["serving_num_switches"], "c2c_util": res.summary["c2c_utilisation"],
        "rejected": int((df["state"] == "rejected").sum()), "wall_s": res.summary["wall_s"],
        "_res": res,
    }


def figure(rows: list[dict], out: Path, title: str) -> None:
    """Cold-start latency per system (bars, log scale) and C2C utilisation over time (c2cserve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.engine.serving_records import link_frame, utilisation_series

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "_res"} for r in rows])
    agg = table.groupby("system", sort=False)[["cold_mean_s", "cold_ttft_mean_s", "ttft_att", "tpot_att"]].mean()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    x = np.arange(len(agg))
    axes[0].bar(x - 0.2, agg["cold_mean_s"].clip(lower=1e-3), 0.4, label="cold start (until runnable)")
    axes[0].bar(x + 0.2, agg["cold_ttft_mean_s"].clip(lower=1e-3), 0.4, label="TTFT of cold requests")
    axes[0].set_yscale("log")
    axes[0].set_xticks(x, agg.index, rotation=20)
    axes[0].set_ylabel("seconds (mean)")
    axes[0].legend(fontsize=8)
    axes[1].bar(x - 0.2, agg["ttft_att"], 0.4, label="TTFT attainment")
    axes[1].bar(x + 0.2, agg["tpot_att"], 0.4, label="TPOT attainment")
    axes[1].axhline(0.95, color="k", lw=0.8, ls="--")
    axes[1].set_xticks(x, agg.index, rotation=20)
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(fontsize=8)
    for r in rows:
        if r["seed"] != rows[0]["seed"] or not r["system"].startswith("c2cserve"):
            continue
        hub = r["_res"].models
        links = link_frame(hub)
        bw = next(iter(hub.chips.values())).host.bytes_per_s
        t1 = float(np.nanmax(r["_res"].requests["finish_s"]))
        t, u = utilisation_series(links, bw, 10.0, 0.0, t1, len(hub.chips))
        axes[2].plot(t, u, label=r["system"])
    axes[2].set_xlabel("time (s)")
    axes[2].set_ylabel("C2C utilisation (both chips)")
    axes[2].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, a 150 s window")
    ap.add_argument("--window-s", type=float, default=None, help="trace window, seconds (before rate scaling)")
    ap.add_argument("--rate-scale", type=float, default=0.5, help="arrival rate factor")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--moe", action="store_true", help="MoE: 8 Qwen3-30B-A3B variants on 4 whole GH200s (7g)")
    ap.add_argument("--out", default=None, help="figure (default docs/c2cserve_mig.png, _moe with --moe)")
    args = ap.parse_args()
    window = args.window_s or (150.0 if args.quick else 900.0)
    seeds = args.seeds or (1 if args.quick else 3)
    warmup = 30.0 if args.quick else 60.0
    if args.moe and args.slices == 8:
        args.slices = 4
    rows = [measure(s, seed, window, args.rate_scale, warmup, args.slices, args.moe)
            for seed in range(seeds) for s in args.systems.split(",")]
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "_res"} for r in rows])
    agg = table.groupby("system", sort=False).mean(numeric_only=True).drop(columns=["seed"])
    pd.set_option("display.width", 200)
    print(agg.round(4).to_string())
    base = agg.drop(index=[s for s in agg.index if s.startswith("c2cserve")], errors="ignore")
    if "c2cserve" in agg.index and len(base):
        for col, what in (("cold_mean_s", "mean cold start of cold requests"),
                          ("cold_per_req_s", "cold-start seconds per request")):
            best = base[col].idxmin()
            print(f"{what}: best baseline {best} {base.loc[best, col]:.4f} s vs c2cserve "
                  f"{agg.loc['c2cserve', col]:.4f} s: {base.loc[best, col] / max(agg.loc['c2cserve', col], 1e-9):.2f}x "
                  f"(paper: up to {'4.6x MoE' if args.moe else '7.1x dense'})")
    out = Path(args.out or figure_dir(args.quick) / ("c2cserve_mig_moe.png" if args.moe else "c2cserve_mig.png"))
    what = (f"{args.slices} whole GH200s (7g), 8 Qwen3-30B-A3B variants" if args.moe
            else f"{args.slices} GH200 1g.24gb slices (4 per chip), 12 dense models")
    figure(rows, out, f"C2CServe vs serverless baselines: {what}, Azure conv arrivals x{args.rate_scale}")
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
