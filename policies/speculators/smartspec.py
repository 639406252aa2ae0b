"""SmartSpec (Liu et al., 2024, "Optimizing Speculative Decoding for Serving Large Language
Models Using Goodput"): one draft length per step for the whole batch, chosen for goodput.

Each step, for k in 0..max_k (0 = no speculation), the policy predicts

    goodput(k) = sum_i (1 - a_i^(k+1)) / (1 - a_i)  /  (draft(k) + verify(B, (k + 1) B))

and proposes the best k to every decoding request. a_i is request i's acceptance estimated
online, a moving average of its observed outcomes (``estimate.py``; a new request starts at
the pool-wide estimate). Under load the verify pass grows with (k + 1) B while the gain per
request does not, so k falls to 0: speculation turns itself off. Up to 3.2x lower mean
latency than no speculation in the paper.

Step time: the paper fits a linear model of batch time against batched tokens (profiled);
here the pool's own cost model prices it (a perfect profiler; prefill chunks batched into
the same step are not in the estimate, as in SmartSpec, which speculates decode-only
batches). ``max_k`` (the paper's largest proposed length is not fixed; 8 as in SpecServe)
and ``history_weight`` (the moving average's memory, not given) are our parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.speculators.estimate import OnlineParams, OnlineSpeculatorBase, expected_emitted
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SPECULATORS
from sim.schema import param


@dataclass
class SmartSpecParams(OnlineParams):
    """Largest draft length and the acceptance estimate's memory."""

    max_k: int = param(8, ge=1, le=32, doc="largest draft length considered (0..max_k)")


@SPECULATORS.register("smartspec")
class SmartSpecSpeculator(OnlineSpeculatorBase):
    """The batch-wide k that maximises predicted goodput; acceptance learnt online per request."""

    Params = SmartSpecParams

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.last_k = 0  # the k chosen in the latest step (for plots)

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]:
        n = len(requests)
        if not n:
            return []
        k_max = self.params.max_k
        est = self.estimate
        alphas = [min(est.get(r.id), 0.999) for r in requests]
        drafts = self.uniform_draft_times_s(rep, requests, k_max)
        best_k = 0
        best = n / self.target_step_s(rep, requests, n)
        for k in range(1, k_max + 1):
            emitted = 0.0
            for a in alphas:
                emitted += expected_emitted(a, k)
            goodput = emitted / (drafts[k] + self.target_step_s(rep, requests, (k + 1) * n))
            if goodput > best:
                best, best_k = goodput, k
        self.last_k = best_k
        return [best_k] * n

    @classmethod
    def example_config(cls) -> dict:
        """CI gate: one H100 with Llama-3-8B, a Llama-3.2-1B draft, chat acceptance, Poisson load."""
        return _gate_config({"name": "smartspec", "draft_model": "Llama-3.2-1B", "acceptance": "chat"})


def _gate_config(speculation: dict) -> dict:
    """The adaptive speculators' shared gate scenario."""
    return {
        "seed": 0,
        "workload": {"name": "synthetic", "num_requests": 200, "rate_rps": 4.0, "input_tokens": 256,
                     "input_tokens_max": 1024, "output_tokens": 64, "output_tokens_max": 512},
        "cluster": {"router": "round_robin", "pools": [{
            "name": "main", "num_replicas": 1, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B"},
            "cost_model": "analytic", "scheduler": {"name": "vllm_v1"}, "kv": {"name": "paged"},
            "speculation": speculation,
        }]},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.04},
        "engine": {"progress": False},
    }
