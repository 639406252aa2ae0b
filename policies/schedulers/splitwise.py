"""Splitwise's machine-level batching (Patel et al., ISCA'24).

vLLM-style chunked batching under Splitwise's caps (at most 512 sequences and 2048 tokens
per batch) with its starvation guard: a request preempted ``max_preemptions`` times (4)
goes to the front of the waiting queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, order_param
from policies.schedulers.vllm_v1 import VllmV1Scheduler
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
    order: Order = order_param()


@SCHEDULERS.register("splitwise")
class SplitwiseScheduler(VllmV1Scheduler):
    """Chunked batching with Splitwise's caps; starved requests first."""

    Params = SplitwiseParams

    def peek(self, rep: ReplicaView) -> RequestView:
        limit = self.params.max_preemptions
        for req in rep.waiting:
            if req.num_preemptions >= limit:
                return req
        return super().peek(rep)
