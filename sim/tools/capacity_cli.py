"""``servesim capacity``: the command line of ``sim.tools.capacity`` and its report."""

from __future__ import annotations

import argparse
import json
import math
import sys

from sim import schema
from sim.config import from_dict, load_yaml
from sim.errors import ConfigError
from sim.tools.capacity import CapacityResult, Probe, find_capacity, rate_param
from sim.tools.capacity_slo import coerce_spec


def register(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim capacity``."""
    p = sub.add_parser("capacity", help="highest load meeting the SLOs in steady state")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--slo", default="", help="per request: ttft=S,tpot=S,e2e=S; percentiles: p99_tbt=S, "
                   "p90_ttft=S, p50_queueing=S, ... (seconds; default: the config's per-request SLOs)")
    p.add_argument("--attainment", type=float, default=0.9,
                   help="share of window requests meeting the per-request SLOs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted path")
    p.add_argument("--param", default=None, help="dotted key of the load knob (default: from the workload)")
    p.add_argument("--start", type=float, default=None, help="first value of the knob (default: configured)")
    p.add_argument("--max", dest="max_value", type=float, default=None,
                   help="never probe the knob above this (default: 256 x start)")
    p.add_argument("--rtol", type=float, default=0.02, help="stop when the bracket is this close (relative)")
    p.add_argument("--seeds", type=int, default=1, help="search once per seed; report the mean and a 95%% CI")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of the arrival span excluded at the start")
    p.add_argument("--cooldown", type=float, default=0.1, help="fraction of the arrival span excluded at the end")
    p.add_argument("--min-window-e2e", type=float, default=5.0,
                   help="a window is steady when it lasts >= this many times its longest E2E")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_capacity)


def cmd_capacity(args: argparse.Namespace) -> int:
    """Handler of ``servesim capacity``: 0 found (steady), 1 none passes, 2 found but unsteady
    or still passing at ``--max``."""
    slo = coerce_spec(args.slo) if args.slo else None
    data = load_yaml(args.config)
    try:
        param = args.param or rate_param(schema.to_dict(from_dict(data, args.overrides)))
    except ConfigError as exc:
        raise exc.in_file(args.config) from None

    def show(p: Probe) -> None:
        if not args.json:
            mark = "pass" if p.passed else "fail"
            pct = "".join(f"  {k} {v:.4g}s" for k, v in p.percentiles.items())
            att = f"  attainment {_pct(p.attainment):>6}" if (slo is None or slo.per_request) else ""
            print(f"  seed {p.seed} probe {param}={p.value:<10.4g} offered {p.offered_rps:8.3f} req/s{att}{pct}  "
                  f"window {p.window_s:.0f}s{'' if p.steady else ' (unsteady)'}  {mark}", file=sys.stderr)

    result = find_capacity(data, attainment=args.attainment, slo=slo, overrides=args.overrides, param=param,
                           start=args.start, max_value=args.max_value, rtol=args.rtol, seeds=args.seeds,
                           warmup=args.warmup, cooldown=args.cooldown, min_window_e2e=args.min_window_e2e,
                           on_probe=show)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_capacity(result, args.config, args.min_window_e2e))
    if result.value is None:
        return 1
    return 0 if result.steady and not result.at_bound else 2


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _money(v: float, unit: str) -> str:
    return "n/a (no GPU price in the catalog)" if v != v or math.isinf(v) else f"{v:.4g} {unit}"


def _ci(v: float, ci: float, fmt: str = ".4g") -> str:
    return f"{v:{fmt}}" + (f" +/- {ci:{fmt}} (95% CI)" if ci == ci and ci > 0 else "")


def format_capacity(r: CapacityResult, source: str = "", min_window_e2e: float = 5.0) -> str:
    """A short report of a capacity search."""
    slo = ", ".join([f"{k.removesuffix('_s')} <= {v:g} s" for k, v in r.slo["per_request"].items()]
                    + [f"{k} <= {v:g} s" for k, v in r.slo["percentiles"].items()]) or "none"
    head = f"servesim capacity {source}".rstrip()
    target = f"; target attainment {_pct(r.target_attainment)}" if r.slo["per_request"] else ""
    lines = [f"{head}: SLO {slo}{target}; knob {r.param} (at most {r.max_value:.4g}); {len(r.seeds)} seed(s)"]
    if r.value is None:
        failing = [s["seed"] for s in r.seeds if s["value"] is None]
        lines.append(f"  no load meets the SLOs for seed(s) {failing}: even {r.param}={r.upper:.4g} fails")
        return "\n".join(lines)
    upper = f"{r.upper:.4g}" if r.upper is not None else "none below the bound"
    lines += [
        f"  {r.param:<22} {_ci(r.value, r.value_ci95)} (seed {r.seeds[0]['seed']}: lowest failing {upper}; "
        f"tolerance {100 * r.rtol:g}%)",
        f"  {'offered request rate':<22} {_ci(r.offered_rps, r.offered_rps_ci95, '.3f')} req/s (window arrivals)",
        f"  {'served request rate':<22} {r.served_rps:.3f} req/s (finishes inside the window)",
    ]
    if r.slo["per_request"]:
        lines.append(f"  {'SLO attainment':<22} {_pct(r.attainment)}")
    lines += [f"  {k:<22} {v:.4g} s" for k, v in r.percentiles.items()]
    lines += [
        f"  {'goodput':<22} {r.goodput_rps:.3f} req/s",
        f"  {'goodput per GPU':<22} {r.goodput_rps_per_gpu:.3f} req/s ({r.num_gpus} GPUs)",
        f"  {'goodput per dollar':<22} {_money(r.goodput_per_usd, 'requests/$')}",
        f"  {'steady-state window':<22} {r.window_s:.1f} s, longest E2E {r.max_e2e_s:.2f} s "
        f"({'steady' if r.steady else 'NOT steady'}: needs >= {min_window_e2e:g} x)",
        f"  {'probes':<22} {len(r.probes)}",
    ]
    if len(r.seeds) > 1:
        lines.append(f"  {'per seed':<22} " + ", ".join(f"{s['seed']}: {s['value']:.4g}" for s in r.seeds))
    if r.at_bound:
        lines.append(f"  STILL PASSING at the upper bound {r.param}={r.max_value:.4g}: the capacity is at least "
                     "this; raise --max to search further")
    if not r.steady:
        lines.append("  WARNING: the window is shorter than the longest E2E allows; this measures a transient. "
                     "Run more requests (e.g. --set workload.max_requests=...)")
    return "\n".join(lines)
