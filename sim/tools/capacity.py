"""Capacity search: the highest load that still meets the SLOs, measured in steady state.

As DistServe, Splitwise and Sarathi-Serve measure it: scale the workload's load knob, run,
score the run inside its steady-state window (``sim.tools.capacity_slo``: warm-up and drain
excluded, per-request attainment and percentile SLOs), and keep the highest passing value.
The search doubles (or halves) from the configured value until the target is bracketed,
never beyond ``max_value``, then bisects until the bracket is within ``rtol`` of its low end::

    attainment
      1 |#####.
        |      ##.
 target |- - - - -#- - - - -     lo = highest passing value, hi = lowest failing value
        |          ##           stop when hi - lo <= rtol * lo   (max_value caps the doubling)
      0 +---------|-|------> load knob
                 lo hi

The knob (``rate_param``): the arrival process's rate when the workload has an ``arrival:``
block (Poisson on a length file, or any synthetic arrival process), ``workload.rate_scale``
for a trace replayed on its own timestamps, ``workload.rate_rps`` for flat synthetic
workloads, and ``workload.num_users`` (an integer) for closed-loop ones. With ``seeds`` > 1
the search runs once per seed (``seed``, ``seed + 1``, ...) and reports the mean capacity
with a 95% confidence interval (Student t) besides each seed's.
"""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sim import schema
from sim.config import from_dict, load_yaml, set_dotted, split_path
from sim.errors import ConfigError, ServesimError
from sim.tools.capacity_slo import PER_REQUEST, SloSpec, WindowStats, coerce_spec, evaluate, mean_ci95

SLO_KEYS = PER_REQUEST


@dataclass
class Probe:
    """One run of the search: the knob's value and what its steady-state window achieved."""

    seed: int
    value: float
    attainment: float
    offered_rps: float
    served_rps: float
    goodput_rps: float
    percentiles: dict[str, float]
    window_s: float
    max_e2e_s: float
    steady: bool
    passed: bool


