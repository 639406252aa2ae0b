"""Transforms for long-context studies: inject very long prompts, prioritise short ones.

``inject_long_inputs`` reproduces PecSched's setup (Azure conversation trace with the top 5%
of inputs replaced by 100K-500K-token inputs): it buffers the whole stream to find the
quantile, so use it on traces that fit in memory. ``priority_by_length`` gives prompts at or
below a threshold priority 0 and longer ones priority 1: with a scheduler's
``order: priority`` that is the strict short-first baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import ConfigError
from sim.schema import param
from traces.transforms import TRANSFORMS, Stream, Transform


@dataclass
class InjectLongInputsParams:
    """Which prompts become long, and how long."""

    top_fraction: float = param(0.05, gt=0, lt=1, doc="share of requests, longest prompts first, made long")
    min_tokens: int = param(100_000, ge=1, doc="shortest injected prompt")
    max_tokens: int = param(500_000, ge=1, doc="longest injected prompt (uniform in between)")

    def validate(self) -> None:
        if self.max_tokens < self.min_tokens:
            raise ConfigError("must be >= min_tokens", "max_tokens")


@TRANSFORMS.register("inject_long_inputs")
class InjectLongInputs(Transform):
    """Replace the longest ``top_fraction`` of prompts by uniform [min, max]-token prompts."""

    Params = InjectLongInputsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        requests = list(stream)
        if not requests:
            return
        lengths = np.array([r.input_tokens for r in requests])
        num_long = int(round(p.top_fraction * len(requests)))
        chosen = set(np.argsort(-lengths, kind="stable")[:num_long].tolist())
        new_lengths = rng.integers(p.min_tokens, p.max_tokens + 1, size=num_long)
        self.counts["num_long_injected"] = num_long  # before yielding: a later max_requests may stop early
        k = 0
        for i, req in enumerate(requests):
            if i in chosen:
                req.input_tokens = int(new_lengths[k])
                req.prefix_hashes = None
                k += 1
            yield req


@dataclass
class PriorityByLengthParams:
    """The short/long boundary."""

    long_input_tokens: int = param(ge=1, doc="prompts longer than this get priority 1, others 0")


@TRANSFORMS.register("priority_by_length")
class PriorityByLength(Transform):
    """Priority 0 for short prompts, 1 for long ones (strict short-first with order: priority)."""

    Params = PriorityByLengthParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        limit = self.params.long_input_tokens
        for req in stream:
            req.priority = 1 if req.input_tokens > limit else 0
            yield req
