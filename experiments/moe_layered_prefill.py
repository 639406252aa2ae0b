"""Layered prefill vs chunked prefill (Sarathi-Serve) on MoE models, Azure conversation trace.

Paper (Lee et al. 2025, abstract): chunking adds up to 39% expert weight traffic; layered
prefill lowers TTFT by up to 70%, end-to-end latency by 41% and energy per token by up to
22%, with TBT stall-free. Setting here: one H100 serving Qwen3-30B-A3B (tp 1) or two serving
Mixtral-8x7B (tp 2), analytic cost model (experts: touched-experts formula), the Azure
conversation trace at several rate scales; two windows of the trace as replicates.
Steady state: requests arriving in the middle 80% of each window. Expert weight traffic is
counted per iteration from the step records: touched experts of that iteration's tokens in
every MoE layer, and for a layered iteration f x (prefill + decode tokens) in the group's
layers plus (1 - f) x decode tokens elsewhere. Energy is the simulator's (phase power x busy
time), not a memory-traffic energy model. Run::

    .venv/bin/python experiments/moe_layered_prefill.py [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim import simulate
from sim.config import from_dict
from sim.tools.figures import figure_dir, save_figure

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
TRACE_SPAN_S = 3501.0  # the Azure 2023 conversation trace's hour
MODELS = {"Qwen3-30B-A3B": 1, "Mixtral-8x7B": 2}
SYSTEMS = {
    "chunked-512": {"name": "sarathi", "chunk_size": 512},
    "chunked-256": {"name": "sarathi", "chunk_size": 256},
    "layered-G4": {"name": "layered_prefill", "num_groups": 4},
    "layered-G8": {"name": "layered_prefill", "num_groups": 8},
}


def config(model: str, sched: dict, rate_scale: float, start_s: float, duration_s: float) -> dict:
    return {
        "seed": 0,
        "workload": {"name": "trace", "path": str(TRACE), "rate_scale": rate_scale,
                     "transforms": [{"name": "window", "start_s": start_s, "duration_s": duration_s}]},
        "cluster": {"pools": [{"name": "main", "num_replicas": 1,
                               "hardware": {"device": "H100-SXM", "model": model, "tp": MODELS[model]},
                               "scheduler": sched}]},
        "output": {"record_steps": True},
        "engine": {"progress": False},
    }


def expert_traffic_bytes(steps, cost_model, num_groups: int | None) -> float:
    """Routed-expert weight bytes read over the run's iterations (see the module docstring)."""
    prefill = steps["prefill_tokens"].to_numpy()
    decode = steps["decode_tokens"].to_numpy()
    members = steps["batch_size"].to_numpy() - decode  # prefill entries in the plan
    b = cost_model.expert_weight_bytes
    if num_groups is None:
        return float(sum(b(int(p + d)) for p, d in zip(prefill, decode, strict=True)))
    total = 0.0
    run: list[int] = []  # rows of the cohort in progress (intermediate groups have 0 tokens)
    for i in range(len(steps)):
        if members[i] <= 0:
            total += b(int(decode[i]))
            continue
        run.append(i)
        if prefill[i] > 0:  # last group: its tokens are the cohort's prompt tokens
            num_layers = cost_model.model.num_layers
            g = min(num_groups, num_layers)
            base, extra = divmod(num_layers, g)
            for k, j in enumerate(run[-g:]):
                f = (base + (1 if k < extra else 0)) / num_layers
                total += f * b(int(prefill[i] + decode[j])) + (1 - f) * b(int(decode[j]))
            for j in run[:-g]:
                total += b(int(decode[j]))
            run = []
    for j in run:
        total += b(int(decode[j]))
    return total


