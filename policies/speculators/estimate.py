"""Online acceptance estimates from observed outcomes (what adaptive speculators learn from).

Each verified step of request i that proposed k tokens and had n accepted observes the rate
x = n / (n + [n < k]) (n successes in that many Bernoulli trials: the first rejection ends
the run). The estimate is an exponentially weighted moving average of x, per request,
starting from the pool-wide estimate (a slower moving average over all requests, starting
from a prior)::

    a_i <- w a_i + (1 - w) x        a_pool <- w_pool a_pool + (1 - w_pool) x
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.speculators.base import DraftParams, SpeculatorBase
from sim.engine.views import RequestView
from sim.schema import param


@dataclass
class OnlineParams(DraftParams):
    """The acceptance estimate's memory and prior (every adaptive speculator's block inherits them)."""

    history_weight: float = param(0.8, ge=0, lt=1,
                                  doc="moving-average weight of a request's past outcomes (assumed)")
    prior_acceptance: float = param(0.7, ge=0, le=1, doc="acceptance assumed before anything is observed")


class OnlineSpeculatorBase(SpeculatorBase):
    """A speculator that learns acceptance online: ``self.estimate`` fed by every verified step."""

    def __init__(self, params: OnlineParams, ctx):
        super().__init__(params, ctx)
        self.estimate = OnlineAcceptance(params.history_weight, params.prior_acceptance)

    def observe(self, req: RequestView, proposed: int, accepted: int) -> None:
        self.estimate.observe(req.id, proposed, accepted)

    def forget(self, req: RequestView) -> None:
        super().forget(req)
        self.estimate.forget(req.id)


class OnlineAcceptance:
    """Per-request moving-average acceptance with a pool-wide fallback."""

    def __init__(self, history_weight: float, prior: float, pool_weight: float = 0.99):
        self.w = history_weight
        self.pool_w = pool_weight
        self.a_pool = prior
        self._a: dict[int, float] = {}

    def get(self, rid: int) -> float:
        """Request ``rid``'s estimate (the pool's until it was observed)."""
        a = self._a.get(rid)
        return self.a_pool if a is None else a

    def forget(self, rid: int) -> None:
        """Drop a finished request's estimate."""
        self._a.pop(rid, None)

    def observe(self, rid: int, proposed: int, accepted: int) -> None:
        """Record one verified step."""
        if proposed <= 0:
            return
        x = accepted / (accepted + (1 if accepted < proposed else 0))
        a = self._a.get(rid, self.a_pool)
        self._a[rid] = self.w * a + (1.0 - self.w) * x
        self.a_pool = self.pool_w * self.a_pool + (1.0 - self.pool_w) * x


def expected_emitted(a: float, k: int) -> float:
    """Expected tokens out of a step proposing k drafts at per-token acceptance a: (1 - a^(k+1)) / (1 - a)."""
    if a >= 1.0:
        return k + 1.0
    return (1.0 - a ** (k + 1)) / (1.0 - a)
