"""The ``synthetic`` workload: an arrival process times a length distribution, open loop.

The flat keys (``rate_rps``, ``input_tokens[_max]``, ``output_tokens[_max]``) give Poisson
arrivals with fixed or uniform lengths; ``arrival:`` and ``lengths:`` replace them::

    workload:
      name: synthetic
      num_requests: 2000
      arrival: {name: gamma, rate_rps: 8, cv: 4}
      lengths:
        input: {name: lognormal, median_tokens: 800, sigma: 1.1, max_tokens: 16000}
        output: {name: uniform, min_tokens: 16, max_tokens: 512}
      transforms: [{name: assign_clients, num_clients: 4}]

Draws, in order, from the run's generator: all arrival times, all input lengths, all output
lengths (so the flat-key form reproduces the original generator exactly); transforms get
child generators.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.engine.request import Request
from sim.errors import ConfigError
from sim.registry import WORKLOADS
from sim.schema import param
from sim.workload import Workload
from traces.arrivals import ArrivalSpec, poisson
from traces.lengths import LengthSampler, LengthsConfig, legacy_lengths
from traces.stream import make_request, numbered
from traces.transforms import Pipeline, TransformSpec


@dataclass
class SyntheticParams:
    """Synthetic arrivals and lengths (Poisson and fixed/uniform unless told otherwise)."""

    num_requests: int = param(1000, ge=1, doc="requests to generate")
    rate_rps: float = param(1.0, gt=0, doc="Poisson arrival rate, requests per second (if no arrival:)")
    input_tokens: int = param(512, ge=1, doc="prompt length (lower bound if input_tokens_max set)")
    input_tokens_max: int | None = param(None, ge=1, doc="upper bound of a uniform prompt length")
    output_tokens: int = param(128, ge=1, doc="output length (lower bound if output_tokens_max set)")
    output_tokens_max: int | None = param(None, ge=1, doc="upper bound of a uniform output length")
    arrival: ArrivalSpec | None = param(None, doc="arrival process (overrides rate_rps)")
    lengths: LengthsConfig | None = param(None, doc="length distributions or file (overrides the *_tokens keys)")
    transforms: list[TransformSpec] = param(default_factory=list, doc="stream transforms, in order")

    def validate(self) -> None:
        if self.input_tokens_max is not None and self.input_tokens_max < self.input_tokens:
            raise ConfigError("must be >= input_tokens", "input_tokens_max")
        if self.output_tokens_max is not None and self.output_tokens_max < self.output_tokens:
            raise ConfigError("must be >= output_tokens", "output_tokens_max")


def build_lengths(params: Any) -> LengthSampler:
    """The length sampler of a params block with ``lengths`` and the flat ``*_tokens`` keys."""
    if params.lengths is not None:
        return LengthSampler(params.lengths)
    return LengthSampler(LengthsConfig(
        input=legacy_lengths(params.input_tokens, params.input_tokens_max),
        output=legacy_lengths(params.output_tokens, params.output_tokens_max),
    ))


@WORKLOADS.register("synthetic")
class SyntheticWorkload(Workload):
    """Seeded synthetic requests: any registered arrival process and length distribution."""

    Params = SyntheticParams

    def __init__(self, params: SyntheticParams):
        self.params = params
        self.process = params.arrival.build() if params.arrival is not None else poisson(params.rate_rps)
        self.lengths = build_lengths(params)
        self.pipeline = Pipeline(params.transforms)
        self.counts: Counter = Counter()

    def requests(self, rng: np.random.Generator) -> Iterator[Request]:
        p = self.params
        self.counts = Counter()
        arrivals = self.process.times(rng, p.num_requests)
        n_in, n_out = self.lengths.sample(rng, p.num_requests)
        stream = _requests(p.num_requests, arrivals, n_in, n_out, self.counts)
        return numbered(self.pipeline.apply(stream, rng), self.counts)

    def describe(self) -> dict[str, Any]:
        return {f"workload_{k}": v for k, v in {**self.counts, **self.pipeline.counts()}.items()}


_CHUNK = 4096  # requests whose numbers are taken from the arrays as Python numbers at a time


def _requests(n: int, arrivals: np.ndarray, n_in: np.ndarray, n_out: np.ndarray,
              counts: Counter) -> Iterator[Request]:
    """``make_request(i, float(arrivals[i]), int(n_in[i]), int(n_out[i]), counts)`` for i < n, the
    numbers read ``_CHUNK`` at a time through ``tolist`` (the same Python floats and ints as
    ``float`` / ``int`` of each element). Arrays of other kinds (float lengths, integer times) go
    element by element, as written above."""
    if not (isinstance(arrivals, np.ndarray) and arrivals.dtype == np.float64 and isinstance(n_in, np.ndarray)
            and isinstance(n_out, np.ndarray) and n_in.dtype.kind in "iu" and n_out.dtype.kind in "iu"):
        for i in range(n):
            yield make_request(i, float(arrivals[i]), int(n_in[i]), int(n_out[i]), counts)
        return
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for i, t, a, b in zip(range(start, stop), arrivals[start:stop].tolist(), n_in[start:stop].tolist(),
                              n_out[start:stop].tolist(), strict=True):
            yield make_request(i, t, a, b, counts)
