"""A length-bucket classifier: predicts which bucket the output falls in, right with ``accuracy``.

As S3 (Jin et al., NeurIPS'23) and later schedulers do: a classifier over output-length
buckets (edges in tokens) instead of a regression. With probability ``accuracy`` the true
bucket is chosen; otherwise a wrong one, a neighbour (one bucket up or down, equally likely
where both exist) with probability ``neighbour_share`` and any other wrong bucket otherwise.
The prediction is the chosen bucket's ``point``: its upper edge (what a reservation needs,
S3's choice), its geometric middle, or its lower edge; the open top bucket's upper edge is
``max_tokens``. Published classifiers reach 0.6-0.9 accuracy on such buckets (S3 reports
98.6% on its 10 buckets for Alpaca-style data, lower on chat); the default 0.8 is a middle
value, not a paper's figure.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

from policies.predictors.base import PredictorBase
from sim.engine.seams import BuildContext
from sim.engine.views import RequestView
from sim.errors import ConfigError
from sim.registry import PREDICTORS
from sim.schema import param


@dataclass
class BucketParams:
    """Bucket edges, accuracy and where errors go."""

    edges: list[int] = param(default_factory=lambda: [64, 128, 256, 512, 1024, 2048, 4096],
                             doc="bucket boundaries in output tokens, increasing")
    accuracy: float = param(0.8, ge=0, le=1, doc="chance the true bucket is predicted")
    neighbour_share: float = param(1.0, ge=0, le=1, doc="share of errors that land on an adjacent bucket")
    point: Literal["upper", "middle", "lower"] = param("upper", doc="the value predicted for a bucket")
    max_tokens: int = param(16384, ge=1, doc="upper edge of the open top bucket")

    def validate(self) -> None:
        steps = zip(self.edges, self.edges[1:], strict=False)
        if not self.edges or self.edges[0] < 1 or any(b <= a for a, b in steps):
            raise ConfigError("edges must be positive and strictly increasing", "edges")
        if self.max_tokens <= self.edges[-1]:
            raise ConfigError("max_tokens must exceed the last edge", "max_tokens")


@PREDICTORS.register("bucket")
class BucketPredictor(PredictorBase):
    """A classifier over length buckets with a given accuracy and confusion to neighbours."""

    Params = BucketParams

    def __init__(self, params: BucketParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._lower = [1, *params.edges]
        self._upper = [*params.edges, params.max_tokens]

    def bucket_of(self, tokens: int) -> int:
        """Index of the bucket holding ``tokens`` (bucket i is [lower_i, upper_i))."""
        return bisect.bisect_right(self.params.edges, tokens)

    def _choose(self, true_bucket: int) -> int:
        n = len(self._lower)
        rng = self.ctx.rng
        if n == 1 or rng.random() < self.params.accuracy:
            return true_bucket
        neighbours = [b for b in (true_bucket - 1, true_bucket + 1) if 0 <= b < n]
        others = [b for b in range(n) if b != true_bucket and b not in neighbours]
        if not others or rng.random() < self.params.neighbour_share:
            return neighbours[int(rng.integers(len(neighbours)))]
        return others[int(rng.integers(len(others)))]

    def _predict(self, req: RequestView) -> float:
        b = self._choose(self.bucket_of(self.truth(req)))
        lo, hi = self._lower[b], self._upper[b]
        if self.params.point == "upper":
            return hi
        if self.params.point == "lower":
            return lo
        return math.sqrt(lo * hi)
