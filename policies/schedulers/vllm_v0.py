"""vLLM v0's default scheduler: prefill-prioritising, whole prompts, recompute from the tail.

Each iteration (vLLM 0.x ``Scheduler._schedule_default``): if nothing is swapped out, admit
waiting prompts in order while the sequence cap, the prompt-token budget and the KV check
with the watermark pass; if any prompt was admitted the step runs those prefills only.
Otherwise every running request decodes one token; when a block cannot be had, the last
running request is preempted (recompute by default, swap if the KV manager says so). With
no preemption in the step, swapped requests come back. A prompt longer than
``max_num_batched_tokens`` is rejected, as vLLM refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.batch import Batch
from sim.engine.replica import Replica
from sim.engine.request import Request
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class VllmParams:
    """vLLM 0.x engine defaults (max_num_batched_tokens = max(max_model_len, 2048))."""

    max_num_seqs: int = param(256, ge=1, doc="most sequences in a batch")
    max_num_batched_tokens: int = param(8192, ge=1, doc="prompt tokens per prefill step; longer prompts are rejected")
    order: Order = order_param()


@SCHEDULERS.register("vllm")
class VllmV0Scheduler(SchedulerBase):
    """Prefill-prioritising continuous batching (vLLM v0 default)."""

    Params = VllmParams

    def joins(self, rep: Replica, batch: Batch, req: Request) -> bool:
        """Whether ``req`` may join the prefill batch being formed (always, here)."""
        return True

    def schedule(self, rep: Replica) -> Batch:
        p = self.params
        kv = rep.kv
        batch = Batch()
        if not rep.swapped:
            budget = p.max_num_batched_tokens
            while rep.waiting and len(rep.running) < p.max_num_seqs:
                req = self.peek(rep)
                if not self.joins(rep, batch, req):
                    break
                if req.input_tokens + req.num_output_tokens > p.max_num_batched_tokens:
                    self.reject_head(rep, req, "prompt_exceeds_max_num_batched_tokens")
                    continue
                if self.never_fits(rep, req, kv.watermark_blocks):
                    self.reject_head(rep, req, "exceeds_kv_capacity")
                    continue
                done = self.covered_tokens(rep, req)
                tokens = req.input_tokens + req.num_output_tokens - done
                if tokens > budget:
                    break
                need = kv.blocks_for(req.input_tokens + req.num_output_tokens) - kv.held_blocks(req)
                if need > kv.num_available - kv.watermark_blocks:
                    break
                kv.match_prefix(req)
                tokens = req.remaining_prefill_tokens
                self.start(rep, req, tokens, batch)
                budget -= tokens
            if batch:
                return batch
        _used, preempted = self.schedule_running(rep, batch, None)
        if not preempted and rep.swapped:
            self.swap_in_waiting(rep, batch, p.max_num_seqs, kv.watermark_blocks)
        return batch
