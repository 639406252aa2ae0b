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
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.views import ReplicaView, RequestView
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
    supports_swap = True

    def joins(self, rep: ReplicaView, plan: StepPlan, req: RequestView) -> bool:
        """Whether ``req`` may join the prefill plan being formed (always, here)."""
        return True

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        if not rep.swapped:
            self.admit_waiting(rep, plan, p.max_num_batched_tokens, max_seqs=p.max_num_seqs,
                               reserve_blocks=rep.kv.watermark_blocks, whole=True,
                               joins=lambda req: self.joins(rep, plan, req),
                               max_prompt_tokens=p.max_num_batched_tokens)
            if plan:
                return plan
        _used, preempted = self.schedule_running(rep, plan, None)
        if not preempted and rep.swapped:
            self.swap_in_waiting(rep, plan, p.max_num_seqs, rep.kv.watermark_blocks)
        return plan