@dataclass
class SeedCapacity:
    """The search of one seed: highest passing value, lowest failing one, and the best run."""

    seed: int
    value: float | None          # highest passing value (None: even the lowest probe failed)
    upper: float | None          # lowest failing value above it (None: passed up to max_value)
    at_bound: bool               # the highest probe allowed (max_value) still passed
    best: WindowStats | None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class CapacityResult:
    """Mean over seeds of the highest passing value of the load knob, and its runs' numbers."""

    param: str
    target_attainment: float
    slo: dict[str, Any]
    rtol: float
    max_value: float
    value: float | None          # mean over seeds (None when a seed found no passing value)
    value_ci95: float            # half-width of the 95% confidence interval of ``value``
    upper: float | None          # seed 0's lowest failing value
    at_bound: bool               # some seed still passed at max_value: capacity is at least value
    steady: bool                 # every seed's best window was steady (see capacity_slo)
    attainment: float
    offered_rps: float
    offered_rps_ci95: float
    served_rps: float
    request_rate_rps: float      # kept for callers: the served rate
    goodput_rps: float
    goodput_rps_per_gpu: float
    goodput_per_usd: float       # requests meeting the SLOs per dollar (nan without prices)
    num_gpus: int | None
    usd_per_hour: float
    window_s: float
    max_e2e_s: float
    percentiles: dict[str, float]
    seeds: list[dict[str, Any]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        from sim.tools.output import json_safe

        return json_safe(asdict(self))


def parse_slo(text: str) -> dict[str, float]:
    """``ttft=0.5,tpot=0.05`` -> {'ttft_s': 0.5, 'tpot_s': 0.05} (per-request SLOs only)."""
    spec = coerce_spec(text)
    if spec.percentiles:
        raise ConfigError(f"percentile SLOs ({spec.percentiles[0].key}) need parse_slo_spec")
    return spec.per_request


def rate_param(data: dict) -> str:
    """The dotted key of a config mapping's load knob (see the module docstring)."""
    workload = from_dict(data).workload
    params = workload.params
    arrival = getattr(params, "arrival", None)
    if arrival is not None:
        for name in ("rate_rps", "mean_rate_rps"):
            if hasattr(arrival.params, name):
                return f"workload.arrival.{name}"
    if hasattr(params, "rate_scale"):
        return "workload.rate_scale"
    if hasattr(params, "rate_rps"):
        return "workload.rate_rps"
    if hasattr(params, "num_users"):
        return "workload.num_users"
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
    slo: SloSpec | dict[str, float] | str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    param: str | None = None,
    start: float | None = None,
    max_value: float | None = None,
    rtol: float = 0.02,
    seeds: int = 1,
    warmup: float = 0.1,
    cooldown: float = 0.1,
    min_window_e2e: float = 5.0,
    max_probes: int = 40,
    on_probe: Callable[[Probe], None] | None = None,
) -> CapacityResult:
    """Bisect, per seed, the highest value of the load knob whose steady-state window meets
    ``slo`` (per-request SLOs at ``attainment``, and every percentile SLO); ``max_value``
    (default 256 x ``start``) caps the search."""
    from sim.api import simulate

    if not 0 < attainment <= 1:
        raise ConfigError(f"attainment must be in (0, 1], got {attainment}")
    if not 0 < rtol < 1:
        raise ConfigError(f"rtol must be in (0, 1), got {rtol}")
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    if not (0 <= warmup < 1 and 0 <= cooldown < 1 and warmup + cooldown < 1):
        raise ConfigError(f"warmup + cooldown must be fractions of the arrival span below 1, got {warmup}, {cooldown}")
    data = load_yaml(config) if isinstance(config, (str, Path)) else copy.deepcopy(config)
    parsed = from_dict(data, overrides)
    data = schema.to_dict(parsed)  # resolved: overrides and defaults written out
    spec = coerce_spec(slo) if slo is not None else coerce_spec(
        {k: v for k, v in data.get("slo", {}).items() if k in PER_REQUEST.values() and v is not None})
    if not spec.per_request and not spec.percentiles:
        raise ConfigError("capacity needs an SLO: --slo ttft=S,tpot=S,e2e=S or p99_tbt=S, ... (or slo: in the config)")
    for key in PER_REQUEST.values():
        set_dotted(data, f"slo.{key}", spec.per_request.get(key))
    set_dotted(data, "engine.progress", False)
    if any(p.metric == "tbt" for p in spec.percentiles):
        set_dotted(data, "output.record_token_times", True)
    param = param or rate_param(data)
    current = get_dotted(data, param)
    integer = isinstance(current, int) and not isinstance(current, bool)
    if start is None:
        if not isinstance(current, (int, float)) or isinstance(current, bool) or current <= 0:
            raise ConfigError(f"cannot scale {param} (value {current!r}); name a positive rate with --param")
        start = float(current)
    max_value = float(max_value) if max_value is not None else start * 256
    if not start <= max_value:
        raise ConfigError(f"--start {start:g} is above --max {max_value:g}")
    base_seed = int(data.get("seed", 0))
    runs: dict[tuple[int, float], tuple[Probe, WindowStats, dict]] = {}

    def probe(seed: int, value: float) -> bool:
        value = float(round(value)) if integer else value
        key = (seed, value)
        if key not in runs:
            if sum(1 for s, _ in runs if s == seed) >= max_probes:
                raise ServesimError(f"capacity search did not converge in {max_probes} probes")
            point = copy.deepcopy(data)
            set_dotted(point, param, int(value) if integer else value)
            point["seed"] = seed
            result = simulate(point)
            w = evaluate(result, spec, attainment, warmup=warmup, cooldown=cooldown, min_window_e2e=min_window_e2e)
            p = Probe(seed, value, w.attainment, w.offered_rps, w.served_rps, w.goodput_rps, w.percentiles,
                      w.duration_s, w.max_e2e_s, w.steady, w.passed)
            runs[key] = (p, w, result.summary)
            if on_probe is not None:
                on_probe(p)
        return runs[key][0].passed

    per_seed: list[SeedCapacity] = []
    for seed in range(base_seed, base_seed + seeds):
        lo, hi = _bracket(lambda v, s=seed: probe(s, v), start, max_value, integer)
        while lo is not None and hi is not None and hi - lo > max(rtol * lo, 1.0 if integer else 0.0):
            mid = math.floor((lo + hi) / 2) if integer else (lo + hi) / 2
            if probe(seed, mid):
                lo = mid
            else:
                hi = mid
        best = runs[(seed, float(lo))] if lo is not None else None
        per_seed.append(SeedCapacity(seed, lo, hi, lo is not None and hi is None,
                                     best[1] if best else None, best[2] if best else {}))
    probes = sorted((r[0] for r in runs.values()), key=lambda p: (p.seed, p.value))
    return _result(param, attainment, spec, rtol, max_value, per_seed, probes)


