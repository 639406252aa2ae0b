"""VTC vs FCFS (vLLM v1) on the Azure 2023 conversation trace with many clients assigned.

The paper (Sheng et al., OSDI'24, Table 3): 27 LMSYS clients on one server, max / avg
service difference FCFS 760 / 434, VTC 368 / 252 (tokens/s, their ``get_service_diff_over_time``:
20 ticks, 60 s windows, 30 s warm-up over 600 s; sim/engine/fairness.py). Here: the first
``--window-s`` of the Azure conversation trace at its own rate (``--rate-scale 1``: one
A100-80GB with Llama-2-7B is then just saturated, with bursts above capacity), 27 clients
whose rates are drawn lognormal(0, 1) per seed (``assign_clients`` ``rate_dist``), one
replica, analytic cost model, paged KV. Systems: ``vllm_v1`` (FCFS, chunked prefill,
budget 2048) and ``vtc`` with the same limits; ``vtc`` with length prediction (``history``
predictor per client, as the artifact's per-client moving average) as a third.

Heavy hitter: the trace at ``--heavy-base-scale`` (0.5: the light clients use about half of
the replica; 0.7: near its KV-bound capacity) plus a client sending
``--heavy-multiple`` x one client's rate (``heavy_hitter``). Printed: the other clients' p99
TTFT (requests arriving after the warm-up and before the drain) without and with it.
Throughput = weighted tokens (input + output) delivered inside the steady window / its
length. Run::

    .venv/bin/python experiments/vtc_azure.py [--quick] [--seeds 0 1 2]

writes docs/vtc_service.png (accumulated service per client) and docs/vtc_heavy_hitter.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim import simulate
from sim.engine.fairness import service_over_time
from sim.tools.figures import figure_dir

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
DOCS = ROOT / "docs"
HARDWARE = {"device": "A100-80GB", "model": "Llama-2-7B"}
PAPER = {"FCFS": (760, 434), "VTC": (368, 252)}
SYSTEMS = {"FCFS": {"name": "vllm_v1"}, "VTC": {"name": "vtc"}, "VTC-pred": {"name": "vtc", "length_predicted": True}}


def config(system: str, seed: int, window_s: float, rate_scale: float, heavy_multiple: float | None = None) -> dict:
    """One run: the trace window, 27 clients, optionally a heavy hitter, one A100 replica."""
    transforms = [{"name": "window", "start_s": 0, "duration_s": window_s},
                  {"name": "assign_clients", "num_clients": 27, "rate_dist": "lognormal", "rate_sigma": 1.0}]
    if heavy_multiple:
        transforms.append({"name": "heavy_hitter", "rate_multiple": heavy_multiple, "num_other_clients": 27})
    cluster = {"router": "round_robin",
               "pools": [{"name": "main", "num_replicas": 1, "hardware": dict(HARDWARE),
                          "cost_model": {"name": "analytic"}, "scheduler": dict(SYSTEMS[system]),
                          "kv": {"name": "paged"}}]}
    if SYSTEMS[system].get("length_predicted"):
        cluster["predictor"] = {"name": "history", "key": "client", "quantile": 0.5}
    return {"seed": seed, "workload": {"name": "trace", "path": str(TRACE), "rate_scale": rate_scale,
                                       "transforms": transforms},
            "cluster": cluster, "engine": {"progress": False}}


def steady(df, window_s: float):
    """Requests arriving inside the steady window (10% warm-up, 10% drain cut)."""
    lo, hi = 0.1 * window_s, 0.9 * window_s
    return df[(df["arrival_s"] >= lo) & (df["arrival_s"] < hi)]


def throughput(df, window_s: float) -> float:
    """Tokens (input + output) delivered inside the steady window per second."""
    lo, hi = 0.1 * window_s, 0.9 * window_s
    acc = service_over_time(df, np.array([lo, hi]), w_p=1.0, w_q=1.0)
    return float((acc.iloc[1] - acc.iloc[0]).sum() / (hi - lo))


def fairness_table(seeds: list[int], window_s: float, rate_scale: float) -> tuple[dict, dict]:
    rows, frames = {}, {}
    for system in SYSTEMS:
        vals = []
        for seed in seeds:
            res = simulate(config(system, seed, window_s, rate_scale))
            s = res.summary
            vals.append((s["fair_service_diff_max"], s["fair_service_diff_mean"], s["fair_backlogged_diff_max"],
                         s["fair_backlogged_diff_mean"], s["fair_jain_index"], throughput(res.requests, window_s)))
            if seed == seeds[0]:
                frames[system] = res.requests
        rows[system] = np.array(vals)
    return rows, frames


def heavy_table(seeds: list[int], window_s: float, base_scale: float, multiple: float) -> dict:
    """Per system: [others' pooled p99 TTFT, median client's p99 TTFT] without and with the heavy hitter."""
    out = {}
    for system in ("FCFS", "VTC"):
        vals = []
        for seed in seeds:
            row = []
            for heavy in (None, multiple):
                df = steady(simulate(config(system, seed, window_s, base_scale, heavy)).requests, window_s)
                others = df[(df["client"] != "heavy") & (df["state"] == "finished")]
                per_client = others.groupby("client")["ttft_s"].quantile(0.99)
                row += [float(others["ttft_s"].quantile(0.99)), float(per_client.median())]
            vals.append(row)
        out[system] = np.array(vals)
    return out


def figures(frames: dict, heavy: dict, multiple: float, base: float, folder: Path = DOCS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.tools.plots import plot_service

    folder.mkdir(exist_ok=True)
    fig = plot_service({k: frames[k] for k in ("FCFS", "VTC")}, max_clients=8)
    fig.suptitle("Azure conv, 27 clients, 1x A100 Llama-2-7B: accumulated service (8 busiest clients)", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "vtc_service.png", dpi=120)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(2)
    for k, system in enumerate(("FCFS", "VTC")):
        ax.bar(x + 0.38 * k, heavy[system].mean(axis=0)[[0, 2]], 0.36, label=system)
    ax.set_xticks(x + 0.19, [f"trace x{base:g}", f"+ heavy hitter ({multiple:g}x)"])
    ax.set_ylabel("other clients' p99 TTFT (s)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(folder / "vtc_heavy_hitter.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="240 s window, one seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--window-s", type=float, default=600.0)
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--heavy-base-scale", type=float, nargs="+", default=[0.5, 0.7])
    ap.add_argument("--heavy-multiple", type=float, default=20.0)
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.window_s, args.heavy_base_scale = args.seeds[:1], 240.0, args.heavy_base_scale[:1]
    rows, frames = fairness_table(args.seeds, args.window_s, args.rate_scale)
    print(f"Azure conv {args.window_s:g} s x{args.rate_scale:g}, 27 clients (lognormal rates), seeds {args.seeds}; "
          "service difference in weighted tokens/s (paper metric; windows scaled by T/600 below 600 s)")
    print(f"{'system':10s} {'max diff':>9s} {'avg diff':>9s} {'backlog max':>11s} {'backlog avg':>11s} "
          f"{'Jain':>6s} {'tput tok/s':>10s} {'vs FCFS':>8s}   paper max/avg")
    base = rows["FCFS"][:, 5].mean()
    for system, v in rows.items():
        m = v.mean(axis=0)
        paper = "{} / {}".format(*PAPER[system]) if system in PAPER else "-"
        print(f"{system:10s} {m[0]:9.0f} {m[1]:9.0f} {m[2]:11.0f} {m[3]:11.0f} {m[4]:6.3f} {m[5]:10.0f} "
              f"{m[5] / base - 1:+7.1%}   {paper}")
    print(f"\nHeavy hitter: one client at {args.heavy_multiple:g}x one client's rate on top of the trace; other "
          "clients' p99 TTFT (s), steady window: pooled, and of the median client")
    print(f"{'base':>5s} {'system':8s} {'without':>9s} {'with':>9s} {'increase':>9s} {'median client':>14s}")
    for scale in args.heavy_base_scale:
        heavy = heavy_table(args.seeds, args.window_s, scale, args.heavy_multiple)
        for system, v in heavy.items():
            m = v.mean(axis=0)
            print(f"x{scale:<4g} {system:8s} {m[0]:9.2f} {m[2]:9.2f} {m[2] - m[0]:+9.2f} {m[1]:6.2f} -> {m[3]:6.2f}")
        if scale == args.heavy_base_scale[0]:
            first = heavy
    if not args.no_figures:
        folder = figure_dir(args.quick)
        figures(frames, first, args.heavy_multiple, args.heavy_base_scale[0], folder)
        print(f"\nwrote {folder / 'vtc_service.png'} and {folder / 'vtc_heavy_hitter.png'}")


if __name__ == "__main__":
    main()
