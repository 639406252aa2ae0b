"""Orca's iteration-level scheduling (Yu et al., OSDI'22).

Every iteration runs all admitted requests together, whole prompts and decodes mixed, with
no token cap. KV is reserved for the maximum length when a request is admitted, so a
running request never needs preemption, at the price of memory left idle. Reservation
rules, as the vLLM paper compares them: ``max`` reserves ``max_model_len`` tokens (or the
request's true total if larger, so that long requests still run), ``pow2`` the next power of
two of the true total, ``oracle`` exactly the true total (an oracle: it reads output_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.batch import Batch
from sim.engine.replica import Replica
from sim.engine.request import Request
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class OrcaParams:
    """Orca as evaluated in the vLLM paper."""

    max_num_seqs: int = param(256, ge=1, doc="most requests in the batch")
    reservation: Literal["max", "pow2", "oracle"] = param("max", doc="how much KV is reserved per request")
    max_model_len: int = param(2048, ge=1, doc="tokens reserved under reservation=max")
    order: Order = order_param()


@SCHEDULERS.register("orca")
class OrcaScheduler(SchedulerBase):
    """Iteration-level batching with KV reserved up front."""

    Params = OrcaParams

    def reserved_tokens(self, req: Request) -> int:
        """Tokens of KV reserved for ``req`` at admission."""
        total = req.input_tokens + req.output_tokens
        rule = self.params.reservation
        if rule == "max":
            return max(self.params.max_model_len, total)
        if rule == "pow2":
            return 1 << (total - 1).bit_length()
        return total

    def schedule(self, rep: Replica) -> Batch:
        p = self.params
        kv = rep.kv
        batch = Batch()
        for req in rep.running:
            if req.remaining_prefill_tokens == 1 and req.num_output_tokens > 0:
                batch.decode.append(req)
            else:
                batch.add_prefill(req, req.remaining_prefill_tokens)
        while rep.waiting and len(rep.running) < p.max_num_seqs:
            req = self.peek(rep)
            reserve = min(self.reserved_tokens(req), kv.num_blocks * kv.block_size)
            if req.input_tokens + req.output_tokens > kv.num_blocks * kv.block_size:
                self.reject_head(rep, req, "exceeds_kv_capacity")
                continue
            if kv.blocks_for(reserve) - kv.held_blocks(req) > kv.num_available:
                break
            kv.match_prefix(req)
            self.pop(rep, req)
            kv.allocate(req, reserve - req.num_computed_tokens)
            rep.admit(req)
            batch.add_prefill(req, req.remaining_prefill_tokens)
        return batch
