"""GoodServe's router for heterogeneous GPUs: the least capable instance that still meets the
request's deadline ("just enough"), keeping fast GPUs for tight requests (GoodServe, "Towards
High-Goodput Serving of Agentic LLM Inferences over Heterogeneous Resources").

For each instance, the completion estimate of ``policies.goodserve_estimate``::

    estimate = wait + prompt / prefill_rate + L_pred x TPOT(load + 1)
    budget   = (deadline - now) / max(1, expected_calls_per_job - calls of its job routed so far)
    feasible = estimate <= budget
    choice   = among feasible instances the least capable (1 / TPOT(1)), ties by the smaller
               estimate; none feasible (or no deadline): the smallest estimate (the fastest)

``L_pred`` comes from the run's predictor (``cluster.predictor``; ConfigError without one). The
deadline is the request's own ``deadline_s`` (an agentic job's end-to-end deadline, shared by
its calls). How GoodServe splits a job's budget among its calls is not public (we have the
abstract only): ``expected_calls_per_job`` (default 1: every call may use the whole remaining
budget, a per-request deadline) splits it evenly over the calls still expected. The call's
deadline (now + budget) is kept in shared state for ``goodserve_rectify``. Capability
classes: instances whose capability differs by less than ``capability_tolerance`` are one class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.goodserve_estimate import CompletionEstimator
from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param

SHARED_KEY = "goodserve"  # per-call deadlines and per-job call counts, read by goodserve_rectify


@dataclass
class GoodServeRouterParams:
    """Deadline share and estimator settings."""

    expected_calls_per_job: int = param(1, ge=1, doc="calls a job is expected to make: its remaining budget is split "
                                                     "evenly over those still to come (unknown: 1, no split)")
    capability_tolerance: float = param(0.05, ge=0, doc="relative capability difference within one class")
    prefill_chunk_tokens: int = param(2048, ge=1, doc="chunk size at which the prefill rate is measured")


@ROUTERS.register("goodserve")
class GoodServeRouter(RouterBase):
    """Just enough: the least capable instance meeting the deadline, else the fastest."""

    Params = GoodServeRouterParams

    def __init__(self, params: GoodServeRouterParams, ctx: BuildContext):
        super().__init__(params, ctx)
        predictor = ctx.require_predictor("the goodserve router", " (e.g. {name: noisy, sigma: 0.5})")
        self.est = CompletionEstimator(predictor, prefill_chunk_tokens=params.prefill_chunk_tokens)
        self.state = ctx.shared_state(SHARED_KEY, lambda: {"call_deadline_s": {}, "calls": {}})

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        p, est = self.params, self.est
        now = self.ctx.cluster.now_s
        scored = [(est.estimate_s(r, req), est.capability(r), r) for r in replicas]
        fastest = min(scored, key=lambda x: (x[0], x[2].id))
        if req.deadline_s is None:
            return fastest[2]
        calls = self.state["calls"]
        seen = calls.get(req.job, 0) if req.job is not None else 0
        if req.job is not None:
            calls[req.job] = seen + 1
        budget = (req.deadline_s - now) / max(1, p.expected_calls_per_job - seen)
        self.state["call_deadline_s"][req.id] = now + budget
        feasible = [x for x in scored if x[0] <= budget]
        if not feasible:
            return fastest[2]
        low = min(x[1] for x in feasible) * (1 + p.capability_tolerance)
        return min((x for x in feasible if x[1] <= low), key=lambda x: (x[0], x[2].id))[2]

    @classmethod
    def example_config(cls) -> dict:
        """Agentic chains with deadlines on an A100 + H100 + L40S cluster of Llama-3-8B, noisy predictor."""
        from policies.controllers.goodserve_rectify import hetero_config

        return hetero_config("goodserve", rectify=False, num_jobs=60)
