"""Splitwise's headline (ISCA'24) checked on the Azure 2023 code and conv traces.

Paper: up to 1.4x throughput at 20% lower cost, or 2.35x throughput at the same cost and
power budget, vs homogeneous mixed DGX machines (Baseline-A100 / -H100), Llama-2-70B and
BLOOM-176B, 40-machine clusters. Here: Llama-2-70B, tp 8 per DGX machine (8 GPUs), the
reference-mode router / hand-off / scheduler (``mode: reference``), at a small budget (that of
``--budget`` DGX-H100 machines, default 4) so a search finishes in minutes.

Prices and power come from hardware/devices.py: H100-SXM $4.25 / GPU-hour, 700 W TDP;
A100-80GB $2.21 / GPU-hour, 400 W TDP (a DGX machine = 8 GPUs: $34.00 / $17.68 per hour,
5.6 / 3.2 kW provisioned). Designs enumerated (every split, nothing chosen for a win):

- Baseline-H100: ``budget`` mixed DGX-H100; Baseline-A100: as many mixed DGX-A100 as the
  same dollars buy (4 -> 7 machines, 123.8 $/h, 22.4 kW: also iso-power);
- Splitwise-HH: p DGX-H100 prompt + t DGX-H100 token machines, p + t = budget (iso-cost)
  or fewer (lower cost);
- Splitwise-HA: p DGX-H100 prompt + t DGX-A100 token machines, every (p, t) within the cost.

Throughput = the highest ``workload.rate_scale`` (x the trace's own rate) whose steady window
(requests arriving in the middle 80% of the span) meets Splitwise's slowdown SLOs: P50 / P90
/ P99 of TTFT <= 2 / 3 / 6x, of TBT (per-request mean token gap) and E2E <= 1.25 / 1.5 / 5x
the request's unloaded latency (the reference simulator's notebooks; README note 3). The
unloaded latency is measured on the same design with the trace slowed 1000x (parameter
``--reference own``) or on one mixed DGX-H100 (``--reference h100``); which one the paper
used is not stated in what we read, so it is a parameter. Unfinished requests count as
infinitely slow. Bisection over rate_scale, geometric, ``--probes`` steps after a doubling.
Arrivals are the trace's own timestamps, so the seed moves nothing (one seed; deterministic).

Result (1,500 requests, --reference own): iso-cost 1.51x (code, HH 3P+1T) and 1.45x (conv,
HH 2P+2T) the best baseline (paper 2.35x); at <= 80% cost 0.30x (code) and 1.16x (conv)
(paper 1.4x). Quick mode (250 requests) measures a start-up transient (2.38x); don't quote it.

    python experiments/splitwise_headline.py [--quick] [--requests N] [--budget 4]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardware.devices import get_device  # noqa: E402
from sim import simulate  # noqa: E402
from sim.tools.figures import figure_dir, save_figure  # noqa: E402

TRACES = {"code": ROOT / "traces" / "data" / "azure_llm_2023_code.csv",
          "conv": ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"}
DEVICES = {"H": "H100-SXM", "A": "A100-80GB"}
GPUS = 8
#: (metric, quantile, max slowdown): Splitwise's SLOs (README note 3).
SLOS = [("ttft", 50, 2.0), ("ttft", 90, 3.0), ("ttft", 99, 6.0),
        ("tbt", 50, 1.25), ("tbt", 90, 1.5), ("tbt", 99, 5.0),
        ("e2e", 50, 1.25), ("e2e", 90, 1.5), ("e2e", 99, 5.0)]


def machine(kind: str) -> tuple[float, float]:
    """($ per hour, provisioned kW) of one DGX machine of kind 'H' or 'A'."""
    d = get_device(DEVICES[kind])
    return GPUS * d.price_per_gpu_hour, GPUS * d.tdp_w / 1000.0


def _pool(name: str, role: str, n: int, kind: str) -> dict:
    return {"name": name, "role": role, "num_replicas": n, "cost_model": "analytic",
            "hardware": {"device": DEVICES[kind], "model": "Llama-2-70B", "tp": GPUS},
            "scheduler": {"name": "splitwise", "mode": "reference"}, "kv": {"name": "paged"}}


def cluster(design: tuple) -> dict:
    """design = ('mixed', kind, n) or ('split', prompt_kind, p, token_kind, t)."""
    if design[0] == "mixed":
        return {"router": "least_outstanding", "pools": [_pool("mixed", "mixed", design[2], design[1])]}
    _, pk, p, tk, t = design
    return {"router": {"name": "splitwise", "mode": "reference"}, "handoff": {"name": "splitwise", "mode": "reference"},
            "pools": [_pool("prompt", "prefill", p, pk), _pool("token", "decode", t, tk)]}


def cost_power(design: tuple) -> tuple[float, float]:
    parts = [(design[1], design[2])] if design[0] == "mixed" else [(design[1], design[2]), (design[3], design[4])]
    return (sum(n * machine(k)[0] for k, n in parts), sum(n * machine(k)[1] for k, n in parts))


def label(design: tuple) -> str:
    if design[0] == "mixed":
        return f"Baseline-{DEVICES[design[1]][:4]} x{design[2]}"
    return f"Splitwise-H{design[3]} {design[2]}P+{design[4]}T"


_RUNS: dict = {}


def run(design: tuple, trace: str, n: int, scale: float):
    key = (design, trace, n, scale)
    if key not in _RUNS:
        _RUNS.clear() if len(_RUNS) > 64 else None
        _RUNS[key] = _simulate(design, trace, n, scale)
    return _RUNS[key]


def _simulate(design: tuple, trace: str, n: int, scale: float):
    cfg = {"seed": 0, "engine": {"progress": False}, "cluster": cluster(design),
           "workload": {"name": "trace", "path": str(TRACES[trace]), "max_requests": n, "rate_scale": scale}}
    return simulate(cfg).requests


def latencies(df) -> dict[str, np.ndarray]:
    done = df["state"].eq("finished").to_numpy()
    out = {}
    for m, col in (("ttft", "ttft_s"), ("tbt", "tpot_s"), ("e2e", "e2e_s")):
        v = df[col].to_numpy(dtype=float).copy()
        v[~done] = math.inf
        out[m] = v
    return out


def passes(df, unloaded: dict[str, np.ndarray]) -> tuple[bool, float]:
    """(meets every slowdown SLO in the steady window, window length / longest E2E)."""
    arr = df["arrival_s"].to_numpy()
    lo, hi = arr.min() + 0.1 * np.ptp(arr), arr.max() - 0.1 * np.ptp(arr)
    win = (arr >= lo) & (arr <= hi)
    lat = latencies(df)
    for m, q, limit in SLOS:
        base = unloaded[m][win]
        ok = np.isfinite(base) & (base > 0)
        slow = lat[m][win][ok] / base[ok]
        if not len(slow) or np.percentile(slow, q) > limit:
            return False, 0.0
    longest = float(np.nanmax(lat["e2e"][win]))
    return True, (hi - lo) / longest if longest > 0 else math.inf


def capacity(design: tuple, trace: str, n: int, probes: int, reference: str, cap: float = 64.0,
             floor: float = 0.01):
    """(highest passing rate_scale, window / longest E2E at it); 0 if even x``floor`` fails."""
    ref = design if reference == "own" else ("mixed", "H", 1)
    unloaded = latencies(run(ref, trace, n, 1e-3))
    good, steady, s = 0.0, 0.0, 0.25
    while s > floor and not passes(run(design, trace, n, s), unloaded)[0]:  # halving down to a pass
        s /= 2
    if s <= floor:
        return 0.0, 0.0
    while s <= cap:  # doubling
        ok, st = passes(run(design, trace, n, s), unloaded)
        if not ok:
            break
        good, steady, s = s, st, s * 2
    if good == 0.0 or s > cap:
        return good, steady
    lo, hi = good, s
    for _ in range(probes):
        mid = math.sqrt(lo * hi)
        ok, st = passes(run(design, trace, n, mid), unloaded)
        if ok:
            lo, steady = mid, st
        else:
            hi = mid
    return lo, steady


def designs(budget: int) -> list[tuple]:
    cost_h, _ = machine("H")
    cost_a, _ = machine("A")
    money = budget * cost_h
    out = [("mixed", "H", budget), ("mixed", "A", int(money // cost_a))]
    for total in (budget, budget - 1):
        out += [("split", "H", p, "H", total - p) for p in range(1, total)]
    for p in range(1, budget):
        t = int((money - p * cost_h) // cost_a)
        out += [("split", "H", p, "A", k) for k in range(max(1, t - 1), t + 1)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="250 requests, code trace, 3 bisection steps")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--budget", type=int, default=4, help="budget in DGX-H100 machines")
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--reference", choices=("own", "h100"), default="own")
    parser.add_argument("--traces", default="code,conv")
    args = parser.parse_args(argv)
    n, probes, traces = (250, 3, ["code"]) if args.quick else (args.requests, args.probes, args.traces.split(","))
    money, power = args.budget * machine("H")[0], args.budget * machine("H")[1]
    print(f"Llama-2-70B tp8/DGX, reference-mode Splitwise, budget = {args.budget} DGX-H100 = ${money:.2f}/h, "
          f"{power:.1f} kW; first {n} requests; unloaded latency: {args.reference}; "
          f"{'QUICK MODE' if args.quick else 'full mode'}")
    print(f"{'trace':<5} {'design':<24} {'$/h':>7} {'kW':>5} {'x rate':>7} {'req/s':>6} {'vs B-H100':>9} "
          f"{'vs B-A100':>9} {'win/E2E':>7}")
    table = {}
    for trace in traces:
        base_rps = (n - 1) / np.ptp(run(("mixed", "H", 1), trace, n, 1.0)["arrival_s"].to_numpy())
        res = {}
        for d in designs(args.budget):
            res[d] = capacity(d, trace, n, probes, args.reference)
        table[trace] = {label(d): s * base_rps for d, (s, _) in res.items()}
        bh, ba = res[designs(args.budget)[0]][0], res[designs(args.budget)[1]][0]
        for d, (s, st) in res.items():
            c, p = cost_power(d)
            rh = f"{s / bh:.2f}x" if bh else "-"
            ra = f"{s / ba:.2f}x" if ba else "-"
            print(f"{trace:<5} {label(d):<24} {c:>7.2f} {p:>5.1f} {s:>7.2f} {s * base_rps:>6.2f} {rh:>9} {ra:>9} "
                  f"{st:>7.1f}", flush=True)
        for name, ok in (("iso-cost (<= budget)", lambda c, p: c <= money + 1e-6),
                         ("iso-cost and iso-power", lambda c, p: c <= money + 1e-6 and p <= power + 1e-6),
                         ("<= 80% cost", lambda c, p: c <= 0.8 * money + 1e-6)):
            split = [(res[d][0], label(d)) for d in res if d[0] == "split" and ok(*cost_power(d))]
            best = max(split) if split else (0.0, "-")
            best_base = max(bh, ba)
            ratio = f"{best[0] / best_base:.2f}x" if best_base else "-"
            print(f"{trace:<5} best Splitwise {name}: {best[1]} -> {ratio} the best full-budget baseline "
                  f"(paper: 1.4x at 80% cost, 2.35x iso-cost+power)")
    _figure(table, args)
    return 0


def _figure(table: dict, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(table), figsize=(6 * len(table), 4), squeeze=False)
    for ax, (trace, rows) in zip(axes[0], table.items(), strict=True):
        ax.barh(list(rows), list(rows.values()), color=["grey" if k.startswith("Base") else "tab:blue" for k in rows])
        ax.set_xlabel("req/s meeting slowdown SLOs")
        ax.set_title(f"{trace} ({'quick' if args.quick else 'full'}, unloaded: {args.reference})")
    save_figure(fig, figure_dir(args.quick) / f"splitwise_headline_{args.reference}.png")


if __name__ == "__main__":
    sys.exit(main())
