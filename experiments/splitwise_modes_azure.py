"""Splitwise as the reference simulator runs it vs this project's default modes, Azure 2023 traces.

Not the paper's headline (which needs iso-cost / iso-power cluster designs and slowdown SLOs,
see the README trends row): this measures what the reference's rules change on the traces
Splitwise used. Llama-2-70B on DGX-H100 machines (tp 8), 2 prompt + 2 token machines:

- reference: ``mode: reference`` of the router, hand-off and scheduler (both machines picked
  at arrival, mixed pool with borrowing, whole prompts first, the reference's deferral rule);
- default: this project's Splitwise (chunked batching, token machine at the end of the prompt,
  borrowed machines run requests end to end);
- baseline: 4 mixed machines, least outstanding, the reference's batching (Baseline-H100).

Printed per trace: TTFT / TBT (ITL) / E2E at P50 / P90 / P99, completed requests, KV copies.
Seeds 0..N-1 (arrivals are the trace's own; the seed moves nothing else here, so one suffices
unless a policy draws random numbers).

Result (2,000 requests, rate x4): code P99 TTFT / TBT 3.1 s / 485 ms (reference), 8.9 s /
116 ms (default), 3.3 s / 476 ms (baseline); conv: all within 10% (P99 TBT 12-14 ms, 56 ms
baseline).

    python experiments/splitwise_modes_azure.py [--quick] [--requests 2000] [--rate-scale 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim import simulate  # noqa: E402

TRACES = {"code": ROOT / "traces" / "data" / "azure_llm_2023_code.csv",
          "conv": ROOT / "traces" / "data" / "azure_llm_2023_conv.csv"}
HW = {"device": "H100-SXM", "model": "Llama-2-70B", "tp": 8}


def _pool(name: str, role: str, n: int, mode: str) -> dict:
    return {"name": name, "role": role, "num_replicas": n, "hardware": dict(HW), "cost_model": "analytic",
            "scheduler": {"name": "splitwise", "mode": mode}, "kv": {"name": "paged"}}


def config(system: str, trace: str, requests: int, rate_scale: float) -> dict:
    """One system's config on one trace."""
    workload = {"name": "trace", "path": str(TRACES[trace]), "max_requests": requests, "rate_scale": rate_scale}
    if system == "baseline":
        cluster = {"router": "least_outstanding", "pools": [_pool("mixed", "mixed", 4, "reference")]}
    else:
        mode = "reference" if system == "reference" else "default"
        sched = "reference" if system == "reference" else "chunked"
        cluster = {"router": {"name": "splitwise", "mode": mode}, "handoff": {"name": "splitwise", "mode": mode},
                   "pools": [_pool("prompt", "prefill", 2, sched), _pool("token", "decode", 2, sched)]}
    return {"seed": 0, "workload": workload, "cluster": cluster, "engine": {"progress": False}}


def main(argv: list[str] | None = None) -> int:
    """Print one row per (trace, system)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 requests per trace")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rate-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.requests
    print(f"Llama-2-70B, DGX-H100 machines (tp 8), 4 machines, first {n} requests at rate x{args.rate_scale:g}")
    print(f"{'trace':<5} {'system':<10} {'TTFT p50/p90/p99 s':>22} {'TBT p50/p90/p99 ms':>22} "
          f"{'E2E p50/p90/p99 s':>22} {'done':>5} {'KV copies':>9}")
    for trace in TRACES:
        for system in ("baseline", "default", "reference"):
            result = simulate(config(system, trace, n, args.rate_scale))
            s, copies = result.summary, int((result.requests["transfer_s"] > 0).sum())
            ttft = "/".join(f"{s[f'ttft_p{q}_s']:.2f}" for q in (50, 90, 99))
            tbt = "/".join(f"{1000 * s[f'itl_p{q}_s']:.0f}" for q in (50, 90, 99))
            e2e = "/".join(f"{s[f'e2e_p{q}_s']:.1f}" for q in (50, 90, 99))
            print(f"{trace:<5} {system:<10} {ttft:>22} {tbt:>22} {e2e:>22} {s['num_completed']:>5} "
                  f"{copies:>9}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
