"""Strict priority with preemption by recompute (vLLM's ``priority`` scheduling policy).

Waiting requests start in priority order (lower value first, then arrival), whole prompts as
in vLLM v0, and a prompt starts only while nothing of higher priority runs on the replica. A
prefill iteration is cut at its next layer boundary as soon as a request of strictly higher
priority waits (``wants_cut``); the cut requests are then preempted by
recompute: their KV is freed and their prefill starts over later, which is what vLLM does to
lower-priority work. Under a steady stream of high-priority requests, long low-priority
prompts therefore may never finish: the starvation PecSched's paper reports for strict
priority (92-100% of long requests). Assign priorities with a transform, e.g.
``priority_by_length`` for strict short-first.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.vllm_v0 import VllmV0Scheduler
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class StrictPriorityParams:
    """vLLM v0 caps; the order is always priority."""

    max_num_seqs: int = param(256, ge=1, doc="most sequences in a batch")
    max_num_batched_tokens: int = param(8192, ge=1, doc="prompt tokens per prefill step; longer prompts are rejected")

    @property
    def order(self) -> str:
        return "priority"


@SCHEDULERS.register("strict_priority")
class StrictPriorityScheduler(VllmV0Scheduler):
    """Priority order; higher-priority arrivals cut and recompute lower-priority prefills."""

    Params = StrictPriorityParams

    def __init__(self, params: StrictPriorityParams, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self._running_priority: int | None = None

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        if rep.has_paused:  # a cut prefill: recompute it later, from scratch
            rep.recompute_paused()
        plan = super().schedule(rep)
        if plan.prefill and not plan.decode:
            plan.preemptible = True
            self._running_priority = min(r.priority for r in plan.prefill_requests)
        else:
            self._running_priority = None
        return plan

    def joins(self, rep: ReplicaView, plan: StepPlan, req: RequestView) -> bool:
        """A prompt starts only while nothing of higher priority runs here (strict priority:
        betters' decodes are not stalled by a worse prompt), and a prefill plan holds one
        priority level (so cutting it never hits its betters)."""
        if plan.prefill:
            return req.priority == plan.prefill_requests[0].priority
        return all(r.priority >= req.priority for r in rep.running)

    def wants_cut(self, rep: ReplicaView) -> bool:
        """Cut the prefill in progress when a request of strictly higher priority waits."""
        if self._running_priority is None or not rep.waiting:
            return False
        return min(r.priority for r in rep.waiting) < self._running_priority

    def may_resume(self, rep: ReplicaView) -> bool:
        """Never resume a cut prefill: ``schedule`` preempts it by recompute instead."""
        return False

    @classmethod
    def example_config(cls) -> dict:
        """One replica under load, two priority levels (prompts over 512 tokens are the lower one)."""
        return {"workload.transforms": [{"name": "priority_by_length", "long_input_tokens": 512}]}
