"""A predictor with multiplicative lognormal error: prediction = truth x exp(e), e ~ N(mu, sigma).

The usual way papers sweep predictor quality (e.g. CacheOPT and GoodServe vary the error of
their length predictor). ``sigma`` is the standard deviation of the log error: 0.5 puts about
68% of predictions within a factor exp(0.5) = 1.65 of the truth. ``unbiased: mean`` sets
mu = -sigma^2 / 2 so the prediction is right on average; the default ``median`` (mu = 0) is
right half the time on either side. Draws come from the predictor's own rng, one per request,
in the order policies first ask (deterministic for a given config and seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from policies.predictors.base import PredictorBase
from sim.engine.views import RequestView
from sim.registry import PREDICTORS
from sim.schema import param


@dataclass
class NoisyParams:
    """Size and centring of the log error."""

    sigma: float = param(0.5, ge=0, doc="standard deviation of the log of prediction / truth")
    unbiased: Literal["median", "mean"] = param("median", doc="centre the error on the median or the mean")


@PREDICTORS.register("noisy")
class NoisyPredictor(PredictorBase):
    """The truth times a lognormal error drawn per request."""

    Params = NoisyParams

    def _predict(self, req: RequestView) -> float:
        sigma = self.params.sigma
        mu = -0.5 * sigma * sigma if self.params.unbiased == "mean" else 0.0
        return self.truth(req) * math.exp(self.ctx.rng.normal(mu, sigma)) if sigma > 0 else self.truth(req)
