"""Expert-parallel load with skewed routing: a_max vs batch, JANUS assignment vs random, EP step time.

JANUS's observation: with skewed expert popularity, the most activated experts on one GPU
(a_max) rises with the batch and saturates near min(C, E / n_moe) for batch >= 100; its
activation scheduler (single-replica experts to their host, replicated experts to the least
loaded host) lowers a_max against a random choice of replica. Setting: Qwen3-30B-A3B and
DeepSeek-V3 expert shapes on H100s, EP over n_moe GPUs, Zipf popularity (s = 1.0) with 30%
per-step lognormal noise, 4 spare slots per GPU filled with the hottest experts; each point
averages 32 routing realisations x 4 layers, over seeds 0-2. Also printed: the decode step
time of an EP8 Qwen3-30B-A3B replica (DP attention) under uniform vs skewed routing. Run::

    .venv/bin/python experiments/moe_ep_skew.py [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from hardware.analytic import AnalyticCostModel, AnalyticParams
from hardware.moe import ExpertParallelParams
from sim.tools.figures import figure_dir, save_figure

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 4, 16, 32, 64, 100, 200, 400, 800)


def ep_model(model: str, n_moe: int, seed: int, **kw) -> AnalyticCostModel:
    hw = SimpleNamespace(device="H100-SXM", model=model, tp=1, pp=1, weight_dtype="bf16", kv_dtype="bf16")
    params = ExpertParallelParams(ep=n_moe, seed=seed, realisations=32, **kw)
    return AnalyticCostModel(AnalyticParams(expert_parallel=params), hw)


def a_max_curve(model: str, n_moe: int, seeds: list[int], batches=BATCHES, **kw) -> np.ndarray:
    return np.mean([[ep_model(model, n_moe, s, **kw)._ep.mean_a_max(b) for b in batches] for s in seeds], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, one model")
    ap.add_argument("--out", default=None, help="default: docs/moe_ep_skew.png (see sim/tools/figures.py)")
    args = ap.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    cases = [("Qwen3-30B-A3B", 8)] if args.quick else [("Qwen3-30B-A3B", 8), ("DeepSeek-V3", 32)]
    skew = {"routing": "zipf", "zipf_s": 1.0, "noise_sigma": 0.3}
    curves = {}
    print(f"{'model':14s} {'n_moe':>5s} {'E/n':>4s} {'case':26s} " + " ".join(f"b={b:<4d}" for b in BATCHES))
    for model, n in cases:
        e = 128 if model.startswith("Qwen3") else 256
        for label, kw in (("uniform", {"routing": "uniform"}), ("zipf", skew),
                          ("zipf+spare4 random", {**skew, "spare_slots": 4, "replica_choice": "random"}),
                          ("zipf+spare4 JANUS", {**skew, "spare_slots": 4, "replica_choice": "least_loaded"})):
            c = a_max_curve(model, n, seeds, **kw)
            curves[(model, label)] = c
            print(f"{model:14s} {n:5d} {e // n:4d} {label:26s} " + " ".join(f"{x:6.2f}" for x in c))
    print("\nJANUS activation scheduler vs random replica choice (zipf, 4 spare slots per GPU): a_max change")
    for model, _n in cases:
        r, j = curves[(model, "zipf+spare4 random")], curves[(model, "zipf+spare4 JANUS")]
        print(f"{model:14s} " + " ".join(f"b={b}:{jj / rr - 1:+.0%}" for b, rr, jj in zip(BATCHES, r, j, strict=True)))
    print("\nEP8 Qwen3-30B-A3B decode step (ms), DP attention, 1k context per sequence")
    uni = ep_model("Qwen3-30B-A3B", 8, 0, routing="uniform")
    zipf = ep_model("Qwen3-30B-A3B", 8, 0, **skew)
    print(f"{'batch':>6s} {'uniform':>8s} {'zipf':>8s}")
    for b in (8, 64, 256, 1024):
        tu = np.mean([uni.step_time_s((), b, b, b * 1000 + i) for i in range(32)]) * 1e3
        tz = np.mean([zipf.step_time_s((), b, b, b * 1000 + i) for i in range(32)]) * 1e3
        print(f"{b:6d} {tu:8.2f} {tz:8.2f}")
    plot(curves, cases, args.out or figure_dir(args.quick) / "moe_ep_skew.png")


def plot(curves: dict, cases: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.5), squeeze=False)
    for ax, (model, n) in zip(axes[0], cases, strict=True):
        for (m, label), c in curves.items():
            if m == model:
                ax.plot(BATCHES, c, marker="o", label=label)
        e = 128 if model.startswith("Qwen3") else 256
        ax.axhline(e / n, color="grey", ls="--", lw=0.8, label="E / n_moe")
        ax.set_xscale("log")
        ax.set_xlabel("batch (tokens per step)")
        ax.set_ylabel("a_max (experts on busiest GPU)")
        ax.set_title(f"{model}, EP{n}", fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
