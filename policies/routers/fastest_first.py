"""Fastest first on heterogeneous GPUs: each request to the instance where it would finish
soonest (the smallest completion estimate of ``policies.goodserve_estimate``), whatever its
deadline: the baseline GoodServe compares its "just enough" choice with.

Without a predictor (``cluster.predictor``) every request is assumed to produce
``default_output_tokens`` tokens, so the choice rests on queued prompt work, prefill rate and
decode speed at the instance's load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.goodserve_estimate import CompletionEstimator
from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class FastestFirstParams:
    """Length assumed without a predictor."""

    default_output_tokens: int = param(256, ge=1, doc="output tokens assumed when no predictor is configured")


@ROUTERS.register("fastest_first")
class FastestFirstRouter(RouterBase):
    """The instance of smallest estimated completion time (ties: lowest index)."""

    Params = FastestFirstParams

    def __init__(self, params: FastestFirstParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.est = CompletionEstimator(ctx.predictor, params.default_output_tokens)

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        est = self.est
        best, best_t = replicas[0], None
        for rep in replicas:
            t = est.estimate_s(rep, req)
            if best_t is None or t < best_t:
                best, best_t = rep, t
        return best

    @classmethod
    def example_config(cls) -> dict:
        """Agentic chains with deadlines on an A100 + H100 + L40S cluster of Llama-3-8B."""
        from policies.controllers.goodserve_rectify import hetero_config

        return hetero_config("fastest_first", rectify=False, num_jobs=60)
