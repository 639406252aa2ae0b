"""PecSched's per-replica scheduler: shorts first, long prefills preemptible at layer boundaries.

Each iteration: running decodes (one token each); short prefills, running then waiting in
arrival order, under a token budget (capped at ``max_short_tokens_per_gpu`` x GPUs while the
replica decodes a long request: colocation); and only when no short prefill is waiting or
running and nothing is paused, one long prefill as a *preemptible* batch. A long prefill is
one iteration over the whole prompt (or ``long_chunk_tokens`` chunks); with the ``pecsched``
router it runs sequence-parallel on a gang of replicas the router's state claims for it.

``wants_cut``: a short request waits here (the replica then cuts the long prefill at its
next layer boundary, keeping the finished layers). ``may_resume``: no short prefill is
waiting or running. ``holds_back``: waiting long prompts wait while this replica helps
another replica's gang. Long decodes run in every iteration and are never preempted by policy
(only vLLM's recompute preemption under KV exhaustion could touch them).

Which requests are long: the ``pecsched`` router's threshold when it runs (its state is
shared through the build context under "pecsched"), else this scheduler's own
``long_input_tokens`` (None: nothing is long, and it acts like FCFS chunked
prefill with no preemption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.schedulers.base import SchedulerBase
from policies.sequence_parallel import sp_prefill_time_s
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.states import State
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class PecSchedSchedulerParams:
    """Short-request budget and how long prefills are cut into iterations."""

    max_num_batched_tokens: int = param(8192, ge=1, doc="token budget per step for decodes and short prefills")
    max_num_seqs: int = param(256, ge=1, doc="most sequences in a batch")
    long_chunk_tokens: int | None = param(None, ge=1, doc="split a long prefill into chunks of this size (null: whole)")
    long_input_tokens: int | None = param(None, ge=1, doc="long threshold when not bound to the pecsched router")


@SCHEDULERS.register("pecsched")
class PecSchedScheduler(SchedulerBase):
    """Short prefills and all decodes first; one preemptible (gang) long prefill otherwise."""

    Params = PecSchedSchedulerParams

    @property
    def state(self) -> Any:
        """The pecsched router's shared state (classification, gang claims), if it runs."""
        return self.ctx.shared.get("pecsched")

    def is_long(self, req: RequestView) -> bool:
        """True for a long request."""
        state = self.state
        if state is not None:
            return state.is_long(req)
        limit = self.params.long_input_tokens
        return limit is not None and req.input_tokens > limit

    # ------------------------------------------------------------------ replica hooks
    def wants_cut(self, rep: ReplicaView) -> bool:
        """Cut the long prefill in progress when a short request waits."""
        return any(not self.is_long(r) for r in rep.waiting)

    def may_resume(self, rep: ReplicaView) -> bool:
        """Resume (or join a gang) once no short prefill waits or runs here."""
        if any(not self.is_long(r) for r in rep.waiting):
            return False
        return not any(r.state == State.PREFILL and not self.is_long(r) for r in rep.running)

    def holds_back(self, rep: ReplicaView) -> bool:
        """Waiting long prompts wait (not rejected) while this replica helps another gang."""
        state = self.state
        return state is not None and state.is_helper(rep)

    # ------------------------------------------------------------------ plans
    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        state = self.state
        plan = StepPlan()
        _used, preempted = self.schedule_running(rep, plan, None, phase="decode")
        if preempted:
            return plan
        budget = p.max_num_batched_tokens
        long_decoding = any(r.is_decoding and self.is_long(r) for r in rep.running)
        if long_decoding and state is not None:
            budget = min(budget, state.params.max_short_tokens_per_gpu * rep.num_gpus)
        used = 0
        for req in list(rep.running):
            if used >= budget:
                break
            if req.state != State.PREFILL or self.is_long(req):
                continue
            n = min(req.remaining_prefill_tokens, budget - used)
            if rep.grow(req, n) is None:
                break
            plan.add_prefill(req, n)
            used += n
        more, short_waiting = self.admit_waiting(
            rep, plan, budget - used, max_seqs=p.max_num_seqs,
            candidates=lambda: (r for r in rep.waiting if not self.is_long(r)))
        if plan.prefill or short_waiting or rep.has_paused:
            return plan
        if state is not None and state.is_helper(rep):
            return plan  # held for another gang: its own long prefills wait until released
        self._start_long(rep, plan)
        return plan

    def _start_long(self, rep: ReplicaOps, plan: StepPlan) -> None:
        """Add one long prefill (continued or new) as a preemptible, possibly gang, chunk."""
        req = next((r for r in rep.running if r.state == State.PREFILL and self.is_long(r)), None)
        cap = self.params.long_chunk_tokens
        if req is None:
            req = next((r for r in rep.waiting if self.is_long(r)), None)
            if req is None:
                return
            if rep.kv.never_fits(req):
                rep.reject(req, "exceeds_kv_capacity")
                return
            if rep.num_running >= self.params.max_num_seqs:
                return
            n = rep.admit(req, cap)
            if n is None:
                return  # wait for KV (decodes here finish and free it)
        else:
            n = req.remaining_prefill_tokens if cap is None else min(req.remaining_prefill_tokens, cap)
            if rep.grow(req, n) is None:
                return
        plan.add_prefill(req, n)
        plan.preemptible = True
        state = self.state
        if state is None:
            return
        helpers = state.claim(rep, req)
        plan.on_finish = lambda _p, lead=rep, hs=helpers: state.release(lead, hs)
        if helpers:
            plan.hold = helpers
            plan.step_s = self._gang_step_s(rep, plan, req, n, helpers)

    def _gang_step_s(self, rep: ReplicaView, plan: StepPlan, req: RequestView, n: int,
                     helpers: list[ReplicaView]) -> float:
        """Full iteration time with the long chunk sequence-parallel over the gang."""
        cost = rep.cost_model
        chunk = [(n, req.num_computed_tokens)]
        decodes = plan.decode_requests
        ctx = sum(r.num_computed_tokens + 1 for r in decodes)
        nd = len(decodes)
        alone = cost.step_time_s(chunk, 0, 0, 0)
        whole = cost.step_time_s(chunk, nd, nd, ctx)
        sp = self.state.params
        k = len(helpers) + 1
        t = sp_prefill_time_s(alone, n, k, cost.kv_bytes_per_token, self.state.link_for(rep, helpers),
                              num_links=cost.num_gpus, num_layers=rep.num_layers,
                              overlap=sp.sp_comm_overlap, gather_kv=sp.sp_gather_kv)
        return t + (whole - alone)

    @classmethod
    def example_config(cls) -> dict:
        """PecSched's router, scheduler and hand-off together (the pecsched router's scenario)."""
        from policies.routers.pecsched import PecSchedRouter

        return PecSchedRouter.example_config()
