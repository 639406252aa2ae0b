"""Adaptive speculative decoding on the Azure 2023 conversation trace, swept over load.

Setting: one H100-SXM replica serving Llama-3-8B (analytic cost model, ``vllm_v1``
scheduler), drafts by Llama-3.2-1B on the same GPU, per-request acceptance drawn from the
chat row of ``policies/speculators/drafts.py`` (mean 0.70). The trace's first N requests, its
arrival clock multiplied by ``rate_scale`` (1 = the trace's own ~5.4 requests/s). Systems: no
speculation, static k in {1, 2, 4, 8} (``fixed``), ``smartspec``, ``specserve``, ``faser``.
Steady state: latencies of the requests arriving in the middle 80% of the arrival span.
``faser-ov0`` is faser with no draft time hidden (its ``overlap_share``, an assumed
parameter, at 0): what pruning and per-request lengths give alone.
Seeds: 0 and 1 (averaged). Run::

    .venv/bin/python experiments/speculation_azure.py [--quick]

Prints one table per rate and writes docs/speculation_latency.png (mean latency against
rate) and docs/speculation_k.png (mean chosen k against rate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim import simulate
from sim.tools.figures import figure_dir

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
DRAFT = {"draft_model": "Llama-3.2-1B", "acceptance": "chat"}
SYSTEMS = {
    "none": None,
    "k=1": {"name": "fixed", "k": 1, **DRAFT},
    "k=2": {"name": "fixed", "k": 2, **DRAFT},
    "k=4": {"name": "fixed", "k": 4, **DRAFT},
    "k=8": {"name": "fixed", "k": 8, **DRAFT},
    "smartspec": {"name": "smartspec", **DRAFT},
    "specserve": {"name": "specserve", **DRAFT},
    "faser": {"name": "faser", **DRAFT},
    "faser-ov0": {"name": "faser", "overlap_share": 0.0, **DRAFT},  # no draft time hidden: pruning + per-request k
}
STATIC = ("k=1", "k=2", "k=4", "k=8")
TPOT_SLO_S = 0.04


def config(spec: dict | None, rate_scale: float, num_requests: int, seed: int) -> dict:
    """One run: the trace head at this rate on one H100 with this speculator."""
    pool = {"name": "main", "num_replicas": 1, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B"},
            "cost_model": "analytic", "scheduler": "vllm_v1", "kv": {"name": "paged"}}
    if spec is not None:
        pool["speculation"] = dict(spec)
    return {"seed": seed,
            "workload": {"name": "trace", "path": str(TRACE), "rate_scale": rate_scale,
                         "max_requests": num_requests},
            "cluster": {"router": "round_robin", "pools": [pool]},
            "slo": {"tpot_s": TPOT_SLO_S}, "engine": {"progress": False}}


def steady(df):
    """Requests arriving in the middle 80% of the arrival span."""
    lo, hi = np.percentile(df["arrival_s"], [10, 90])
    return df[(df["arrival_s"] >= lo) & (df["arrival_s"] <= hi) & (df["state"] == "finished")]


def measure(spec: dict | None, rate_scale: float, num_requests: int, seeds: list[int]) -> dict:
    """Steady-state metrics averaged over seeds."""
    rows = []
    for seed in seeds:
        res = simulate(config(spec, rate_scale, num_requests, seed))
        d = steady(res.requests)
        s = res.summary
        rows.append({"e2e_mean_s": d["e2e_s"].mean(), "e2e_p50_s": d["e2e_s"].median(),
                     "tpot_mean_s": d["tpot_s"].mean(),
                     "tpot_slo": float((d["tpot_s"].fillna(0) <= TPOT_SLO_S).mean()),
                     "throughput_tps": s["throughput_output_tps"],
                     "mean_k": s.get("spec_mean_k", 0.0), "acceptance": s.get("spec_acceptance_rate", np.nan),
                     "draft_share": s.get("spec_draft_time_share", 0.0), "batch": s["mean_batch_size"]})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


PAIRS = {  # drafter -> (target hardware, speculation fields)
    "Llama-3.2-1B -> Llama-3-8B": ({"device": "H100-SXM", "model": "Llama-3-8B"},
                                  {"draft_model": "Llama-3.2-1B"}),
    "Llama-3-8B -> Llama-3-70B (tp4)": ({"device": "H100-SXM", "model": "Llama-3-70B", "tp": 4},
                                        {"draft_model": "Llama-3-8B"}),
    "EAGLE head -> Llama-3-8B": ({"device": "H100-SXM", "model": "Llama-3-8B"}, {"draft_model": "eagle"}),
    "n-gram -> Llama-3-8B": ({"device": "H100-SXM", "model": "Llama-3-8B"}, {"draft_model": "ngram"}),
}


def pairs(num_requests: int, seeds: list[int], rate_scale: float = 0.1, quick: bool = False) -> None:
    """Low-load latency gain of each drafter, per dataset row (chat, code), for smartspec and
    the best static k, against no speculation."""
    print(f"\ndraft pairs at rate_scale {rate_scale:g} ({num_requests} requests, seeds {seeds}): "
          "no-spec mean e2e / speculator's, steady state")
    print(f"{'pair':34} {'dataset':8} {'none s':>7} {'smartspec':>9} {'specserve':>9} {'faser':>6} {'best k':>10}")
    for label, (hardware, draft) in PAIRS.items():
        if quick and "70B" in label:
            continue
        for dataset in ("chat",) if quick else ("chat", "code"):
            def run(spec, hardware=hardware):
                out = []
                for seed in seeds:
                    cfg = config(spec, rate_scale, num_requests, seed)
                    cfg["cluster"]["pools"][0]["hardware"] = dict(hardware)
                    out.append(steady(simulate(cfg).requests)["e2e_s"].mean())
                return float(np.mean(out))
            none = run(None)
            gains = {name: none / run({"name": name, **draft, "acceptance": dataset})
                     for name in ("smartspec", "specserve", "faser")}
            static = {k: none / run({"name": "fixed", "k": k, **draft, "acceptance": dataset}) for k in (1, 2, 4, 8)}
            k_best = max(static, key=static.get)
            print(f"{label:34} {dataset:8} {none:7.3f} {gains['smartspec']:8.2f}x {gains['specserve']:8.2f}x "
                  f"{gains['faser']:5.2f}x {static[k_best]:5.2f}x k={k_best}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rates, 250 requests, one seed; 3 pairs on chat")
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--part", choices=("all", "sweep", "pairs"), default="all")
    args = ap.parse_args()
    if args.part != "sweep":
        pairs(100 if args.quick else 400, [0] if args.quick else [0, 1], quick=args.quick)
    if args.part == "pairs":
        return
    rates = [0.1, 1.0, 16.0] if args.quick else [0.1, 0.5, 1.0, 4.0, 16.0, 48.0]
    n = args.requests or (250 if args.quick else 1000)
    seeds = [0] if args.quick else [0, 1]
    results: dict[float, dict[str, dict]] = {}
    for rate in rates:
        results[rate] = {name: measure(spec, rate, n, seeds) for name, spec in SYSTEMS.items()}
        print(f"\nrate_scale {rate:g} ({n} requests, seeds {seeds}); steady-state latencies")
        print(f"{'system':10} {'e2e mean':>9} {'e2e p50':>8} {'TPOT ms':>8} {'TPOT<=40':>8} {'out tok/s':>9} "
              f"{'mean k':>6} {'accept':>6} {'draft%':>6} {'batch':>6} {'vs none':>7}")
        base = results[rate]["none"]["e2e_mean_s"]
        for name, m in results[rate].items():
            print(f"{name:10} {m['e2e_mean_s']:9.3f} {m['e2e_p50_s']:8.3f} {m['tpot_mean_s'] * 1e3:8.2f} "
                  f"{m['tpot_slo']:8.3f} {m['throughput_tps']:9.1f} {m['mean_k']:6.2f} {m['acceptance']:6.3f} "
                  f"{m['draft_share'] * 100:6.1f} {m['batch']:6.1f} {base / m['e2e_mean_s']:6.2f}x")
    print("\nclaims (steady-state mean e2e latency):")
    for rate in rates:
        r = results[rate]
        best_static = min(STATIC, key=lambda k: r[k]["e2e_mean_s"])
        b = r[best_static]["e2e_mean_s"]
        none = r["none"]["e2e_mean_s"]
        parts = [f"rate {rate:g}: none {none:.3f}s, best static {best_static} {b:.3f}s"]
        for s in ("k=4", "k=8", "smartspec", "specserve", "faser", "faser-ov0"):
            e = r[s]["e2e_mean_s"]
            parts.append(f"{s} {e / none - 1:+.1%} vs none / {e / b - 1:+.1%} vs best static")
        parts.append(f"specserve mean k {r['specserve']['mean_k']:.2f}, TPOT SLO {r['specserve']['tpot_slo']:.3f} "
                     f"(static best {max(r[k]['tpot_slo'] for k in STATIC):.3f})")
        print("; ".join(parts))
    top = rates[-1]
    r = results[top]
    best_static = max(STATIC, key=lambda k: r[k]["throughput_tps"])
    for s in ("faser", "faser-ov0"):
        gain = r[s]["throughput_tps"] / r[best_static]["throughput_tps"] - 1
        print(f"saturated throughput at rate {top:g}: {s} {r[s]['throughput_tps']:.0f} tok/s vs best static "
              f"{best_static} {r[best_static]['throughput_tps']:.0f} ({gain:+.1%}); "
              f"latency vs best static k per rate: " + ", ".join(
                  f"{x:g}: {min(results[x][k]['e2e_mean_s'] for k in STATIC) / results[x][s]['e2e_mean_s']:.2f}x"
                  for x in rates))
    plot(results, rates, figure_dir(args.quick))


def plot(results: dict, rates: list[float], docs: Path = ROOT / "docs") -> None:
    """Mean latency and mean chosen k against rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in SYSTEMS:
        ax.plot(rates, [results[r][name]["e2e_mean_s"] for r in rates], marker="o",
                linestyle="--" if name in STATIC else "-", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rate_scale (x Azure conv arrival rate)")
    ax.set_ylabel("mean end-to-end latency (s), steady state")
    ax.set_title("Speculation on Azure conv, H100 Llama-3-8B + Llama-3.2-1B")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(docs / "speculation_latency.png", dpi=120)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in ("smartspec", "specserve", "faser", "faser-ov0"):
        ax.plot(rates, [results[r][name]["mean_k"] for r in rates], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("rate_scale (x Azure conv arrival rate)")
    ax.set_ylabel("mean draft tokens per decode step (k)")
    ax.set_title("Chosen k against load")
    ax.legend()
    fig.tight_layout()
    fig.savefig(docs / "speculation_k.png", dpi=120)


if __name__ == "__main__":
    main()
