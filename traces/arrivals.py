"""Arrival processes for synthetic workloads and length-only traces.

Each process is registered in ``ARRIVALS`` and chosen in YAML by name, e.g.
``arrival: {name: gamma, rate_rps: 4, cv: 3}``. A process gives arrival times in seconds,
non-decreasing, with the first arrival at 0:

- ``times(rng, n)``: the first ``n`` times as an array;
- ``iter_times(rng)``: an endless stream (drawn in chunks), for streaming traces.

All randomness comes from the ``rng`` passed in. This module holds the base classes, ``poisson``
(the synthetic workload's default) and ``ArrivalSpec``; the other processes are in
``traces/arrival_processes.py``, imported when a config first names one.
"""

from __future__ import annotations

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


class ArrivalSpec(PolicySpec):
    """``arrival: {name: <process>, ...params}`` in YAML."""

    registry = ARRIVALS


def poisson(rate_rps: float) -> ArrivalProcess:
    """A Poisson process (the default arrival of the synthetic workload)."""
    if rate_rps <= 0:
        raise ConfigError("must be > 0", "rate_rps")
    return Poisson(PoissonParams(rate_rps))
