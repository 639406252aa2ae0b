"""MemShare vs paged KV without reuse on a reasoning workload: memory-bound vs compute-bound.

Setting: one H100-SXM replica of DeepSeek-R1-Distill-Qwen-7B (analytic cost model), vLLM v1
chunked prefill. Workload: the ``reasoning_cot`` output lengths (chain-of-thought lengths of
DeepSeek-R1-Distill-Qwen-7B on GSM8K / MATH-500 / GPQA / AIME 2024, mixed; see
traces/reasoning.py), prompts of benchmark-question size (log-normal, median 120 tokens),
Poisson arrivals above what the replica can serve, so throughput is the replica's capacity.
Memory-bound: KV cut to ``--blocks`` blocks; compute-bound: the device's full KV. MemShare
draws 15-40% redundant steps per request (the paper's range). Steady state: output tokens per
second between the 10th and 90th percentile finish times; three seeds. ``memshare_memory_only``
is MemShare with decode attention over every logical block (the memory saving alone). Accuracy
is out of scope (no tokens are generated).

    .venv/bin/python experiments/memshare_reasoning.py --quick    # < 1 minute
    .venv/bin/python experiments/memshare_reasoning.py

Paper (MemShare): up to +84.79% throughput over existing KV cache management.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from sim import simulate
from sim.config import from_dict
from sim.tools.figures import figure_dir

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def config(kv: str, blocks: int | None, n: int, rate: float, seed: int, max_out: int, share: tuple) -> dict:
    kvcfg = {"name": kv, "block_size": 16}
    if blocks is not None:
        kvcfg["num_blocks"] = blocks
    if kv.startswith("memshare"):
        kvcfg.update(name="memshare", redundant_share_min=share[0], redundant_share_max=share[1],
                     attention_reads_distinct=kv == "memshare")
    return {"seed": seed,
            "workload": {"name": "synthetic", "num_requests": n, "rate_rps": rate, "lengths": {
                "input": {"name": "lognormal", "median_tokens": 120, "sigma": 0.5, "max_tokens": 1024},
                "output": {"name": "reasoning_cot", "benchmark": "mix", "max_tokens": max_out}}},
            "cluster": {"router": "round_robin", "pools": [{
                "name": "main", "num_replicas": 1,
                "hardware": {"device": "H100-SXM", "model": "DeepSeek-R1-Distill-Qwen-7B"},
                "cost_model": {"name": "analytic"}, "scheduler": {"name": "vllm_v1", "max_num_seqs": 512},
                "kv": kvcfg}]},
            "engine": {"progress": False}}


def steady_tps(df: pd.DataFrame) -> float:
    done = df[df["state"] == "finished"]
    lo, hi = np.percentile(done["finish_s"], [10, 90])
    mid = done[(done["finish_s"] >= lo) & (done["finish_s"] <= hi)]
    return float(mid["output_tokens"].sum() / (hi - lo))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--blocks", type=int, default=4000, help="KV blocks in the memory-bound case")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--out", default=None, help="default: docs/memshare_reasoning.png (see sim/tools/figures.py)")
    a = ap.parse_args()
    a.out = a.out or str(figure_dir(a.quick) / "memshare_reasoning.png")
    max_out = 32768
    if a.quick:
        a.requests, a.seeds, max_out = 120, [0], 8192
    rows = []
    for bound, blocks in (("memory", a.blocks), ("compute", None)):
        for kv in ("paged", "memshare", "memshare_memory_only"):
            for seed in a.seeds:
                res = simulate(from_dict(config(kv, blocks, a.requests, 20.0, seed, max_out, (0.15, 0.40))))
                rows.append({"bound": bound, "kv": kv, "seed": seed, "out_tps": steady_tps(res.requests),
                             "resident": res.summary["mean_batch_size"],
                             "preemptions": res.summary["num_preemptions"]})
    t = pd.DataFrame(rows).groupby(["bound", "kv"], sort=False).mean(numeric_only=True).reset_index()
    print(t.drop(columns=["seed"]).round(2).to_string(index=False))
    print("\nMemShare throughput gain (paper: up to +84.79%):")
    gains = {}
    for bound in ("memory", "compute"):
        b = t[t["bound"] == bound].set_index("kv")
        gains[bound] = 100 * (b.loc["memshare", "out_tps"] / b.loc["paged", "out_tps"] - 1)
        mem_only = 100 * (b.loc["memshare_memory_only", "out_tps"] / b.loc["paged", "out_tps"] - 1)
        print(f"  {bound}-bound: {gains[bound]:+.1f}% ({mem_only:+.1f}% from memory alone, attention over "
              f"every block)  resident {b.loc['paged', 'resident']:.1f} -> {b.loc['memshare', 'resident']:.1f}")
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, col in enumerate(("out_tps", "resident")):
        for j, kv in enumerate(("paged", "memshare", "memshare_memory_only")):
            v = t[t["kv"] == kv][col].to_numpy()
            ax[i].bar(np.arange(2) + 0.27 * j, v, width=0.27, label=kv)
        ax[i].set_xticks(np.arange(2) + 0.27, ["memory-bound", "compute-bound"])
        ax[i].set_title("output tokens / s" if col == "out_tps" else "mean batch (resident requests)")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
