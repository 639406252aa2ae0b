"""JANUS (attention / expert disaggregation) vs a monolithic DP-attention + EP deployment.

Paper: per-GPU throughput up to 4.7x vs SGLang at the same TPOT SLO; the SLO-aware scaler
uses 39% fewer GPU-hours over a 24 h trace than static provisioning for the peak. Here:
JANUS's analytic model (hardware/janus.py: TPOT = attention + slowest expert GPU + two-phase
all-to-all, steady batch B* = lambda x output x TPOT(B*) by bisection, KV must fit) against
the same analytic engine run monolithically (every GPU holds attention and E/N experts).
Qwen3-235B-A22B in fp8 on H100s; lengths from the Azure 2023 conversation trace (mean
output and mean decode context); Zipf(1.0) expert popularity with 30% per-step noise;
seeds 0-1 of the routing table. Decode only. The day-long pattern is a sinusoid around the
trace's shape (no day-long trace is in traces/data): mean rate R, peak 1.6 R, trough 0.4 R.
Run::

    .venv/bin/python experiments/moe_janus.py [--quick]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from hardware.janus import JanusModel, MonolithicModel, Workload, max_rate
from sim.tools.figures import figure_dir, save_figure

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
MODEL, DEVICE = "Qwen3-235B-A22B", "H100-SXM"
SKEW = {"routing": "zipf", "zipf_s": 1.0, "noise_sigma": 0.3}


def trace_lengths() -> tuple[float, float]:
    df = pd.read_csv(TRACE)
    out = float(df["GeneratedTokens"].mean())
    return out, float(df["ContextTokens"].mean() + out / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grids, one seed")
    ap.add_argument("--slo-ms", type=float, nargs="*", default=[50.0, 100.0])
    ap.add_argument("--out", default=None, help="default: docs/moe_janus.png (see sim/tools/figures.py)")
    args = ap.parse_args()
    seeds = [0] if args.quick else [0, 1]
    attn_grid = [2, 4, 8] if args.quick else [1, 2, 4, 6, 8, 12, 16]
    moe_grid = [4, 8] if args.quick else [4, 8, 16, 32]
    mono_grid = [4, 8, 16] if args.quick else [4, 8, 16, 32]
    slos = args.slo_ms[:1] if args.quick else args.slo_ms
    out_tok, ctx = trace_lengths()
    load = Workload(1.0, out_tok, ctx)
    print(f"{MODEL} fp8 on {DEVICE}; mean output {out_tok:.0f} tokens, mean decode context {ctx:.0f}")
    results = {}
    for slo in slos:
        rows = []
        for seed in seeds:
            routing = {**SKEW, "seed": seed}
            for na in attn_grid:
                for nm in moe_grid:
                    for choice in ("least_loaded", "random"):
                        j = JanusModel(DEVICE, MODEL, na, nm, routing=routing, replica_choice=choice)
                        rows.append(("janus" if choice == "least_loaded" else "janus-random", na, nm, seed,
                                     max_rate(j, load, slo / 1e3)))
            for n in mono_grid:
                rows.append(("monolithic", n, 0, seed, max_rate(MonolithicModel(DEVICE, MODEL, n, routing=routing),
                                                                load, slo / 1e3)))
        df = pd.DataFrame(rows, columns=["system", "a", "m", "seed", "rate"]).groupby(
            ["system", "a", "m"], as_index=False)["rate"].mean()
        df["gpus"] = df["a"] + df["m"]
        df["tok_s_per_gpu"] = df["rate"] * out_tok / df["gpus"]
        results[slo] = df
        print(f"\nTPOT SLO {slo:g} ms: best configurations (output tokens/s per GPU)")
        for system in ("janus", "janus-random", "monolithic"):
            sub = df[df["system"] == system].sort_values("tok_s_per_gpu", ascending=False).head(3)
            for _, r in sub.iterrows():
                cfg = f"{int(r['a'])} attn + {int(r['m'])} moe" if r["m"] else f"{int(r['a'])} GPUs"
                print(f"  {system:13s} {cfg:18s} max rate {r['rate']:8.2f} req/s  {r['tok_s_per_gpu']:9.1f} tok/s/GPU")
        best = {s: df[df["system"] == s]["tok_s_per_gpu"].max() for s in ("janus", "janus-random", "monolithic")}
        print(f"  per-GPU throughput JANUS / monolithic = {best['janus'] / best['monolithic']:.2f}x "
              f"(paper: up to 4.7x vs SGLang); activation scheduler vs random: "
              f"{best['janus'] / best['janus-random']:.2f}x")
    scaler(results[slos[0]], slos[0], args.quick)
    simulated(args.quick)
    simulated_day(args.quick)
    plot(results, args.out or figure_dir(args.quick) / "moe_janus.png")


def simulated_day(quick: bool) -> None:
    """The ``janus_scaler`` controller in the simulator over a day compressed 60x (an hour = 60 s,
    15 min = 15 s): 4-GPU expert pool, 1-8 attention replicas, sinusoidal rate (0.4x-1.6x),
    lengths of the controller's gate scenario (short prompts, long outputs: decode-bound)."""
    import copy

    from sim import simulate
    from sim.tools.gates import scenario

    hours = 6 if quick else 24
    mean = 4.0
    rates = [mean * (1 + 0.6 * math.sin(2 * math.pi * (h + 0.5) / 24 - math.pi / 2)) for h in range(hours)]
    base = scenario("controller", "janus_scaler")
    base["workload"]["arrival"] = {"name": "phases", "rates_rps": rates, "durations_s": [60.0] * hours}
    base["workload"]["num_requests"] = int(sum(r * 60 for r in rates))
    base["cluster"]["controllers"][0].update(period_s=15.0, max_replicas=8)
    res = simulate(base)
    live = _attention_replicas_over_time(res.actions, 1)
    peak = max(live) if live else 1
    static = copy.deepcopy(base)
    static["cluster"]["controllers"] = []
    static["cluster"]["pools"][0]["num_replicas"] = peak
    fixed = simulate(static)
    print(f"\nSimulated day ({hours} h compressed 60x), janus_scaler every 15 s (= 15 min): "
          f"{base['workload']['num_requests']} requests")
    for name, r in (("janus_scaler", res), (f"static {peak} attn", fixed)):
        s = r.summary
        print(f"  {name:16s} GPU-hours {s['gpu_hours']:.3f}  TPOT mean {s['tpot_mean_s'] * 1e3:.1f} ms  "
              f"TPOT p99 {s['tpot_p99_s'] * 1e3:.1f} ms  SLO attainment {s['slo_attainment']:.3f}")
    saving = 1 - res.summary["gpu_hours"] / fixed.summary["gpu_hours"]
    print(f"  GPU-hours saving vs static peak: {saving:+.0%} (paper: 39% fewer; expert GPUs are never scaled here)")


