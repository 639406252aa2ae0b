"""Sarathi-Serve's stall-free batching (Agrawal et al., OSDI'24).

Each iteration: every running decode first (one token each), then running partial prefills
get min(remaining, budget - used), then waiting requests are admitted in order with chunks
while the budget, the sequence cap and the KV check with the watermark pass. Decodes never
wait behind a whole prompt, which bounds the time between tokens. Preemption is vLLM's:
recompute (or swap) from the tail of the running list. Defaults from the paper's
artifact: chunk_size (token budget) 512, at most 128 sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class SarathiParams:
    """Sarathi-Serve defaults."""

    chunk_size: int = param(512, ge=1, doc="token budget per iteration")
    max_num_seqs: int = param(128, ge=1, doc="most sequences in a batch")
    use_watermark: bool = param(True, doc="keep the KV manager's watermark free when admitting")
    order: Order = order_param()


@SCHEDULERS.register("sarathi")
class SarathiScheduler(SchedulerBase):
    """Decode-first, chunked-prefill, stall-free batching."""

    Params = SarathiParams
    supports_swap = True

    def budget(self) -> int:
        """Tokens per iteration."""
        return self.params.chunk_size

    def mixed_chunk_budget(self, num_decodes: int) -> int:
        """The budget left to a running prompt's chunk after ``num_decodes`` decodes (the
        fast-plan promise of ``SchedulerBase``: ``schedule`` below, with nothing waiting)."""
        budget = self.budget()
        return budget - num_decodes if num_decodes < budget else 0

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        budget = self.budget()
        reserve = rep.kv.watermark_blocks if p.use_watermark else 0
        used, preempted = self.schedule_running(rep, plan, None, phase="decode")
        if not preempted and len(plan.decode) < rep.num_running:  # else no prompt is mid-prefill
            more, preempted = self.schedule_running(rep, plan, budget - used if used < budget else 0, phase="prefill")
            used += more
        if preempted:
            return plan
        if rep.swapped:
            self.swap_in_waiting(rep, plan, p.max_num_seqs, reserve)
            return plan
        self.admit_waiting(rep, plan, budget - used, max_seqs=p.max_num_seqs, reserve_blocks=reserve)
        return plan
