"""The arrival processes beside Poisson: ``gamma`` (bursty renewal), ``mmpp`` (on/off), ``diurnal``,
``phases`` (piecewise-constant rates) and ``all_at_once``.

Registered in ``traces.arrivals.ARRIVALS`` like ``poisson`` (``traces/arrivals.py`` says what a process
gives); kept apart so that a run imports the processes it names only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sim.errors import ConfigError
from sim.schema import param
from traces.arrivals import _CHUNK, ARRIVALS, ArrivalProcess, RenewalProcess, poisson_segment


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
