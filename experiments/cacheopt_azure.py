"""CacheOPT vs vLLM v1 and v0 on the Azure 2023 conversation trace, memory-bound, predictor error swept.

Setting: one H100-SXM replica of Llama-3-8B (analytic cost model, swap priced with 5 us per
block copy call, FastSwitch's observation) whose KV is cut to ``--blocks`` 16-token blocks so
memory, not compute, binds; the Azure LLM inference 2023 conversation trace (real prompt and
output lengths and arrival times), a window of ``--window-s`` seconds, its arrival rate
multiplied by each ``--rates`` value. Systems at equal rate: ``vllm_v1`` (chunked prefill,
recompute from the tail), ``vllm`` (v0, whole prompts, swap), and ``cacheopt`` with the oracle
predictor and lognormal predictor errors sigma 0.25 / 0.5 / 1.0. Steady state: only requests
arriving in the middle 80% of the window are scored. SLOs: TTFT <= 2 s, worst inter-token gap
(TBT) <= 0.2 s per request. Three seeds (the predictor's draws; the trace is fixed).

    .venv/bin/python experiments/cacheopt_azure.py --quick      # < 1 minute
    .venv/bin/python experiments/cacheopt_azure.py              # full sweep

Paper (CacheOPT): up to 3.29x lower p99 TBT, 2.83x lower p99 TTFT, +47% / +53% TTFT / TBT SLO
attainment, up to 1.58x higher sustainable rate than the state of the art.
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
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
TTFT_SLO_S, TBT_SLO_S = 2.0, 0.2
SYSTEMS = {
    "vllm_v1": ({"name": "vllm_v1"}, "paged", None),
    "vllm_v0": ({"name": "vllm", "max_num_batched_tokens": 8192}, "paged", None),
    "cacheopt_oracle": ({"name": "cacheopt"}, "cacheopt", {"name": "oracle"}),
    "cacheopt_s0.25": ({"name": "cacheopt"}, "cacheopt", {"name": "noisy", "sigma": 0.25}),
    "cacheopt_s0.5": ({"name": "cacheopt"}, "cacheopt", {"name": "noisy", "sigma": 0.5}),
    "cacheopt_s1.0": ({"name": "cacheopt"}, "cacheopt", {"name": "noisy", "sigma": 1.0}),
}


def config(system: str, rate: float, window_s: float, blocks: int, seed: int) -> dict:
    sched, kv, predictor = SYSTEMS[system]
    cluster = {"router": "round_robin", "pools": [{
        "name": "main", "num_replicas": 1, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B"},
        "cost_model": {"name": "analytic", "swap_call_overhead_s": 5e-6}, "scheduler": dict(sched),
        "kv": {"name": kv, "block_size": 16, "num_blocks": blocks,
               "preemption_mode": "swap" if system == "vllm_v0" else "recompute"}}]}
    if predictor is not None:
        cluster["predictor"] = dict(predictor)
    return {"seed": seed, "workload": {"name": "trace", "path": str(TRACE), "rate_scale": rate,
                                       "transforms": [{"name": "window", "start_s": 0, "duration_s": window_s}]},
            "cluster": cluster, "slo": {"ttft_s": TTFT_SLO_S, "tpot_s": TBT_SLO_S},
            "engine": {"progress": False, "max_time_s": window_s * 4}}


def score(df: pd.DataFrame, window_s: float) -> dict:
    """Steady-state metrics over requests arriving in the middle 80% of the window."""
    lo, hi = df["arrival_s"].min() + 0.1 * window_s, df["arrival_s"].min() + 0.9 * window_s
    s = df[(df["arrival_s"] >= lo) & (df["arrival_s"] < hi)]
    done = s[s["state"] == "finished"]
    ttft = s["ttft_s"].fillna(np.inf)
    tbt = s["itl_max_s"].where(s["state"] == "finished", np.inf)
    return {"n": len(s), "p99_ttft_s": float(np.percentile(ttft, 99)), "p99_tbt_s": float(np.percentile(tbt, 99)),
            "ttft_att": float((ttft <= TTFT_SLO_S).mean()), "tbt_att": float((tbt <= TBT_SLO_S).mean()),
            "preemptions": int(s["num_preemptions"].sum()), "unfinished": int(len(s) - len(done))}


def run(rates: list[float], seeds: list[int], window_s: float, blocks: int, systems: list[str]) -> pd.DataFrame:
    rows = []
    for rate in rates:
        for system in systems:
            noisy = SYSTEMS[system][2] is not None and SYSTEMS[system][2]["name"] == "noisy"
            for seed in seeds if noisy else seeds[:1]:  # only the predictor's draws depend on the seed
                df = simulate(from_dict(config(system, rate, window_s, blocks, seed))).requests
                rows.append({"rate": rate, "system": system, "seed": seed, **score(df, window_s)})
    return pd.DataFrame(rows).groupby(["rate", "system"], sort=False).mean(numeric_only=True).reset_index()


def highest_rate(table: pd.DataFrame, system: str, target: float = 0.9) -> float:
    ok = table[(table["system"] == system) & (table["ttft_att"] >= target) & (table["tbt_att"] >= target)]
    return float(ok["rate"].max()) if len(ok) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short window, 2 rates, 1 seed (< 1 minute)")
    ap.add_argument("--window-s", type=float, default=600.0)
    ap.add_argument("--blocks", type=int, default=1500, help="KV blocks of the replica (memory-bound)")
    ap.add_argument("--rates", type=float, nargs="*", default=[0.5, 0.75, 1.0, 1.25, 1.5])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--out", default=None, help="default: docs/cacheopt_azure.png (see sim/tools/figures.py)")
    a = ap.parse_args()
    a.out = a.out or str(figure_dir(a.quick) / "cacheopt_azure.png")
    systems = list(SYSTEMS)
    if a.quick:
        a.window_s, a.rates, a.seeds = 120.0, [0.75, 1.25], [0]
        systems = ["vllm_v1", "vllm_v0", "cacheopt_oracle", "cacheopt_s0.5"]
    table = run(a.rates, a.seeds, a.window_s, a.blocks, systems)
    pd.set_option("display.width", 160)
    print(table.drop(columns=["seed"]).round(3).to_string(index=False))
    print("\nhighest rate multiplier with TTFT and TBT attainment >= 90%:")
    for system in systems:
        print(f"  {system:16s} {highest_rate(table, system)}")
    top = table[table["rate"] == max(a.rates)].set_index("system")
    base = min(("vllm_v1", "vllm_v0"), key=lambda s: top.loc[s, "p99_tbt_s"])
    print(f"\nat rate x{max(a.rates)} vs the better baseline ({base}):  paper: 3.29x p99 TBT, 2.83x p99 TTFT, "
          "+47%/+53% attainment")
    for system in [s for s in systems if s.startswith("cacheopt")]:
        r = top.loc[system]
        b = top.loc[base]
        print(f"  {system:16s} p99 TBT base/ours {b.p99_tbt_s / r.p99_tbt_s:.2f}x, p99 TTFT base/ours "
              f"{b.p99_ttft_s / r.p99_ttft_s:.2f}x, TTFT att {100 * (r.ttft_att - b.ttft_att):+.0f} pts, "
              f"TBT att {100 * (r.tbt_att - b.tbt_att):+.0f} pts, "
              f"preemptions {int(r.preemptions)} vs {int(b.preemptions)}")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for system in systems:
        t = table[table["system"] == system]
        axes[0].plot(t["rate"], t["p99_tbt_s"], marker="o", label=system)
        axes[1].plot(t["rate"], t["p99_ttft_s"], marker="o", label=system)
        axes[2].plot(t["rate"], t["tbt_att"] * t["ttft_att"], marker="o", label=system)
    for ax, title in zip(axes, ["p99 TBT (s)", "p99 TTFT (s)", "TTFT x TBT attainment"], strict=True):
        ax.set_xlabel("arrival rate x Azure conv")
        ax.set_title(title)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