def measure(model: str, name: str, rate_scale: float, start_s: float, duration_s: float) -> dict:
    from hardware.analytic import AnalyticCostModel
    from sim.config import from_dict as parse

    sched = SYSTEMS[name]
    cfg = config(model, sched, rate_scale, start_s, duration_s)
    res = simulate(from_dict(cfg))
    df = res.requests
    t0, t1 = df["arrival_s"].min(), df["arrival_s"].max()
    span = t1 - t0
    mid = df[(df["arrival_s"] >= t0 + 0.1 * span) & (df["arrival_s"] <= t1 - 0.1 * span)]
    hw = parse(cfg).cluster.pools[0].hardware
    cm = AnalyticCostModel(None, hw)
    traffic = expert_traffic_bytes(res.steps, cm, sched.get("num_groups"))
    out_tokens = float(df["output_tokens"].sum())
    return {"ttft_mean_s": float(mid["ttft_s"].mean()), "ttft_p99_s": float(mid["ttft_s"].quantile(0.99)),
            "tpot_mean_s": float(mid["tpot_s"].mean()), "tpot_p99_s": float(mid["tpot_s"].quantile(0.99)),
            "itl_p99_s": float(res.summary["itl_p99_s"]), "e2e_mean_s": float(mid["e2e_s"].mean()),
            "j_per_tok": float(res.summary["joules_per_m_output_tokens"]) / 1e6,
            "gb_per_tok": traffic / out_tokens / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one model, one rate, one short window")
    ap.add_argument("--out", default=None, help="default: docs/moe_layered_prefill.png (see sim/tools/figures.py)")
    args = ap.parse_args()
    if args.quick:
        models, rates, windows, duration = ["Qwen3-30B-A3B"], [2.0], [0.0], 120.0
    else:
        models, rates, windows, duration = list(MODELS), [1.0, 2.0, 3.0], [0.0, 0.5], 600.0
    rows = []
    for model in models:
        for rate in rates:
            span = TRACE_SPAN_S / rate  # the trace's span after rate scaling; windows start at fractions
            if not args.quick:
                duration = min(600.0, 0.45 * span)
                windows = [0.0, 0.5 * span]
            per = {name: [measure(model, name, rate, w, duration) for w in windows] for name in SYSTEMS}
            for name, runs in per.items():
                row = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
                rows.append({"model": model, "rate_scale": rate, "system": name, **row})
    keys = ["ttft_mean_s", "ttft_p99_s", "tpot_mean_s", "tpot_p99_s", "itl_p99_s", "e2e_mean_s", "j_per_tok",
            "gb_per_tok"]
    print(f"{'model':15s} {'rate':>4s} {'system':12s} " + " ".join(f"{k:>11s}" for k in keys)
          + "   vs chunked-512: traffic  TTFT   E2E  J/tok")
    for row in rows:
        ref = next(r for r in rows if r["model"] == row["model"] and r["rate_scale"] == row["rate_scale"]
                   and r["system"] == "chunked-512")
        rel = [row[k] / ref[k] - 1 for k in ("gb_per_tok", "ttft_mean_s", "e2e_mean_s", "j_per_tok")]
        print(f"{row['model']:15s} {row['rate_scale']:4.1f} {row['system']:12s} "
              + " ".join(f"{row[k]:11.4f}" for k in keys) + "   " + " ".join(f"{x:+6.0%}" for x in rel))
    plot(rows, args.out or figure_dir(args.quick) / "moe_layered_prefill.png")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("gb_per_tok", "expert GB / output token"), ("ttft_mean_s", "TTFT mean (s)"),
               ("tpot_p99_s", "TPOT p99 (s)"), ("j_per_tok", "J / output token")]
    groups = sorted({(r["model"], r["rate_scale"]) for r in rows})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    width = 0.8 / len(SYSTEMS)
    for ax, (key, label) in zip(axes, metrics, strict=True):
        for i, name in enumerate(SYSTEMS):
            ys = [next(r[key] for r in rows if (r["model"], r["rate_scale"]) == g and r["system"] == name)
                  for g in groups]
            ax.bar(np.arange(len(groups)) + i * width, ys, width, label=name)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
        ax.set_xticklabels([f"{m.split('-')[0]}\nx{r:g}" for m, r in groups], fontsize=7)
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle("Layered vs chunked prefill, Azure conv trace (steady state)", fontsize=10)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
