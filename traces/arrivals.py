"""Arrival processes for synthetic workloads and length-only traces.

Each process is registered in ``ARRIVALS`` and chosen in YAML by name, e.g.
``arrival: {name: gamma, rate_rps: 4, cv: 3}``. A process gives arrival times in seconds,
non-decreasing, with the first arrival at 0:

- ``times(rng, n)``: the first ``n`` times as an array;
- ``iter_times(rng)``: an endless stream (drawn in chunks), for streaming traces.

All randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np

from sim.config import PolicySpec
from sim.errors import ConfigError
from sim.registry import Registry
from sim.schema import param

ARRIVALS = Registry("arrival process")
_CHUNK = 8192



def poisson_segment(rng: np.random.Generator, start_s: float, period_s: float, rate_rps: float) -> list[float]:
    """Arrival times of a Poisson process of ``rate_rps`` on [start_s, start_s + period_s): a
    Poisson count, uniform positions, sorted."""
    if rate_rps <= 0:
        return []
    count = rng.poisson(rate_rps * period_s)
    return np.sort(rng.uniform(start_s, start_s + period_s, size=count)).tolist()

class ArrivalProcess:
    """Base class: subclasses implement ``iter_times`` (and may speed up ``times``)."""

    def iter_times(self, rng: np.random.Generator) -> Iterator[float]:
        """Arrival times forever, starting at 0."""
        raise NotImplementedError

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The first ``n`` arrival times."""
        return np.fromiter(islice(self.iter_times(rng), n), dtype=np.float64, count=n)


class RenewalProcess(ArrivalProcess):
    """Arrivals with independent, identically distributed gaps drawn by ``gaps(rng, n)``."""

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        gaps = self.gaps(rng, n)
        if n == 0:
            return gaps
        return np.cumsum(gaps) - gaps[0]

    def iter_times(self, rng: np.random.Generator) -> Iterator[float]:
        t = None
        while True:
            gaps = self.gaps(rng, _CHUNK)
            if t is None:
                gaps[0] = 0.0  # the first arrival is at 0
                t = 0.0
            times = t + np.cumsum(gaps)
            t = float(times[-1])
            yield from times.tolist()


@dataclass
class PoissonParams:
    """Exponential gaps: a memoryless stream at a fixed mean rate."""

    rate_rps: float = param(1.0, gt=0, doc="mean arrival rate, requests per second")


@ARRIVALS.register("poisson")
class Poisson(RenewalProcess):
    """Poisson arrivals (inter-arrival CV = 1)."""

    Params = PoissonParams

    def __init__(self, params: PoissonParams):
        self.params = params

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(1.0 / self.params.rate_rps, size=n)


@dataclass
class GammaParams:
    """Gamma-distributed gaps with a chosen coefficient of variation (burstiness)."""

    rate_rps: float = param(1.0, gt=0, doc="mean arrival rate, requests per second")
    cv: float = param(1.0, gt=0, doc="inter-arrival coefficient of variation (1 = Poisson, >1 bursty)")


@ARRIVALS.register("gamma")
class Gamma(RenewalProcess):
    """Gamma renewal arrivals: shape 1/cv^2, mean gap 1/rate."""

    Params = GammaParams

    def __init__(self, params: GammaParams):
        self.params = params

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.params.cv**2
        return rng.gamma(shape, 1.0 / (self.params.rate_rps * shape), size=n)


@dataclass
class OnOffParams:
    """A two-state Markov-modulated Poisson process: bursts (on) and lulls (off)."""

    rate_on_rps: float = param(10.0, gt=0, doc="arrival rate while on")
    rate_off_rps: float = param(0.0, ge=0, doc="arrival rate while off")
    mean_on_s: float = param(10.0, gt=0, doc="mean length of an on period (exponential)")
    mean_off_s: float = param(30.0, gt=0, doc="mean length of an off period (exponential)")


@ARRIVALS.register("mmpp")
class OnOff(ArrivalProcess):
    """On/off bursts; mean rate = (on*mean_on + off*mean_off) / (mean_on + mean_off)."""

    Params = OnOffParams

    def __init__(self, params: OnOffParams):
        self.params = params

    def iter_times(self, rng: np.random.Generator) -> Iterator[float]:
        p = self.params
        t, on, first = 0.0, True, None
        while True:
            period = rng.exponential(p.mean_on_s if on else p.mean_off_s)
            rate = p.rate_on_rps if on else p.rate_off_rps
            end = t + period
            for x in poisson_segment(rng, t, period, rate):
                if first is None:
                    first = x
                yield x - first
            t, on = end, not on


