"""TensorRT-LLM's batch scheduler with its two capacity policies.

TensorRT-LLM schedules in two stages (its ``CapacityScheduler`` then ``MicroBatchScheduler``,
see the batch-manager docs): the capacity stage decides which requests get KV this
iteration; the micro-batch stage then fills one iteration up to ``max_num_tokens`` tokens and
``max_batch_size`` requests, in order: every generation request takes one token, context
(prefill) requests take their whole prompt, or a chunk of it with ``enable_chunked_context``.
Without chunked context a prompt longer than ``max_num_tokens`` can never run and is rejected.

``policy`` is the capacity stage (``CapacitySchedulerPolicy``):

- ``guaranteed_no_evict`` (TensorRT-LLM's default): a waiting request is admitted only if the
  KV cache can hold its whole sequence (prompt plus ``max_new_tokens``) on top of what the
  running requests have reserved, so a running request is never evicted.
- ``max_utilization``: requests are walked in order and each gets the KV blocks of its next
  step only (a new block for a generation request, its prompt for a context request); when a
  started request's next block does not fit, the most recently started request is paused
  (``MaxUtilizationScheduler`` in ``capacityScheduler.cpp``): its KV is freed and
  ``LlmRequest::pause`` moves its generated tokens into its prompt, so it is recomputed when
  it runs again. Nothing new is admitted in an iteration that paused a request (the walk's end
  was moved before the paused one). This is servesim's recompute preemption, victim from the
  tail of ``running``; the pause's cap of the new prompt at the engine's ``max_input_len``
  (generated tokens past it are dropped and generated again) is not modelled: a paused
  request is recomputed whole, in chunks where it outgrew ``max_num_tokens``, never rejected.

Neither ``orca`` (reserves, no token budget) nor ``vllm_v1`` (budget, but preempts) is the
no-evict policy. Defaults are TensorRT-LLM's (``max_num_tokens`` 8192, ``max_batch_size`` 2048
in ``trtllm-serve`` / ``trtllm-bench``); ``max_seq_len`` stands in for the request's
``max_new_tokens`` limit the server knows (the true output length is never read): under
no-evict each admitted request reserves ``max_seq_len`` tokens of KV (at least its prompt and
one token), unless ``max_new_tokens`` is given, then prompt + ``max_new_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.views import RequestView
from sim.registry import SCHEDULERS
from sim.schema import param

CapacityPolicy = Literal["guaranteed_no_evict", "max_utilization"]


@dataclass
class TrtllmCapacityParams:
    """TensorRT-LLM batch-manager defaults (GUARANTEED_NO_EVICT)."""

    max_num_tokens: int = param(8192, ge=1, doc="token budget per iteration (generation + context tokens)")
    max_batch_size: int = param(2048, ge=1, doc="most requests in flight")
    max_seq_len: int = param(4096, ge=2, doc="KV tokens reserved per request (stands in for max_new_tokens)")
    max_new_tokens: int | None = param(None, ge=1, doc="if set, reserve prompt + this instead of max_seq_len")
    enable_chunked_context: bool = param(False, doc="split prompts over iterations to fit max_num_tokens")
    policy: CapacityPolicy = param(
        "guaranteed_no_evict",
        doc="capacity policy: guaranteed_no_evict (reserve the whole sequence, never evict) or "
            "max_utilization (KV for the next step only; pause the last started request, recompute it later)")
    order: Order = order_param()


@SCHEDULERS.register("trtllm_capacity")
class TrtllmCapacityScheduler(SchedulerBase):
    """A per-iteration token budget plus no-evict reservation or max-utilization pausing."""

    Params = TrtllmCapacityParams

    @classmethod
    def example_config(cls) -> dict:
        """The scheduler default scenario (prompts <= 1024, outputs <= 128) with a 2048-token
        budget and 1200-token reservations (the scenario's longest request fits)."""
        return {"cluster.pools[0].scheduler.max_num_tokens": 2048, "cluster.pools[0].scheduler.max_seq_len": 1200}

    def reserved_tokens(self, req: RequestView) -> int:
        """KV tokens a no-evict admission reserves for ``req``; 0 (its next step only) under max_utilization."""
        p = self.params
        if p.policy == "max_utilization":
            return 0
        if p.max_new_tokens is not None:
            return req.input_tokens + p.max_new_tokens
        return max(p.max_seq_len, req.input_tokens + 1)

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        # no-evict: running requests grow inside their reservation, so nothing is preempted here;
        # max_utilization: a block that does not fit pauses requests from the tail of ``running``
        used, paused = self.schedule_running(rep, plan, p.max_num_tokens)
        if paused:
            return plan  # the paused request's walk end cut off every waiting request this iteration
        kv = rep.kv
        while rep.waiting and rep.num_running < p.max_batch_size and used < p.max_num_tokens:
            req = self.peek(rep)
            whole = not p.enable_chunked_context
            if whole and req.remaining_prefill_tokens > p.max_num_tokens:
                if req.num_output_tokens == 0:
                    rep.reject(req, "prompt_exceeds_max_num_tokens")  # a fresh prompt over the budget never runs
                    continue
                # a paused request whose prompt + generated tokens outgrew the budget: TensorRT-LLM caps the
                # recomputed prompt at max_input_len (which fits it); here it is recomputed in chunks instead
                whole = False
            if kv.never_fits(req):
                rep.reject(req, "exceeds_kv_capacity")
                continue
            room = p.max_num_tokens - used
            reserve = min(self.reserved_tokens(req), kv.max_tokens)
            n = rep.admit(req, room, whole=whole, reserve_tokens=reserve)
            if n is None:
                break  # FCFS: the head waits for KV (or budget) rather than being overtaken
            plan.add_prefill(req, n)
            used += n
        return plan
