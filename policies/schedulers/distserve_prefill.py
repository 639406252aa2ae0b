"""DistServe's prefill-instance batching (Zhong et al., OSDI'24).

Whole prompts, FCFS, batched while the batch has at most ``max_num_seqs`` prompts and
``max_num_batched_tokens`` tokens and their KV fits; a single prompt over the token cap runs
alone rather than starving. Meant for replicas of a ``prefill`` pool, whose requests leave
for a decode replica when their prefill ends; any request still running here decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
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

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        self.admit_waiting(rep, plan, p.max_num_batched_tokens, max_seqs=1 << 62, whole=True,
                           lenient_first=True, max_new=p.max_num_seqs)
        if not plan:
            self.schedule_running(rep, plan, None, phase="decode")
        return plan

    @classmethod
    def example_config(cls) -> dict:
        """One prefill replica under load handing off to one vLLM v1 decode replica (distserve hand-off)."""
        from sim.tools.gates import pool

        return {"cluster": {"router": "least_outstanding", "handoff": {"name": "distserve"},
                            "pools": [pool("prefill", 1, "distserve_prefill", 2000, role="prefill"),
                                      pool("decode", 1, "vllm_v1", 2000, role="decode")]}}