@dataclass
class DiurnalParams:
    """A Poisson process whose rate follows a cosine day curve."""

    mean_rate_rps: float = param(1.0, gt=0, doc="rate averaged over a period")
    amplitude: float = param(0.5, ge=0, le=1, doc="relative swing: rate = mean * (1 + amplitude * cos)")
    period_s: float = param(86400.0, gt=0, doc="length of one cycle")
    peak_s: float = param(0.0, doc="time of the rate peak within the cycle")


@ARRIVALS.register("diurnal")
class Diurnal(ArrivalProcess):
    """Non-homogeneous Poisson arrivals by thinning a stream at the peak rate."""

    Params = DiurnalParams

    def __init__(self, params: DiurnalParams):
        self.params = params

    def rate_at(self, t: np.ndarray | float) -> np.ndarray | float:
        """The instantaneous rate (requests per second) at time ``t``."""
        p = self.params
        return p.mean_rate_rps * (1 + p.amplitude * np.cos(2 * math.pi * (np.asarray(t) - p.peak_s) / p.period_s))

    def iter_times(self, rng: np.random.Generator) -> Iterator[float]:
        peak = self.params.mean_rate_rps * (1 + self.params.amplitude)
        t, first = 0.0, None
        while True:
            cand = t + np.cumsum(rng.exponential(1.0 / peak, size=_CHUNK))
            t = float(cand[-1])
            keep = cand[rng.uniform(size=_CHUNK) * peak < self.rate_at(cand)]
            for x in keep.tolist():
                if first is None:
                    first = x
                yield x - first


@dataclass
class PhasesParams:
    """A Poisson process whose rate steps through phases (e.g. base, burst, base)."""

    rates_rps: list[float] = param(default_factory=lambda: [2.0, 10.0, 2.0], doc="rate of each phase (0: silent)")
    durations_s: list[float] = param(default_factory=lambda: [30.0, 60.0, 60.0], doc="length of each phase")
    repeat: bool = param(False, doc="cycle through the phases again after the last (else its rate goes on)")

    def validate(self) -> None:
        if not self.rates_rps or len(self.rates_rps) != len(self.durations_s):
            raise ConfigError("rates_rps and durations_s need the same, non-zero number of entries", "durations_s")
        if any(r < 0 for r in self.rates_rps):
            raise ConfigError("rates must be >= 0", "rates_rps")
        if any(d <= 0 for d in self.durations_s):
            raise ConfigError("durations must be > 0", "durations_s")
        if self.rates_rps[-1] <= 0 and not self.repeat:
            raise ConfigError("the last phase goes on forever: its rate must be > 0 (or set repeat)", "rates_rps")
        if self.repeat and not any(r > 0 for r in self.rates_rps):
            raise ConfigError("some phase needs a rate > 0", "rates_rps")


@ARRIVALS.register("phases")
class Phases(ArrivalProcess):
    """Piecewise-constant Poisson arrivals: a rate step (burst) is ``[base, burst, base]``.

    Times are on the phase clock (phase k starts at the sum of the earlier durations) shifted
    so the first arrival is at 0, like every process here (a silent first phase is cut off)."""

    Params = PhasesParams

    def __init__(self, params: PhasesParams):
        self.params = params

    def phase_start_s(self, k: int) -> float:
        """When phase ``k`` starts on the phase clock (before the shift to the first arrival)."""
        return float(sum(self.params.durations_s[:k]))

    def iter_times(self, rng: np.random.Generator) -> Iterator[float]:
        p = self.params
        t, k, first = 0.0, 0, None
        last = len(p.rates_rps) - 1
        while True:
            rate = p.rates_rps[k]
            period = p.durations_s[k] if (k < last or p.repeat) else 3600.0  # the last phase, an hour at a time
            end = t + period
            for x in poisson_segment(rng, t, period, rate):
                if first is None:
                    first = x
                yield x - first
            t = end
            if k < last:
                k += 1
            elif p.repeat:
                k = 0


@dataclass
class AllAtOnceParams:
    """Every request arrives at the same instant (an offline batch)."""

    at_s: float = param(0.0, ge=0, doc="the arrival time of every request")


@ARRIVALS.register("all_at_once")
class AllAtOnce(ArrivalProcess):
    """A static batch: all arrivals at ``at_s`` (0 by default)."""

    Params = AllAtOnceParams

    def __init__(self, params: AllAtOnceParams):
        self.params = params

    def iter_times(self, rng: np.random.Generator) -> Iterator[float]:
        while True:
            yield self.params.at_s

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.params.at_s)


class ArrivalSpec(PolicySpec):
    """``arrival: {name: <process>, ...params}`` in YAML."""

    registry = ARRIVALS


def poisson(rate_rps: float) -> ArrivalProcess:
    """A Poisson process (the default arrival of the synthetic workload)."""
    if rate_rps <= 0:
        raise ConfigError("must be > 0", "rate_rps")
    return Poisson(PoissonParams(rate_rps))
