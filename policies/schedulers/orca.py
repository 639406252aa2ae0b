"""Orca's iteration-level scheduling (Yu et al., OSDI'22).

Every iteration runs all admitted requests together, whole prompts and decodes mixed, with
no token cap. KV is reserved for the maximum length when a request is admitted, so a
running request never needs preemption, at the price of memory left idle. Reservation
rules, as the vLLM paper compares them: ``max`` reserves ``max_model_len`` tokens (at least
the prompt and one token; a request that outgrows its reservation grows its KV step by step
like any other, and may then be preempted), ``pow2`` the next power of two of the true total,
``oracle`` exactly the true total. ``pow2`` and ``oracle`` read the true output length, so
they need ``oracle: true`` (a load-time error otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.seams import BuildContext
from sim.engine.states import State
from sim.engine.views import RequestView
from sim.errors import ConfigError
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class OrcaParams:
    """Orca as evaluated in the vLLM paper."""

    max_num_seqs: int = param(256, ge=1, doc="most requests in the batch")
    reservation: Literal["max", "pow2", "oracle"] = param("max", doc="how much KV is reserved per request")
    max_model_len: int = param(2048, ge=1, doc="tokens reserved under reservation=max")
    order: Order = order_param()
    oracle: bool = param(False, doc="may read true output lengths (needed by reservation pow2 and oracle)")


@SCHEDULERS.register("orca")
class OrcaScheduler(SchedulerBase):
    """Iteration-level batching with KV reserved up front."""

    Params = OrcaParams

    def __init__(self, params: OrcaParams, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        if params.reservation != "max" and not params.oracle:
            raise ConfigError(f"reservation {params.reservation!r} reads the true output length: set 'oracle: true'",
                              f"{ctx.where}.reservation" if ctx.where else "reservation")

    def reserved_tokens(self, req: RequestView) -> int:
        """Tokens of KV reserved for ``req`` at admission."""
        rule = self.params.reservation
        if rule == "max":
            return max(self.params.max_model_len, req.input_tokens + 1)
        total = req.input_tokens + self.ctx.output_tokens(req)
        if rule == "pow2":
            return 1 << (total - 1).bit_length()
        return total

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        kv = rep.kv
        plan = StepPlan()
        for req in list(rep.running):
            if req.state in (State.PREEMPTED, State.SWAPPED):
                continue  # preempted for an earlier request's growth in this loop
            if req.remaining_prefill_tokens == 1 and req.num_output_tokens > 0:
                if not self.grow_or_preempt(rep, req, 1, plan):
                    continue
                plan.add_decode(req)
            else:
                plan.add_prefill(req, req.remaining_prefill_tokens)
        while rep.waiting and rep.num_running < p.max_num_seqs:
            req = self.peek(rep)
            if kv.never_fits(req):
                rep.reject(req, "exceeds_kv_capacity")
                continue
            reserve = min(self.reserved_tokens(req), kv.max_tokens)
            n = rep.admit(req, reserve_tokens=reserve)
            if n is None:
                break
            plan.add_prefill(req, n)
        return plan
