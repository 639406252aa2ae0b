"""vLLM v1's scheduler: one token budget per step with chunked prefill.

Each iteration: running requests first, in order (a decode takes one token, a partial
prefill takes the rest of its prompt up to the remaining budget); when a block cannot be
had, the last running request is preempted by recompute. If nothing was preempted, waiting
requests are admitted in order with a chunk of min(uncached prompt, remaining budget) while
their KV fits and the sequence cap allows. Prefix-cache hits skip compute.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class VllmV1Params:
    """vLLM v1 defaults for online serving with chunked prefill."""

    max_num_batched_tokens: int = param(2048, ge=1, doc="token budget per step (decodes + prefill chunks)")
    max_num_seqs: int = param(256, ge=1, doc="most sequences in a batch")
    long_prefill_token_threshold: int | None = param(None, ge=1, doc="cap on one prompt's chunk per step")
    order: Order = order_param()


@SCHEDULERS.register("vllm_v1")
class VllmV1Scheduler(SchedulerBase):
    """Chunked-prefill scheduling under one token budget (vLLM v1)."""

    Params = VllmV1Params
    # the running requests first, then admissions that read only the queue, the running count
    # and the KV's answers, no state kept between iterations: see SchedulerBase's docstring
    blocked_decode_safe = True
    # the mixed plan's promise, only while the prompt mid-prefill is the last running request:
    # ``schedule_running`` walks ``running`` in order, so a decode behind the prompt would get its
    # token only if the chunk left budget (an attached request, or an admission behind a capped chunk)
    mixed_prefill_last = True

    def mixed_chunk_budget(self, num_decodes: int) -> int | None:
        """The budget a running prompt's chunk gets after ``num_decodes`` decodes ahead of it
        (``SchedulerBase``'s mixed promise, with ``mixed_prefill_last``): ``schedule_running``
        gives each decode one token, then the prompt min(its rest, the budget left), and
        ``admit_waiting`` admits nothing when no budget is left (it checks the budget before
        it rejects or admits). None past the budget: ``schedule_running`` then stops decoding
        there, so not every decode gets its token."""
        budget = self.params.max_num_batched_tokens
        return budget - num_decodes if num_decodes <= budget else None

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        budget = p.max_num_batched_tokens
        used, preempted = self.schedule_running(rep, plan, budget)
        if preempted:
            return plan
        self.admit_waiting(rep, plan, budget - used, max_seqs=p.max_num_seqs,
                           max_chunk=p.long_prefill_token_threshold)
        return plan
