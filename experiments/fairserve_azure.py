"""FairServe vs VTC, VTC with per-call throttling, and FCFS on multi-call interactions.

FairServe (Khan et al., 2024) is public as an abstract only: it claims fewer interactions
throttled mid-way than per-request rate limits (RPM) and fairer service across applications
with different lengths than VTC, without numbers in the abstract. Setting here: the first
``--window-s`` of the Azure 2023 conversation trace at ``--rate-scale``; 16 users of equal
rate plus a heavy user at ``--heavy-multiple`` x one user's rate (``heavy_hitter``); each
user uses one app, ``chat`` (the trace's lengths) or ``summarize`` (prompts x3, answers x0.5:
``assign_apps`` ``length_scale``); every 3 consecutive calls of a user form one interaction
(``group_interactions``, open loop). One A100-80GB with Llama-2-7B (analytic), paged KV.

Systems: FCFS (``vllm_v1``, least pending tokens); VTC (``vtc`` + ``vtc`` router); VTC+RPM
(``vtc`` behind the ``fairserve`` router with ``interaction_aware: false``: any call of an
over-share user may be throttled while overloaded); FairServe (``fairserve`` router and
scheduler). Printed per system: calls throttled, interactions throttled mid-way (a call
rejected after an earlier call of the same interaction was let in), the light users' p99
and mean TTFT per app and the share of their calls served (steady window), the heavy
user's share of completed calls. Run::

    .venv/bin/python experiments/fairserve_azure.py [--quick] [--seeds 0 1 2]

writes docs/fairserve_apps.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim import simulate
from sim.tools.figures import figure_dir

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"
DOCS = ROOT / "docs"
HARDWARE = {"device": "A100-80GB", "model": "Llama-2-7B"}
APPS = ("chat", "summarize")
SYSTEMS = {
    "FCFS": ({"name": "vllm_v1"}, {"name": "least_pending_tokens"}),
    "VTC": ({"name": "vtc"}, {"name": "vtc"}),
    "VTC+RPM": ({"name": "vtc"}, {"name": "fairserve", "interaction_aware": False}),
    "FairServe": ({"name": "fairserve"}, {"name": "fairserve"}),
}


def config(system: str, seed: int, window_s: float, rate_scale: float, heavy_multiple: float) -> dict:
    sched, router = SYSTEMS[system]
    transforms = [{"name": "window", "start_s": 0, "duration_s": window_s},
                  {"name": "assign_clients", "num_clients": 16, "prefix": "user"},
                  {"name": "heavy_hitter", "rate_multiple": heavy_multiple, "num_other_clients": 16},
                  {"name": "assign_apps", "apps": {a: 1.0 for a in APPS}, "by": "client",
                   "length_scale": {"summarize": [3.0, 0.5]}},
                  {"name": "group_interactions", "calls": 3}]
    return {"seed": seed,
            "workload": {"name": "trace", "path": str(TRACE), "rate_scale": rate_scale, "transforms": transforms},
            "cluster": {"router": dict(router),
                        "pools": [{"name": "main", "num_replicas": 1, "hardware": dict(HARDWARE),
                                   "cost_model": {"name": "analytic"}, "scheduler": dict(sched),
                                   "kv": {"name": "paged"}}]},
            "engine": {"progress": False}}


def measure(df, window_s: float) -> dict:
    """The printed figures of one run."""
    rejected = df["state"] == "rejected"
    let_in = df[~rejected].groupby("session")["arrival_s"].min()
    rej = df[rejected]
    mid = rej[rej["session"].map(let_in).lt(rej["arrival_s"]).fillna(False)]
    lo, hi = 0.1 * window_s, 0.9 * window_s
    steady = df[(df["arrival_s"] >= lo) & (df["arrival_s"] < hi)]
    light = steady[steady["client"] != "heavy"]
    out = {"throttled": int(rejected.sum()), "mid_way": int(mid["session"].nunique()),
           "heavy_share": float((df.loc[df["state"] == "finished", "client"] == "heavy").mean())}
    for app in APPS:
        rows = light[light["app"] == app]
        done = rows[rows["state"] == "finished"]
        out[f"p99_{app}"] = float(done["ttft_s"].quantile(0.99)) if len(done) else float("nan")
        out[f"mean_{app}"] = float(done["ttft_s"].mean()) if len(done) else float("nan")
        out[f"served_frac_{app}"] = len(done) / max(len(rows), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 s window, one seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--window-s", type=float, default=600.0)
    ap.add_argument("--rate-scale", type=float, nargs="+", default=[0.4, 0.6])
    ap.add_argument("--heavy-multiple", type=float, default=8.0)
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.window_s, args.rate_scale = args.seeds[:1], 150.0, args.rate_scale[:1]
    for k, scale in enumerate(args.rate_scale):
        rows = table(args, scale)
        if k == 0:
            first = rows
    print("paper (abstract only): FairServe throttles no interaction mid-way (RPM does) and serves apps of "
          "different lengths more fairly than VTC; no numbers public")
    if not args.no_figures:
        figure(first, args.rate_scale[0], figure_dir(args.quick))


def table(args: argparse.Namespace, scale: float) -> dict:
    """Run every system at one load and print its row."""
    rows = {}
    for system in SYSTEMS:
        runs = [measure(simulate(config(system, s, args.window_s, scale, args.heavy_multiple)).requests,
                        args.window_s) for s in args.seeds]
        rows[system] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    print(f"\nAzure conv {args.window_s:g} s x{scale:g}, 16 users (chat / summarize) + heavy user "
          f"{args.heavy_multiple:g}x, 3-call interactions, 1x A100 Llama-2-7B; seeds {args.seeds}")
    print(f"{'system':10s} {'throttled':>9s} {'mid-way':>8s} {'p99 chat':>9s} {'p99 summ':>9s} {'mean chat':>9s} "
          f"{'mean summ':>9s} {'summ/chat':>9s} {'served':>7s} {'heavy share':>11s}")
    for system, m in rows.items():
        ratio = m["mean_summarize"] / m["mean_chat"] if m["mean_chat"] else float("nan")
        served = (m["served_frac_chat"] + m["served_frac_summarize"]) / 2
        print(f"{system:10s} {m['throttled']:9.0f} {m['mid_way']:8.1f} {m['p99_chat']:9.2f} {m['p99_summarize']:9.2f} "
              f"{m['mean_chat']:9.2f} {m['mean_summarize']:9.2f} {ratio:9.2f} {served:7.3f} {m['heavy_share']:11.3f}")
    return rows


def figure(rows: dict, scale: float, folder: Path = DOCS) -> None:
    """docs/fairserve_apps.png: the light users' p99 and mean TTFT per app, per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    x = np.arange(len(rows))
    for k, app in enumerate(APPS):
        axes[0].bar(x + 0.4 * k, [m[f"p99_{app}"] for m in rows.values()], 0.38, label=app)
        axes[1].bar(x + 0.4 * k, [m[f"mean_{app}"] for m in rows.values()], 0.38, label=app)
    for ax, title in zip(axes, ("light users' p99 TTFT (s)", "light users' mean TTFT (s)"), strict=True):
        ax.set_xticks(x + 0.2, list(rows), fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Azure conv x{scale:g} + heavy user, chat vs summarize users", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "fairserve_apps.png", dpi=120)
    print(f"wrote {folder / 'fairserve_apps.png'}")


if __name__ == "__main__":
    main()