def _attention_replicas_over_time(actions, start: int) -> list[int]:
    """Attention replicas alive after each scaling action (adds +1, drains -1)."""
    n, out = start, []
    for kind in actions["kind"]:
        n += 1 if kind == "add_replica" else -1 if kind == "drain_replica" else 0
        out.append(n)
    return out


def sim_config(kind: str, rate_scale: float, max_requests: int, model: str = "Qwen3-30B-A3B") -> dict:
    """8 H100s on the Azure conversation trace: monolithic EP8 (DP attention) or attention
    replicas holding an expert pool (roles attention / expert, sim/engine/held_pool.py)."""
    hw = {"device": DEVICE, "model": model}
    ep = {**SKEW, "spare_slots": 4}
    workload = {"name": "trace", "path": str(TRACE), "rate_scale": rate_scale, "max_requests": max_requests}
    if kind == "monolithic":
        pools = [{"name": "main", "hardware": hw, "scheduler": "sarathi",
                  "cost_model": {"name": "analytic", "expert_parallel": {"ep": 8, **ep}}}]
    else:
        n_attn, n_moe = (int(x) for x in kind.split("+"))
        pools = [{"name": "attn", "role": "attention", "num_replicas": n_attn, "hardware": hw, "scheduler": "sarathi",
                  "cost_model": {"name": "analytic", "moe_layers": "remote"}, "holds": {"pool": "experts"}},
                 {"name": "experts", "role": "expert", "hardware": hw,
                  "cost_model": {"name": "analytic", "expert_parallel": {"ep": n_moe, "a2a": "two_phase", **ep}}}]
    return {"seed": 0, "workload": workload, "cluster": {"router": "least_outstanding", "pools": pools},
            "slo": {"tpot_s": 0.05}, "engine": {"progress": False}}


