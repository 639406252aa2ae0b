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
from sim.engine.batch import Batch
from sim.engine.replica import Replica
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

    def schedule(self, rep: Replica) -> Batch:
        p = self.params
        kv = rep.kv
        batch = Batch()
        budget = p.max_num_batched_tokens
        if p.long_prefill_token_threshold is not None:
            budget_for_prefill = p.long_prefill_token_threshold
        else:
            budget_for_prefill = budget
        used, preempted = self.schedule_running(rep, batch, budget)
        if preempted:
            return batch
        while rep.waiting and used < budget and len(rep.running) < p.max_num_seqs:
            req = self.peek(rep)
            if self.never_fits(rep, req, 0):
                self.reject_head(rep, req, "exceeds_kv_capacity")
                continue
            done = self.covered_tokens(rep, req)
            n = min(req.input_tokens + req.num_output_tokens - done, budget - used, budget_for_prefill)
            if kv.blocks_for(done + n) - kv.held_blocks(req) > kv.num_available:
                break
            kv.match_prefix(req)
            n = min(req.remaining_prefill_tokens, budget - used, budget_for_prefill)
            self.start(rep, req, n, batch)
            used += n
        return batch
