"""Capacity search: the highest request rate that still meets the SLOs at a target attainment.

As DistServe and Sarathi-Serve measure it: scale the configured workload's arrival rate,
run, and keep the highest scale whose SLO attainment (share of requests meeting every SLO)
is at least the target. The search doubles (or halves) from the configured rate until the
target is bracketed, then bisects until the bracket is within ``rtol`` of its low end::

    attainment
      1 |#####.
        |      ##.
 target |- - - - -#- - - - -     lo = highest passing scale, hi = lowest failing scale
        |          ##           stop when hi - lo <= rtol * lo
      0 +---------|-|------> rate scale
                 lo hi

The knob is ``workload.rate_scale`` for the ``trace`` workload, the arrival process's rate for a
workload with an ``arrival:`` block, and ``workload.rate_rps`` otherwise (``--param`` overrides).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sim import schema
from sim.config import from_dict, load_yaml, set_dotted, split_path
from sim.errors import ConfigError, ServesimError

SLO_KEYS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s"}


@dataclass
class Probe:
    """One run of the search: the knob's value and what it achieved."""

    value: float
    attainment: float
    offered_rps: float
    request_rate_rps: float
    goodput_rps: float
    passed: bool


@dataclass
class CapacityResult:
    """The highest passing value of the rate knob, its bracket and its run's numbers."""

    param: str
    target_attainment: float
    slo: dict[str, float | None]
    rtol: float
    value: float | None          # highest passing value (None: even the lowest probe failed)
    upper: float | None          # lowest failing value above it (None: never failed)
    attainment: float
    offered_rps: float
    request_rate_rps: float
    goodput_rps: float
    goodput_rps_per_gpu: float
    goodput_per_usd: float       # requests meeting the SLOs per dollar (nan without prices)
    num_gpus: int | None
    usd_per_hour: float
    probes: list[Probe] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        from sim.tools.output import json_safe

        return json_safe(asdict(self))


def parse_slo(text: str) -> dict[str, float]:
    """``ttft=0.5,tpot=0.05`` -> {'ttft_s': 0.5, 'tpot_s': 0.05}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip().removesuffix("_s")
        if not sep or key not in SLO_KEYS:
            raise ConfigError(f"--slo expects ttft=S,tpot=S,e2e=S (seconds), got {part!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--slo {key}: not a number: {raw!r}") from None
        if not value > 0:
            raise ConfigError(f"--slo {key}: must be > 0, got {raw}")
        out[SLO_KEYS[key]] = value
    return out


def rate_param(data: dict) -> str:
    """The dotted key that scales a config mapping's request rate."""
    workload = from_dict(data).workload
    params = workload.params
    if hasattr(params, "rate_scale"):
        return "workload.rate_scale"
    arrival = getattr(params, "arrival", None)
    if arrival is not None:
        for name in ("rate_rps", "mean_rate_rps"):
            if hasattr(arrival.params, name):
                return f"workload.arrival.{name}"
    if hasattr(params, "rate_rps"):
        return "workload.rate_rps"
    raise ConfigError(f"workload {workload.name!r} has no request rate to scale; name one with --param",
                      "workload")


def get_dotted(data: Any, path: str) -> Any:
    """The value at ``path`` in a nested mapping, or None."""
    node = data
    for key in split_path(path):
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def find_capacity(
    config: str | Path | dict,
    *,
    attainment: float = 0.9,
    slo: dict[str, float] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    param: str | None = None,
    start: float | None = None,
    rtol: float = 0.02,
    max_probes: int = 40,
    on_probe: Callable[[Probe], None] | None = None,
) -> CapacityResult:
    """Bisect the highest value of the rate knob meeting ``slo`` at ``attainment``."""
    from sim.api import simulate

    if not 0 < attainment <= 1:
        raise ConfigError(f"attainment must be in (0, 1], got {attainment}")
    if not 0 < rtol < 1:
        raise ConfigError(f"rtol must be in (0, 1), got {rtol}")
    data = load_yaml(config) if isinstance(config, (str, Path)) else copy.deepcopy(config)
    parsed = from_dict(data, overrides)
    data = schema.to_dict(parsed)  # resolved: overrides and defaults written out
    for key, value in (slo or {}).items():
        set_dotted(data, f"slo.{key}", value)
    set_dotted(data, "engine.progress", False)
    param = param or rate_param(data)
    current = get_dotted(data, param)
    if start is None:
        if not isinstance(current, (int, float)) or isinstance(current, bool) or current <= 0:
            raise ConfigError(f"cannot scale {param} (value {current!r}); name a positive rate with --param")
        start = float(current)
    runs: dict[float, tuple[Probe, dict]] = {}

    def probe(value: float) -> bool:
        if value not in runs:
            if len(runs) >= max_probes:
                raise ServesimError(f"capacity search did not converge in {max_probes} probes")
            point = copy.deepcopy(data)
            set_dotted(point, param, value)
            result = simulate(point)
            summary = dict(result.summary, offered_rps=offered_rps(result.requests))
            att = _num(summary.get("slo_attainment"))
            p = Probe(value, att, summary["offered_rps"], _num(summary.get("request_rate_rps")),
                      _num(summary.get("goodput_rps")), att >= attainment)
            runs[value] = (p, summary)
            if on_probe is not None:
                on_probe(p)
        return runs[value][0].passed

    lo, hi = _bracket(probe, start)
    while lo is not None and hi is not None and hi - lo > rtol * lo:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    best = runs[lo][1] if lo is not None else {}
    probes = [runs[v][0] for v in runs]
    return _result(param, attainment, data["slo"], rtol, lo, hi, best, probes)