def simulated(quick: bool) -> None:
    """The same comparison inside the simulator (Qwen3-30B-A3B, 8 GPUs, real trace, steady state)."""
    from sim import simulate

    rates = [4.0] if quick else [2.0, 4.0, 8.0]
    n = 1500 if quick else 6000
    print("\nSimulated, Qwen3-30B-A3B on 8 H100s, Azure conv trace (middle 80% of arrivals), TPOT SLO 50 ms")
    print(f"{'rate x':>6s} {'system':12s} {'TPOT mean':>10s} {'TPOT p99':>9s} {'TTFT mean':>10s} "
          f"{'out tok/s/GPU':>13s} {'SLO att.':>8s}")
    for rate in rates:
        for kind in ("monolithic", "4+4", "6+2"):
            res = simulate(sim_config(kind, rate, n))
            df = res.requests
            t0, t1 = df["arrival_s"].min(), df["arrival_s"].max()
            mid = df[(df["arrival_s"] >= t0 + 0.1 * (t1 - t0)) & (df["arrival_s"] <= t1 - 0.1 * (t1 - t0))]
            tps = res.summary["throughput_output_tps"] / res.summary["num_gpus"]
            att = float((mid["tpot_s"].fillna(0) <= 0.05).mean())
            print(f"{rate:6.1f} {kind:12s} {mid['tpot_s'].mean():10.4f} {mid['tpot_s'].quantile(0.99):9.4f} "
                  f"{mid['ttft_s'].mean():10.3f} {tps:13.1f} {att:8.3f}")


def scaler(df: pd.DataFrame, slo: float, quick: bool) -> None:
    """15-minute SLO-aware scaling over a day vs static provisioning for the peak."""
    janus = df[df["system"] == "janus"]
    mono = df[df["system"] == "monolithic"]
    peak_cap = janus["rate"].max()
    mean = peak_cap / 1.6  # the day's peak is what JANUS's largest configuration serves
    windows = np.arange(0, 24 * 3600, 900)
    rates = mean * (1 + 0.6 * np.sin(2 * np.pi * (windows + 450) / 86400 - np.pi / 2))
    print(f"\nDiurnal day (TPOT SLO {slo:g} ms): mean {mean:.1f} req/s, peak {rates.max():.1f}, "
          f"trough {rates.min():.1f}; 96 windows of 15 min")

    def gpus_for(table: pd.DataFrame, rate: float) -> float:
        ok = table[table["rate"] >= rate]
        return float(ok["gpus"].min()) if len(ok) else math.inf

    for name, table in (("janus", janus), ("monolithic", mono)):
        scaled = sum(gpus_for(table, r) for r in rates) * 0.25
        static = gpus_for(table, rates.max()) * 24
        if not math.isfinite(static):
            print(f"  {name:11s} no configuration of the grid serves the peak (at most {table['rate'].max():.1f} "
                  "req/s)")
            continue
        print(f"  {name:11s} scaler {scaled:8.1f} GPU-h   static peak {static:8.1f} GPU-h   "
              f"saving {1 - scaled / static:+.0%} (paper: 39% fewer)")


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, (slo, df) in zip(axes[0], results.items(), strict=True):
        for system, marker in (("janus", "o"), ("janus-random", "x"), ("monolithic", "s")):
            sub = df[df["system"] == system]
            best = sub.groupby("gpus")["tok_s_per_gpu"].max()
            ax.plot(best.index, best.values, marker=marker, ls="-" if system != "janus-random" else ":",
                    label=system)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("GPUs")
        ax.set_ylabel("output tok/s per GPU at SLO")
        ax.set_title(f"{MODEL}, TPOT SLO {slo:g} ms", fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
