"""SLOs and the steady-state window of a capacity probe, as the serving papers measure them.

Two kinds of SLO, combinable in one ``--slo`` string::

    ttft=0.25,tpot=0.1,e2e=30         per request: a request meets them all or not; the run
                                      passes when the share of window requests meeting them
                                      (the attainment) is >= the target (DistServe, Splitwise)
    p99_tbt=0.1,p50_queueing=2        percentiles over the window: p<q>_<metric> <= limit
                                      (Sarathi-Serve: p99 TBT and median scheduling delay)

Percentile metrics: ``tbt`` (alias ``itl``: every gap between consecutive tokens of the
window's requests, pooled), and per-request ``ttft``, ``tpot``, ``e2e``, ``queueing`` (alias
``sched``: first scheduled - arrival). A window request that was rejected or did not finish
counts as infinitely late in the per-request percentiles.

The window: requests arriving in the middle of the arrival span, the first ``warmup`` and the
last ``cooldown`` fractions of it excluded (start-up on an empty cluster, and the drain at the
end when arrivals stop). Every request still runs to completion. The window is *steady* when
it lasts at least ``min_window_e2e`` times the longest E2E among its requests; a shorter one
(too few requests for the rate, or an overloaded cluster whose latency keeps growing) is
flagged, because what it measures is a transient. Offered rate = window arrivals / window
length; served rate = requests finishing inside the window / window length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.errors import ConfigError

PER_REQUEST = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s"}
METRICS = {"tbt": "tbt", "itl": "tbt", "ttft": "ttft", "tpot": "tpot", "e2e": "e2e", "queueing": "queueing",
           "sched": "queueing"}
_PCT = re.compile(r"^p(\d+(?:\.\d+)?)_([a-z]+)$")


@dataclass(frozen=True)
class PercentileSlo:
    """``p<q>`` of ``metric`` over the window must be <= ``limit_s``."""

    metric: str
    q: float
    limit_s: float

    @property
    def key(self) -> str:
        return f"p{self.q:g}_{self.metric}"


@dataclass
class SloSpec:
    """Per-request SLOs (seconds, keyed ttft_s/tpot_s/e2e_s) and percentile SLOs."""

    per_request: dict[str, float] = field(default_factory=dict)
    percentiles: list[PercentileSlo] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{k.removesuffix('_s')} <= {v:g} s" for k, v in self.per_request.items()]
        parts += [f"{p.key} <= {p.limit_s:g} s" for p in self.percentiles]
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {"per_request": dict(self.per_request),
                "percentiles": {p.key: p.limit_s for p in self.percentiles}}


def _seconds(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"--slo {key}: not a number: {raw!r}") from None
    if not value > 0 or math.isinf(value):
        raise ConfigError(f"--slo {key}: must be a positive number of seconds, got {raw}")
    return value


def parse_slo_spec(text: str) -> SloSpec:
    """``ttft=0.5,p99_tbt=0.1`` -> SloSpec; bad parts raise a one-line ConfigError."""
    spec = SloSpec()
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip().lower().removesuffix("_s")
        if not sep:
            raise ConfigError(f"--slo expects KEY=SECONDS (ttft, tpot, e2e, p99_tbt, p50_queueing, ...), got {part!r}")
        if key in PER_REQUEST:
            spec.per_request[PER_REQUEST[key]] = _seconds(key, raw)
            continue
        m = _PCT.match(key)
        if not m or m.group(2) not in METRICS:
            raise ConfigError(f"--slo: unknown SLO {key!r}; per request: ttft, tpot, e2e; percentiles: "
                              f"p<q>_<metric> with metric in {sorted(METRICS)}")
        q = float(m.group(1))
        if not 0 < q <= 100:
            raise ConfigError(f"--slo {key}: percentile must be in (0, 100], got {q:g}")
        spec.percentiles.append(PercentileSlo(METRICS[m.group(2)], q, _seconds(key, raw)))
    return spec


def coerce_spec(slo: SloSpec | dict | str | None, percentiles: dict[str, float] | None = None) -> SloSpec:
    """A spec from a spec, a per-request mapping ({'ttft_s': 0.5}), or an ``--slo`` string."""
    if isinstance(slo, SloSpec):
        spec = SloSpec(dict(slo.per_request), list(slo.percentiles))
    elif isinstance(slo, str):
        spec = parse_slo_spec(slo)
    else:
        text = ",".join(f"{k}={v}" for k, v in (slo or {}).items() if v is not None)  # None: no limit
        spec = parse_slo_spec(text)
    if percentiles:
        spec.percentiles += parse_slo_spec(",".join(f"{k}={v}" for k, v in percentiles.items())).percentiles
    return spec


@dataclass
class WindowStats:
    """What one run achieved inside its steady-state window."""

    start_s: float
    end_s: float
    num_requests: int
    offered_rps: float
    served_rps: float
    attainment: float                    # share of window requests meeting every per-request SLO
    goodput_rps: float                   # of those, per second of window
    percentiles: dict[str, float]        # each percentile SLO's measured value
    max_e2e_s: float
    steady: bool                         # window >= min_window_e2e x longest E2E
    passed: bool

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def window_bounds(arrivals: np.ndarray, warmup: float, cooldown: float) -> tuple[float, float]:
    """[start, end) of the steady-state window on the arrival clock."""
    t0, t1 = float(arrivals.min()), float(arrivals.max())
    span = t1 - t0
    return t0 + warmup * span, t1 - cooldown * span


def evaluate(result: Any, spec: SloSpec, target: float, *, warmup: float = 0.1, cooldown: float = 0.1,
             min_window_e2e: float = 5.0) -> WindowStats:
    """Score a run (``sim.api.Result``) against ``spec`` inside its steady-state window."""
    df = result.requests
    arrivals = df["arrival_s"].to_numpy(dtype=float)
    nan = float("nan")
    if len(df) < 2:
        return WindowStats(nan, nan, len(df), nan, nan, nan, nan, {}, nan, False, False)
    start, end = window_bounds(arrivals, warmup, cooldown)
    in_window = (arrivals >= start) & (arrivals < end)
    w = df[in_window]
    length = end - start
    if len(w) == 0 or length <= 0:
        return WindowStats(start, end, 0, nan, nan, nan, nan, {}, nan, False, False)
    finished = (w["state"] == "finished").to_numpy()
    e2e = np.where(finished, w["e2e_s"].to_numpy(dtype=float), np.inf)
    max_e2e = float(e2e.max())
    finish_all = df["finish_s"].to_numpy(dtype=float)
    served = int(((finish_all >= start) & (finish_all < end)).sum())
    ok = finished.copy()
    for key, limit in spec.per_request.items():
        vals = w[key].to_numpy(dtype=float)
        if key == "tpot_s":  # one-token requests have no TPOT and meet it
            ok &= np.isnan(vals) | (vals <= limit)
        else:
            ok &= vals <= limit
    attainment = float(ok.mean())
    measured: dict[str, float] = {}
    passed = attainment >= target if spec.per_request else True
    for p in spec.percentiles:
        value = _percentile(result, w, finished, p)
        measured[p.key] = value
        passed &= value <= p.limit_s
    steady = bool(length >= min_window_e2e * max_e2e)
    return WindowStats(start, end, int(len(w)), len(w) / length, served / length, attainment,
                       float(ok.sum()) / length, measured, max_e2e, steady, bool(passed))


def _percentile(result: Any, w: Any, finished: np.ndarray, p: PercentileSlo) -> float:
    if p.metric == "tbt":
        times = result.token_times or {}
        gaps = [np.diff(times[i]) for i in w["id"].to_numpy() if i in times and len(times[i]) > 1]
        if not finished.all():
            return math.inf
        pooled = np.concatenate(gaps) if gaps else np.empty(0)
        return float(np.percentile(pooled, p.q)) if len(pooled) else 0.0
    vals = w[f"{p.metric}_s"].to_numpy(dtype=float)
    vals = np.where(finished, vals, np.inf)
    if p.metric == "tpot":
        vals = vals[~np.isnan(vals)]
    return float(np.percentile(vals, p.q)) if len(vals) else 0.0


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t; 0 for one value)."""
    arr = np.asarray(values, dtype=float)
    if len(arr) == 0:
        return float("nan"), float("nan")
    if len(arr) == 1:
        return float(arr[0]), 0.0
    return float(arr.mean()), float(_T95.get(len(arr) - 1, 1.96) * arr.std(ddof=1) / math.sqrt(len(arr)))


# two-sided 95% Student t quantiles by degrees of freedom (no scipy dependency)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}
