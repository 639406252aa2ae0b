"""Static speculative decoding: every decoding request proposes the same k draft tokens.

As vLLM's speculative config (``num_speculative_tokens``): a fixed k in every step,
whatever the load or the acceptance. The expected tokens emitted per step with per-token
acceptance a is (1 - a^(k+1)) / (1 - a) (Leviathan et al., ICML'23). vLLM has no default
k; 4 is a common setting in its examples and in SpecServe/SmartSpec's static baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.speculators.base import DraftParams, SpeculatorBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SPECULATORS
from sim.schema import param


@dataclass
class FixedParams(DraftParams):
    """The draft length."""

    k: int = param(4, ge=0, doc="draft tokens proposed per decoding request per step")


@SPECULATORS.register("fixed")
class FixedSpeculator(SpeculatorBase):
    """k draft tokens for every decoding request, every step."""

    Params = FixedParams
    own_draws = False  # the replica draws acceptance unless the config asks for per-request rates

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]:
        return [self.params.k] * len(requests)

    def first_round_k(self) -> int:
        """k: vLLM's fixed ``num_speculative_tokens`` are drafted right after a prompt's prefill too."""
        return self.params.k

    def stretch_k(self, rep: ReplicaView) -> int | None:
        """k, while the replica draws acceptance (the proposal then ignores the state)."""
        if self.own_draws or self.params.k <= 0 or type(self).propose is not FixedSpeculator.propose:
            return None
        return self.params.k

    @classmethod
    def example_config(cls) -> dict:
        """CI gate: one replica, model-free drafting with k = 4, acceptance 0.8."""
        return {
            "seed": 0,
            "workload": {"name": "synthetic", "num_requests": 300, "rate_rps": 20.0, "input_tokens": 64,
                         "input_tokens_max": 512, "output_tokens": 16, "output_tokens_max": 256},
            "cluster": {"router": "round_robin", "pools": [{
                "name": "main", "num_replicas": 1,
                "cost_model": {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2.0e-5,
                               "per_decode_token_s": 1.0e-4},
                "scheduler": {"name": "vllm_v1"},
                "kv": {"name": "paged", "num_blocks": 2000},
                "speculation": {"name": "fixed", "k": 4, "acceptance_rate": 0.8},
            }]},
            "slo": {"ttft_s": 0.5, "tpot_s": 0.05},
            "engine": {"progress": False},
        }