def offered_rps(requests: Any) -> float:
    """Arrivals per second over the arrival span (the offered load, unlike the summary's
    request_rate_rps, which divides by the span up to the last finish)."""
    if len(requests) < 2:
        return float("nan")
    span = float(requests["arrival_s"].max() - requests["arrival_s"].min())
    return (len(requests) - 1) / span if span > 0 else float("nan")


def _bracket(probe: Callable[[float], bool], start: float, limit: int = 30) -> tuple[float | None, float | None]:
    """Double or halve from ``start`` until a passing value sits below a failing one."""
    if probe(start):
        lo, value = start, start * 2
        for _ in range(limit):
            if not probe(value):
                return lo, value
            lo, value = value, value * 2
        return lo, None
    hi, value = start, start / 2
    for _ in range(limit):
        if probe(value):
            return value, hi
        hi, value = value, value / 2
    return None, hi


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else float("nan")


def _result(param: str, target: float, slo: dict, rtol: float, lo: float | None, hi: float | None,
            best: dict[str, Any], probes: list[Probe]) -> CapacityResult:
    goodput = _num(best.get("goodput_rps"))
    cost = _num(best.get("cost_usd"))
    duration_s = _num(best.get("simulated_duration_s"))
    usd_per_hour = cost / (duration_s / 3600.0) if duration_s > 0 and cost == cost else float("nan")
    per_usd = goodput * 3600.0 / usd_per_hour if usd_per_hour > 0 else float("nan")
    gpus = best.get("num_gpus")
    per_gpu = _num(best.get("goodput_rps_per_gpu"))
    if per_gpu != per_gpu and gpus:
        per_gpu = goodput / gpus
    return CapacityResult(
        param=param, target_attainment=target, slo={k: slo.get(k) for k in SLO_KEYS.values()}, rtol=rtol,
        value=lo, upper=hi, attainment=_num(best.get("slo_attainment")), offered_rps=_num(best.get("offered_rps")),
        request_rate_rps=_num(best.get("request_rate_rps")), goodput_rps=goodput, goodput_rps_per_gpu=per_gpu,
        goodput_per_usd=per_usd, num_gpus=int(gpus) if gpus is not None else None, usd_per_hour=usd_per_hour,
        probes=sorted(probes, key=lambda p: p.value))


# ---------------------------------------------------------------------------- CLI


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim capacity``."""
    p = sub.add_parser("capacity", help="highest request rate meeting the SLOs at an attainment")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--slo", default="", help="SLOs in seconds, e.g. ttft=0.5,tpot=0.05 (default: the config's)")
    p.add_argument("--attainment", type=float, default=0.9, help="share of requests meeting every SLO")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted path")
    p.add_argument("--param", default=None, help="dotted key of the rate knob (default: from the workload)")
    p.add_argument("--start", type=float, default=None, help="first value of the knob (default: configured)")
    p.add_argument("--rtol", type=float, default=0.02, help="stop when the bracket is this close (relative)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_capacity)


def cmd_capacity(args: argparse.Namespace) -> int:
    """Handler of ``servesim capacity``."""
    slo = parse_slo(args.slo)
    data = load_yaml(args.config)
    try:
        param = args.param or rate_param(schema.to_dict(from_dict(data, args.overrides)))
    except ConfigError as exc:
        raise exc.in_file(args.config) from None

    def show(p: Probe) -> None:
        if not args.json:
            mark = "pass" if p.passed else "fail"
            print(f"  probe {param}={p.value:<10.4g} offered {p.offered_rps:8.3f} req/s  "
                  f"attainment {_pct(p.attainment):>6}  {mark}", file=sys.stderr)

    result = find_capacity(data, attainment=args.attainment, slo=slo, overrides=args.overrides,
                           param=param, start=args.start, rtol=args.rtol, on_probe=show)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_capacity(result, args.config))
    return 0 if result.value is not None else 1


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _money(v: float, unit: str) -> str:
    return "n/a (no GPU price in the catalog)" if v != v or math.isinf(v) else f"{v:.4g} {unit}"


def format_capacity(r: CapacityResult, source: str = "") -> str:
    """A short report of a capacity search."""
    slo = ", ".join(f"{k.removesuffix('_s')} <= {v:g} s" for k, v in r.slo.items() if v is not None) or "none"
    head = f"servesim capacity {source}".rstrip()
    lines = [f"{head}: SLO {slo}; target attainment {_pct(r.target_attainment)}"]
    if r.value is None:
        lines.append(f"  no rate meets the SLOs: even {r.param}={r.upper:.4g} fails")
        return "\n".join(lines)
    upper = f"{r.upper:.4g}" if r.upper is not None else "none found"
    lines += [
        f"  {r.param:<22} {r.value:.4g} (lowest failing: {upper}; tolerance {100 * r.rtol:g}%)",
        f"  {'offered request rate':<22} {r.offered_rps:.3f} req/s",
        f"  {'served request rate':<22} {r.request_rate_rps:.3f} req/s (requests / span to last finish)",
        f"  {'SLO attainment':<22} {_pct(r.attainment)}",
        f"  {'goodput':<22} {r.goodput_rps:.3f} req/s",
        f"  {'goodput per GPU':<22} {r.goodput_rps_per_gpu:.3f} req/s ({r.num_gpus} GPUs)",
        f"  {'goodput per dollar':<22} {_money(r.goodput_per_usd, 'requests/$')}",
        f"  {'probes':<22} {len(r.probes)}",
    ]
    return "\n".join(lines)