def _bracket(probe: Callable[[float], bool], start: float, max_value: float, integer: bool,
             limit: int = 30) -> tuple[float | None, float | None]:
    """Double (up to ``max_value``) or halve from ``start`` until a pass sits below a fail."""
    if probe(start):
        lo = start
        for _ in range(limit):
            if lo >= max_value:
                return lo, None
            value = min(lo * 2, max_value)
            if not probe(value):
                return lo, value
            lo = value
        return lo, None
    hi = start
    for _ in range(limit):
        value = math.floor(hi / 2) if integer else hi / 2
        if value <= 0 or value == hi:
            return None, hi
        if probe(value):
            return value, hi
        hi = value
    return None, hi


def offered_rps(requests: Any) -> float:
    """Arrivals per second over the whole arrival span (``capacity_slo`` reports it over the
    steady-state window instead)."""
    if len(requests) < 2:
        return float("nan")
    span = float(requests["arrival_s"].max() - requests["arrival_s"].min())
    return (len(requests) - 1) / span if span > 0 else float("nan")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else float("nan")


def _result(param: str, target: float, spec: SloSpec, rtol: float, max_value: float, per_seed: list[SeedCapacity],
            probes: list[Probe]) -> CapacityResult:
    found = [s for s in per_seed if s.best is not None]
    nan = float("nan")
    value, value_ci = mean_ci95([s.value for s in per_seed]) if len(found) == len(per_seed) else (None, nan)
    offered, offered_ci = mean_ci95([s.best.offered_rps for s in found]) if found else (nan, nan)

    def mean(get: Callable[[SeedCapacity], float]) -> float:
        return mean_ci95([get(s) for s in found])[0] if found else nan

    goodput = mean(lambda s: s.best.goodput_rps)
    first = found[0].summary if found else {}
    cost, duration_s = _num(first.get("cost_usd")), _num(first.get("simulated_duration_s"))
    usd_per_hour = cost / (duration_s / 3600.0) if duration_s > 0 and cost == cost else nan
    gpus = first.get("num_gpus")
    keys = found[0].best.percentiles if found else {}
    return CapacityResult(
        param=param, target_attainment=target, slo=spec.to_dict(), rtol=rtol, max_value=max_value,
        value=value, value_ci95=value_ci, upper=per_seed[0].upper, at_bound=any(s.at_bound for s in per_seed),
        steady=bool(found) and all(s.best.steady for s in found), attainment=mean(lambda s: s.best.attainment),
        offered_rps=offered, offered_rps_ci95=offered_ci, served_rps=mean(lambda s: s.best.served_rps),
        request_rate_rps=mean(lambda s: s.best.served_rps), goodput_rps=goodput,
        goodput_rps_per_gpu=goodput / gpus if gpus else nan,
        goodput_per_usd=goodput * 3600.0 / usd_per_hour if usd_per_hour > 0 else nan,
        num_gpus=int(gpus) if gpus is not None else None, usd_per_hour=usd_per_hour,
        window_s=mean(lambda s: s.best.duration_s), max_e2e_s=mean(lambda s: s.best.max_e2e_s),
        percentiles={k: mean(lambda s, k=k: s.best.percentiles[k]) for k in keys},
        seeds=[{"seed": s.seed, "value": s.value, "upper": s.upper, "at_bound": s.at_bound,
                "offered_rps": s.best.offered_rps if s.best else nan, "steady": s.best.steady if s.best else False,
                "window_s": s.best.duration_s if s.best else nan, "max_e2e_s": s.best.max_e2e_s if s.best else nan}
               for s in per_seed],
        probes=probes)


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim capacity`` (sim.tools.capacity_cli)."""
    from sim.tools.capacity_cli import register

    register(sub)
