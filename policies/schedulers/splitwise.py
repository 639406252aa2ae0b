"""Splitwise's machine-level batching (Patel et al., ISCA'24).

Two modes (``mode``):

- ``chunked`` (default): vLLM-style chunked batching under Splitwise's caps (at most 512
  sequences and 2048 tokens per batch) with its starvation guard: a request preempted
  ``max_preemptions`` times (4) goes to the front of the waiting queue.
- ``reference``: as the public reference simulator's ``SplitwiseInstance.select_batch`` runs
  a machine: whole prompts, no chunking, prompts before tokens. Each iteration takes, under
  the sequence and token caps (a first task over the token cap runs alone): (1) the pending
  tasks (waiting prompts and deferred decodes, in the reference's queue order) while each
  has been passed over ``max_preemptions`` times or more (stopping at the first that has
  not); (2) waiting prompts FIFO, whole; (3) decodes
  passed over before, then the others, one token each. Every waiting prompt or running
  decode left out of an iteration counts one "preemption" (the reference's
  ``num_preemptions``: a deferral, its KV stays put; KV evictions when memory runs out are
  the engine's preemptions, counted separately). The reference orders its pending queue by
  the count a task had when it was queued (0 for a prompt), then arrival, as this mode does.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import takewhile
from typing import Literal

from policies.schedulers.base import Order, order_param
from policies.schedulers.vllm_v1 import VllmV1Scheduler
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class SplitwiseParams:
    """Splitwise's batch caps and preemption limit."""

    max_num_batched_tokens: int = param(2048, ge=1, doc="tokens per batch")
    max_num_seqs: int = param(512, ge=1, doc="sequences per batch")
    max_preemptions: int = param(4, ge=1, doc="a request preempted this often goes first")
    long_prefill_token_threshold: int | None = param(None, ge=1, doc="cap on one prompt's chunk per step")
    mode: Literal["chunked", "reference"] = param(
        "chunked", doc="chunked (vLLM-style) or reference (whole prompts first, deferrals counted)")
    order: Order = order_param()


@SCHEDULERS.register("splitwise")
class SplitwiseScheduler(VllmV1Scheduler):
    """Chunked batching with Splitwise's caps, or the reference simulator's batch selection."""

    Params = SplitwiseParams

    def __init__(self, params: SplitwiseParams, ctx):
        super().__init__(params, ctx)
        self.deferrals: dict[int, int] = {}   # reference mode: times each request was passed over
        self.queued_key: dict[int, int] = {}  # a deferred decode's count when it was queued
        self.num_deferrals = 0
        # reference mode counts a deferral per waiting prompt per iteration: no blocked stretches
        self.blocked_decode_safe = params.mode == "chunked"
        if params.mode != "chunked":  # whole prompts and deferrals: not vLLM v1's mixed iterations
            self.mixed_chunk_budget = None

    def peek(self, rep: ReplicaView) -> RequestView:
        limit = self.params.max_preemptions
        for req in rep.waiting:
            if req.num_preemptions >= limit:
                return req
        return super().peek(rep)

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        if self.params.mode == "chunked":
            return super().schedule(rep)
        return self._schedule_reference(rep)

    def _schedule_reference(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        d = self.deferrals
        cap, seqs = p.max_num_batched_tokens, p.max_num_seqs
        running = rep.running_now()
        if not rep.waiting and not self.queued_key and len(running) <= seqs and len(running) <= cap:
            for req in running:  # the common step: every decode fits, nobody is passed over
                if req.is_decoding and self.grow_or_preempt(rep, req, 1, plan):
                    plan.add_decode(req)
            return plan
        waiting = list(rep.waiting)
        used = 0
        keys = self.queued_key
        pending = sorted([*waiting, *(r for r in running if r.id in keys)],
                         key=lambda r: (keys.get(r.id, 0), r.arrival_s, r.id))
        for req in takewhile(lambda r: d.get(r.id, 0) >= p.max_preemptions, pending):
            if len(plan.requests) >= seqs or (plan.requests and used + self._cost(req) > cap):
                break
            used += self._add(rep, plan, req, cap - used)
        used += self.admit_waiting(rep, plan, cap - used, max_seqs=seqs, whole=True, lenient_first=not plan.requests,
                                   reserve_blocks=0)[0] if rep.waiting else 0
        planned = {r.id for r in plan.requests}
        rest = [r for r in running if r.id not in planned and r.is_decoding]
        rest.sort(key=lambda r: d.get(r.id, 0) == 0)  # passed over before: first (stable)
        for req in rest:
            if len(plan.requests) >= seqs or (plan.requests and used + 1 > cap):
                break
            if self.grow_or_preempt(rep, req, 1, plan):
                plan.add_decode(req)
                used += 1
        planned = {r.id for r in plan.requests}
        counts: dict[int, int] = {}
        queued: dict[int, int] = {}
        for req in (*rep.waiting, *rep.running_now()):
            n = d.get(req.id, 0)
            if req.id not in planned:
                if req.is_decoding:
                    queued[req.id] = keys.get(req.id, n)
                n += 1
                self.num_deferrals += 1
            counts[req.id] = n
        self.deferrals, self.queued_key = counts, queued
        return plan

    @staticmethod
    def _cost(req: RequestView) -> int:
        return 1 if req.is_decoding else req.remaining_prefill_tokens

    def _add(self, rep: ReplicaOps, plan: StepPlan, req: RequestView, room: int) -> int:
        """Schedule one starved task: a decode token, or a waiting prompt whole."""
        if req.is_decoding:
            if self.grow_or_preempt(rep, req, 1, plan):
                plan.add_decode(req)
                return 1
            return 0
        return self.admit_waiting(rep, plan, room, max_seqs=self.params.max_num_seqs, whole=True,
                                  lenient_first=not plan.requests, max_new=1,
                                  candidates=lambda: [r for r in rep.waiting if r == req])[0]
