"""DistServe's prefill-instance batching (Zhong et al., OSDI'24).

Whole prompts, FCFS, batched while the batch has at most ``max_num_seqs`` prompts and
``max_num_batched_tokens`` tokens and their KV fits; a single prompt over the token cap runs
alone rather than starving. Meant for replicas of a ``prefill`` pool, whose requests leave
for a decode replica when their prefill ends; any request still running here decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.batch import Batch
from sim.engine.replica import Replica
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class DistServePrefillParams:
    """DistServe's prefill batching caps."""

    max_num_seqs: int = param(128, ge=1, doc="most prompts in one prefill batch")
    max_num_batched_tokens: int = param(8192, ge=1, doc="most prompt tokens in one prefill batch")
    order: Order = order_param()


@SCHEDULERS.register("distserve_prefill")
class DistServePrefillScheduler(SchedulerBase):
    """Prefill-only batches of whole prompts under sequence and token caps."""

    Params = DistServePrefillParams

    def schedule(self, rep: Replica) -> Batch:
        p = self.params
        kv = rep.kv
        batch = Batch()
        tokens_used = 0
        while rep.waiting and len(batch.prefill) < p.max_num_seqs:
            req = self.peek(rep)
            if self.never_fits(rep, req, 0):
                self.reject_head(rep, req, "exceeds_kv_capacity")
                continue
            done = self.covered_tokens(rep, req)
            tokens = req.input_tokens + req.num_output_tokens - done
            if batch.prefill and tokens_used + tokens > p.max_num_batched_tokens:
                break
            if kv.blocks_for(done + tokens) - kv.held_blocks(req) > kv.num_available:
                break
            kv.match_prefix(req)
            tokens = req.remaining_prefill_tokens
            self.start(rep, req, tokens, batch)
            tokens_used += tokens
        if not batch:
            self.schedule_running(rep, batch, None, phase="decode")
        return batch

    @classmethod
    def example_config(cls) -> dict:
        """One prefill replica under load handing off to one vLLM v1 decode replica (distserve hand-off)."""
        from sim.tools.gates import pool

        return {"cluster": {"router": "least_outstanding", "handoff": {"name": "distserve"},
                            "pools": [pool("prefill", 1, "distserve_prefill", 2000, role="prefill"),
                                      pool("decode", 1, "vllm_v1", 2000, role="decode")]}}
