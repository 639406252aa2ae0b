"""Request-stream transforms, composable in YAML as a ``transforms:`` list.

Each transform is registered in ``TRANSFORMS`` and maps a stream of requests (in arrival
order) to another stream, lazily, so traces of any size stream through::

    transforms:
      - {name: window, start_s: 600, duration_s: 300}
      - {name: rate_scale, factor: 2.0}
      - {name: clip_lengths, max_context_tokens: 8192}
      - {name: assign_clients, num_clients: 8, zipf_a: 1.2}

They run in list order; ids are renumbered 0..N-1 afterwards by the workload. ``counts``
holds what a transform did (``num_clipped`` ...) for the workload's ``describe()``.
Random choices use the generator handed to ``apply`` (one per transform per run).

This module holds the base class, the pipeline and the transforms that shape the stream (time
window, rate, count, lengths); the labelling ones are in ``traces/labels.py``, the multi-tenant
load in ``traces/tenant_load.py`` (others, such as ``traces/multi_model.py``, register beside their
workloads). The registry imports a transform's module when a config first names it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.config import PolicySpec
from sim.engine.request import Request
from sim.errors import ConfigError
from sim.registry import Registry
from sim.schema import param

TRANSFORMS = Registry("transform")
Stream = Iterator[Request]


class Transform:
    """Base class: ``apply(stream, rng)`` yields the transformed stream; ``counts`` reports."""

    def __init__(self, params: object):
        self.params = params
        self.counts: Counter = Counter()

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        raise NotImplementedError


class ChunkedChoice:
    """Weighted random indices drawn a chunk at a time (fast per-request choices)."""

    def __init__(self, rng: np.random.Generator, weights: list[float] | np.ndarray, chunk: int = 4096):
        w = np.asarray(weights, dtype=np.float64)
        self.rng, self.p, self.chunk = rng, w / w.sum(), chunk
        self._buf: list[int] = []

    def __call__(self) -> int:
        if not self._buf:
            self._buf = self.rng.choice(len(self.p), size=self.chunk, p=self.p).tolist()[::-1]
        return self._buf.pop()


def _check_weights(weights: list[float] | None, n: int, key: str = "weights") -> None:
    if weights is None:
        return
    if len(weights) != n:
        raise ConfigError(f"needs {n} entries, got {len(weights)}", key)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("weights must be >= 0 with a positive sum", key)


# ---------------------------------------------------------------------------- time
@dataclass
class WindowParams:
    """Keep the requests arriving in [start_s, start_s + duration_s)."""

    start_s: float = param(0.0, ge=0, doc="window start, seconds on the trace clock")
    duration_s: float | None = param(None, gt=0, doc="window length (null: to the end)")
    rebase: bool = param(True, doc="shift arrivals so the window starts at 0")


@TRANSFORMS.register("window")
class Window(Transform):
    """A time slice of the stream (stops reading the file once past the end)."""

    Params = WindowParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        end = None if p.duration_s is None else p.start_s + p.duration_s
        shift = p.start_s if p.rebase else 0.0
        for req in stream:
            if req.arrival_s < p.start_s:
                self.counts["num_before_window"] += 1
                continue
            if end is not None and req.arrival_s >= end:
                return
            req.arrival_s -= shift
            if req.deadline_s is not None:
                req.deadline_s -= shift
            yield req


@dataclass
class RateScaleParams:
    """Multiply the arrival rate: inter-arrival times are divided by ``factor``."""

    factor: float = param(1.0, gt=0, doc="> 1 compresses time (more load), < 1 stretches it")


@TRANSFORMS.register("rate_scale")
class RateScale(Transform):
    """Compress or stretch the arrival clock (deadlines move with it)."""

    Params = RateScaleParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        f = self.params.factor
        for req in stream:
            req.arrival_s /= f
            if req.deadline_s is not None:
                req.deadline_s /= f
            yield req


# ---------------------------------------------------------------------------- count
@dataclass
class SubsampleParams:
    """Keep each request independently with probability ``fraction``."""

    fraction: float = param(0.5, gt=0, le=1, doc="share of requests kept")


@TRANSFORMS.register("subsample")
class Subsample(Transform):
    """Bernoulli thinning: lowers the rate, keeps the burst shape."""

    Params = SubsampleParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        keep = ChunkedChoice(rng, [1 - self.params.fraction, self.params.fraction])
        for req in stream:
            if keep():
                yield req
            else:
                self.counts["num_subsampled_out"] += 1


@dataclass
class MaxRequestsParams:
    """Stop after ``count`` requests."""

    count: int = param(1000, ge=1, doc="requests kept")


@TRANSFORMS.register("max_requests")
class MaxRequests(Transform):
    """Truncate the stream (stops reading the file)."""

    Params = MaxRequestsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        n = self.params.count
        if n <= 0:
            return
        for i, req in enumerate(stream, start=1):
            yield req
            if i >= n:
                return


# ---------------------------------------------------------------------------- lengths
@dataclass
class ClipLengthsParams:
    """Fit requests into a model's context (prompt truncated first, by default)."""

    max_context_tokens: int | None = param(None, ge=2, doc="limit on input + output tokens")
    max_input_tokens: int | None = param(None, ge=1, doc="limit on the prompt")
    max_output_tokens: int | None = param(None, ge=1, doc="limit on the answer")
    shorten: Literal["input", "output"] = param("input", doc="over the context: truncate this one first")
    drop: bool = param(False, doc="drop over-long requests instead of clipping them")

    def validate(self) -> None:
        if self.max_context_tokens is None and self.max_input_tokens is None and self.max_output_tokens is None:
            raise ConfigError("set at least one of max_context_tokens, max_input_tokens, max_output_tokens")


