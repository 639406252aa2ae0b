"""DistServe's offline placement search: the cheapest prefill/decode replica counts for a rate.

For every feasible (tp, pp) of each phase, one instance of that phase is simulated alone and
the highest request rate it sustains with at least 90% of requests meeting *that phase's* SLO
is bisected (``sim.tools.capacity.find_capacity``): a prefill instance against the TTFT SLO (fed
into ample decode capacity), a decode instance against the TPOT SLO (fed by ample prefill
capacity). Then each phase is replicated ceil(R / per-instance rate) times for the target rate
R, and the cheapest (fewest GPUs) pair of configurations is reported. DistServe
(Zhong et al., OSDI'24) does the same with its own simulator; like it, this ignores KV-copy
contention between the phases (the copy over NVLink is small, see distserve_vs_colocated.py).

    python experiments/distserve_placement.py --rate 20 [--model Llama-3-8B --device H100-SXM]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pd_configs import distserve, hardware, sharegpt_poisson  # noqa: E402

from sim.errors import ConfigError  # noqa: E402
from sim.tools.capacity import find_capacity  # noqa: E402

AMPLE = 8  # replicas of the other phase, so that it never limits the phase under test


def phase_capacity(phase: str, tp: int, pp: int, args: argparse.Namespace) -> float | None:
    """Per-instance rate of one (tp, pp) instance of ``phase``; None if it cannot hold the model."""
    small, big = hardware(args.device, args.model, tp, pp), hardware(args.device, args.model)
    workload = sharegpt_poisson(1.0, args.requests, max_context_tokens=args.context)
    if phase == "prefill":
        cfg, slo = distserve(workload, 1, AMPLE, small, big), {"ttft_s": args.ttft, "tpot_s": None}
    else:
        cfg, slo = distserve(workload, AMPLE, 1, big, small), {"ttft_s": None, "tpot_s": args.tpot}
    try:
        result = find_capacity(cfg, attainment=0.9, slo=slo, param="workload.arrival.rate_rps", rtol=0.03)
    except ConfigError:
        return None  # the model does not fit this parallelism
    return result.value


def main(argv: list[str] | None = None) -> int:
    """Search (tp, pp) per phase and print the per-instance rates and the cheapest placement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="target request rate R, req/s")
    parser.add_argument("--model", default="Llama-3-8B")
    parser.add_argument("--device", default="H100-SXM")
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--ttft", type=float, default=1.0, help="prefill phase SLO: TTFT, s")
    parser.add_argument("--tpot", type=float, default=0.012, help="decode phase SLO: TPOT, s")
    parser.add_argument("--max-gpus", type=int, default=4, help="largest tp x pp per instance")
    parser.add_argument("--requests", type=int, default=800, help="requests per probe")
    args = parser.parse_args(argv)
    shapes = [(tp, pp) for tp in (1, 2, 4, 8) for pp in (1, 2, 4) if tp * pp <= args.max_gpus]
    rates: dict[str, list[tuple[int, int, float]]] = {"prefill": [], "decode": []}
    print(f"{args.model} on {args.device}; SLOs: TTFT {args.ttft}s (prefill), TPOT {args.tpot}s (decode); "
          f"90% attainment; target {args.rate} req/s")
    print(f"{'phase':<8} {'tp':>3} {'pp':>3} {'req/s per instance':>19} {'req/s per GPU':>14}")
    for phase in ("prefill", "decode"):
        for tp, pp in shapes:
            rate = phase_capacity(phase, tp, pp, args)
            shown = "does not fit" if rate is None else f"{rate:19.2f} {rate / (tp * pp):14.2f}"
            print(f"{phase:<8} {tp:>3} {pp:>3} {shown}", flush=True)
            if rate:
                rates[phase].append((tp, pp, rate))
    best = None
    for tp_p, pp_p, r_p in rates["prefill"]:
        for tp_d, pp_d, r_d in rates["decode"]:
            n_p, n_d = math.ceil(args.rate / r_p), math.ceil(args.rate / r_d)
            gpus = n_p * tp_p * pp_p + n_d * tp_d * pp_d
            if best is None or gpus < best[0]:
                best = (gpus, n_p, tp_p, pp_p, n_d, tp_d, pp_d)
    if best is None:
        print("no feasible placement")
        return 1
    gpus, n_p, tp_p, pp_p, n_d, tp_d, pp_d = best
    print(f"cheapest for {args.rate} req/s: {n_p} prefill x (tp={tp_p}, pp={pp_p}) + "
          f"{n_d} decode x (tp={tp_d}, pp={pp_d}) = {gpus} GPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
