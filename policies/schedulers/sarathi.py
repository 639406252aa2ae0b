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
from sim.engine.batch import Batch
from sim.engine.replica import Replica
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

    def budget(self) -> int:
        """Tokens per iteration."""
        return self.params.chunk_size

    def schedule(self, rep: Replica) -> Batch:
        p = self.params
        kv = rep.kv
        batch = Batch()
        budget = self.budget()
        reserve = kv.watermark_blocks if p.use_watermark else 0
        used, preempted = self.schedule_running(rep, batch, None, phase="decode")
        if not preempted:
            more, preempted = self.schedule_running(rep, batch, budget - used if used < budget else 0, phase="prefill")
            used += more
        if preempted:
            return batch
        if rep.swapped:
            self.swap_in_waiting(rep, batch, p.max_num_seqs, reserve)
            return batch
        while rep.waiting and used < budget and len(rep.running) < p.max_num_seqs:
            req = self.peek(rep)
            if self.never_fits(rep, req, reserve):
                self.reject_head(rep, req, "exceeds_kv_capacity")
                continue
            done = self.covered_tokens(rep, req)
            n = min(req.input_tokens + req.num_output_tokens - done, budget - used)
            if kv.blocks_for(done + n) - kv.held_blocks(req) > kv.num_available - reserve:
                break
            kv.match_prefix(req)
            n = min(req.remaining_prefill_tokens, budget - used)
            self.start(rep, req, n, batch)
            used += n
        return batch
