"""TensorRT-LLM's batch scheduler with the ``GUARANTEED_NO_EVICT`` capacity policy.

TensorRT-LLM schedules in two stages (its ``CapacityScheduler`` then ``MicroBatchScheduler``,
see the batch-manager docs): the capacity stage admits a waiting request only if the KV
cache can hold the request's whole sequence (prompt plus ``max_new_tokens``) on top of what
the running requests have reserved, so a running request is never evicted; the micro-batch
stage then fills one iteration up to ``max_num_tokens`` tokens and ``max_batch_size``
requests, in order: every generation request takes one token, context (prefill) requests
take their whole prompt, or a chunk of it with ``enable_chunked_context``. Without chunked
context a prompt longer than ``max_num_tokens`` can never run and is rejected.

Neither ``orca`` (reserves, no token budget) nor ``vllm_v1`` (budget, but preempts) is this.
Defaults are TensorRT-LLM's (``max_num_tokens`` 8192, ``max_batch_size`` 2048 in
``trtllm-serve`` / ``trtllm-bench``); ``max_seq_len`` stands in for the request's
``max_new_tokens`` limit the server knows (the true output length is never read): each
admitted request reserves ``max_seq_len`` tokens of KV (at least its prompt and one token),
unless ``max_new_tokens`` is given, then prompt + ``max_new_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.views import RequestView
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class TrtllmCapacityParams:
    """TensorRT-LLM batch-manager defaults (GUARANTEED_NO_EVICT)."""

    max_num_tokens: int = param(8192, ge=1, doc="token budget per iteration (generation + context tokens)")
    max_batch_size: int = param(2048, ge=1, doc="most requests in flight")
    max_seq_len: int = param(4096, ge=2, doc="KV tokens reserved per request (stands in for max_new_tokens)")
    max_new_tokens: int | None = param(None, ge=1, doc="if set, reserve prompt + this instead of max_seq_len")
    enable_chunked_context: bool = param(False, doc="split prompts over iterations to fit max_num_tokens")
    order: Order = order_param()


@SCHEDULERS.register("trtllm_capacity")
class TrtllmCapacityScheduler(SchedulerBase):
    """No-evict KV reservation at admission plus a per-iteration token budget."""

    Params = TrtllmCapacityParams

    @classmethod
    def example_config(cls) -> dict:
        """The scheduler default scenario (prompts <= 1024, outputs <= 128) with a 2048-token
        budget and 1200-token reservations (the scenario's longest request fits)."""
        return {"cluster.pools[0].scheduler.max_num_tokens": 2048, "cluster.pools[0].scheduler.max_seq_len": 1200}

    def reserved_tokens(self, req: RequestView) -> int:
        p = self.params
        if p.max_new_tokens is not None:
            return req.input_tokens + p.max_new_tokens
        return max(p.max_seq_len, req.input_tokens + 1)

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        # running requests grow inside their reservation, so nothing is ever preempted here
        used, _ = self.schedule_running(rep, plan, p.max_num_tokens)
        kv = rep.kv
        while rep.waiting and rep.num_running < p.max_batch_size and used < p.max_num_tokens:
            req = self.peek(rep)
            if not p.enable_chunked_context and req.remaining_prefill_tokens > p.max_num_tokens:
                rep.reject(req, "prompt_exceeds_max_num_tokens")
                continue
            if kv.never_fits(req):
                rep.reject(req, "exceeds_kv_capacity")
                continue
            room = p.max_num_tokens - used
            reserve = min(self.reserved_tokens(req), kv.max_tokens)
            n = rep.admit(req, room, whole=not p.enable_chunked_context, reserve_tokens=reserve)
            if n is None:
                break  # FCFS: the head waits for KV (or budget) rather than being overtaken
            plan.add_prefill(req, n)
            used += n
        return plan
