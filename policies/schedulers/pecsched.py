"""PecSched's per-replica scheduler: shorts first, long prefills preemptible at layer boundaries.

Each iteration: running decodes (one token each); short prefills, running then waiting in
arrival order, under a token budget (capped at ``max_short_tokens_per_gpu`` x GPUs while the
replica decodes a long request: colocation); and only when no short prefill is waiting or
running and nothing is paused, one long prefill as a *preemptible* batch. A long prefill is
one iteration over the whole prompt (or ``long_chunk_tokens`` chunks); with the ``pecsched``
router it runs sequence-parallel on a gang of replicas the router's state claims for it.

``wants_preempt``: a short request waits here (the replica then cuts the long prefill at its
next layer boundary, keeping the finished layers). ``resume_paused``: no short prefill is
waiting or running. Long decodes run in every iteration and are never preempted by policy
(only vLLM's recompute preemption under KV exhaustion could touch them).

Which requests are long: the ``pecsched`` router's threshold when bound to it, else this
scheduler's own ``long_input_tokens`` (None: nothing is long, and it acts like FCFS chunked
prefill with no preemption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.schedulers.base import SchedulerBase
from policies.sequence_parallel import sp_prefill_time_s
from sim.engine.batch import Batch
from sim.engine.replica import Replica
from sim.engine.request import Request, State
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

    def __init__(self, params: PecSchedSchedulerParams) -> None:
        super().__init__(params)
        self.state: Any = None

    def bind_pecsched(self, state: Any) -> None:
        """Share the router's classification and gang claims."""
        self.state = state

    def is_long(self, req: Request) -> bool:
        """True for a long request."""
        if self.state is not None:
            return self.state.is_long(req)
        limit = self.params.long_input_tokens
        return limit is not None and req.input_tokens > limit

    # ------------------------------------------------------------------ replica hooks
    def wants_preempt(self, rep: Replica) -> bool:
        """Cut the long prefill in progress when a short request waits."""
        return any(not self.is_long(r) for r in rep.waiting)

    def resume_paused(self, rep: Replica) -> bool:
        """Resume (or join a gang) once no short prefill waits or runs here."""
        if any(not self.is_long(r) for r in rep.waiting):
            return False
        return not any(r.state == State.PREFILL and not self.is_long(r) for r in rep.running)

    def blocked(self, rep: Replica) -> bool:
        """Waiting long prompts wait (not rejected) while this replica helps another gang."""
        return self.state is not None and self.state.is_helper(rep)

    # ------------------------------------------------------------------ batches
    def schedule(self, rep: Replica) -> Batch:
        p = self.params
        batch = Batch()
        _used, preempted = self.schedule_running(rep, batch, None, phase="decode")
        if preempted:
            return batch
        budget = p.max_num_batched_tokens
        long_decoding = any(r.state == State.DECODE and self.is_long(r) for r in rep.running)
        if long_decoding and self.state is not None:
            budget = min(budget, self.state.params.max_short_tokens_per_gpu * rep.cost_model.num_gpus)
        used = 0
        for req in list(rep.running):
            if used >= budget:
                break
            if req.state != State.PREFILL or self.is_long(req):
                continue
            n = min(req.remaining_prefill_tokens, budget - used)
            if not rep.kv.allocate(req, n):
                break
            batch.add_prefill(req, n)
            used += n
        short_waiting = self._admit_shorts(rep, batch, used, budget)
        if batch.prefill or short_waiting or rep.paused is not None:
            return batch
        if self.state is not None and self.state.is_helper(rep):
            return batch  # held for another gang: its own long prefills wait until released
        self._start_long(rep, batch)
        return batch

    def _admit_shorts(self, rep: Replica, batch: Batch, used: int, budget: int) -> bool:
        """Admit waiting short prompts in order; True if some short still waits."""
        kv = rep.kv
        for req in [r for r in rep.waiting if not self.is_long(r)]:
            if used >= budget or len(rep.running) >= self.params.max_num_seqs:
                return True
            if self.never_fits(rep, req, 0):
                self.reject_head(rep, req, "exceeds_kv_capacity")
                continue
            done = self.covered_tokens(rep, req)
            n = min(req.input_tokens + req.num_output_tokens - done, budget - used)
            if kv.blocks_for(done + n) - kv.held_blocks(req) > kv.num_available:
                return True
            kv.match_prefix(req)
            n = min(req.remaining_prefill_tokens, budget - used)
            self.start(rep, req, n, batch)
            used += n
        return False

    def _start_long(self, rep: Replica, batch: Batch) -> None:
        """Add one long prefill (continued or new) as a preemptible, possibly gang, chunk."""
        kv = rep.kv
        req = next((r for r in rep.running if r.state == State.PREFILL and self.is_long(r)), None)
        fresh = req is None
        if fresh:
            req = next((r for r in rep.waiting if self.is_long(r)), None)
            if req is None:
                return
            if self.never_fits(rep, req, 0):
                self.reject_head(rep, req, "exceeds_kv_capacity")
                return
        n = req.remaining_prefill_tokens
        if self.params.long_chunk_tokens is not None:
            n = min(n, self.params.long_chunk_tokens)
        if kv.blocks_for(req.num_computed_tokens + n) - kv.held_blocks(req) > kv.num_available:
            return  # wait for KV (decodes here finish and free it)
        if fresh:
            if len(rep.running) >= self.params.max_num_seqs:
                return
            self.start(rep, req, n, batch)
        else:
            kv.allocate(req, n)
            batch.add_prefill(req, n)
        batch.preemptible = True
        if self.state is None:
            return
        helpers = self.state.claim(rep, req)
        state = self.state
        batch.on_finish = lambda _b, lead=rep, hs=helpers: state.release(lead, hs)
        if helpers:
            batch.gang = helpers
            batch.step_s = self._gang_step_s(rep, batch, req, n, helpers)

    def _gang_step_s(self, rep: Replica, batch: Batch, req: Request, n: int, helpers: list[Replica]) -> float:
        """Full iteration time with the long chunk sequence-parallel over the gang."""
        cost = rep.cost_model
        chunk = [(n, req.num_computed_tokens)]
        ctx = sum(r.num_computed_tokens + 1 for r in batch.decode)
        nd = len(batch.decode)
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