@TRANSFORMS.register("clip_lengths")
class ClipLengths(Transform):
    """Clip (or drop) requests longer than the limits; counts ``num_clipped``/``num_dropped_long``."""

    Params = ClipLengthsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        self.counts["num_dropped_long" if p.drop else "num_clipped"] = 0
        for req in stream:
            n_in, n_out = req.input_tokens, req.output_tokens
            if p.max_input_tokens is not None:
                n_in = min(n_in, p.max_input_tokens)
            if p.max_output_tokens is not None:
                n_out = min(n_out, p.max_output_tokens)
            limit = p.max_context_tokens
            if limit is not None and n_in + n_out > limit:
                if p.shorten == "input":  # truncate the prompt, keep the answer if it fits
                    n_in = max(1, limit - n_out)
                    n_out = min(n_out, limit - n_in)
                else:
                    n_out = max(1, limit - n_in)
                    n_in = min(n_in, limit - n_out)
            if (n_in, n_out) != (req.input_tokens, req.output_tokens):
                if p.drop:
                    self.counts["num_dropped_long"] += 1
                    continue
                self.counts["num_clipped"] += 1
                req.input_tokens, req.output_tokens = n_in, n_out
            yield req


class TransformSpec(PolicySpec):
    """``{name: <transform>, ...params}`` in YAML."""

    registry = TRANSFORMS


class Pipeline:
    """A list of transforms applied in order, with their counts merged for ``describe()``."""

    def __init__(self, specs: list[TransformSpec]):
        self.transforms: list[Transform] = [spec.build() for spec in specs]

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        """The stream through every transform; each gets its own child generator."""
        children = rng.spawn(len(self.transforms)) if self.transforms else []
        for transform, child in zip(self.transforms, children, strict=True):
            transform.counts.clear()
            stream = transform.apply(stream, child)
        return stream

    def counts(self) -> dict[str, int]:
        """Every transform's counts, summed by key."""
        total: Counter = Counter()
        for transform in self.transforms:
            total.update(transform.counts)
        return dict(total)
