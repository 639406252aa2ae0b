"""A constant cost model: a fixed time per iteration plus optional per-token terms.

For tests, queueing-law checks (M/D/1) and what-if studies where the step cost should not
depend on any hardware. KV capacity is given directly in tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.cost import Chunks, CostModel
from sim.registry import COST_MODELS
from sim.schema import param


@dataclass
class ConstantCostParams:
    """Iteration time = step_s + per_prefill_token_s x prefill tokens + per_decode_token_s x decodes."""

    step_s: float = param(0.01, ge=0, doc="fixed seconds per iteration")
    per_prefill_token_s: float = param(0.0, ge=0, doc="seconds per prefill token")
    per_decode_token_s: float = param(0.0, ge=0, doc="seconds per decode token")
    kv_capacity_tokens: int = param(1_000_000, ge=1, doc="KV cache size of one replica in tokens")
    kv_bytes_per_token: float = param(131072.0, gt=0, doc="bytes per KV token (for swap and transfer)")
    swap_gbps: float = param(32.0, gt=0, doc="host link bandwidth for swapping, GB/s")
    weight_bytes_per_gpu: float = param(16.06e9, ge=0, doc="weight bytes each GPU loads at a cold start "
                                                          "(default: Llama-3-8B in bf16)")


@COST_MODELS.register("constant")
class ConstantCostModel(CostModel):
    """Fixed time per iteration, optionally per token; hardware-independent."""

    Params = ConstantCostParams

    def __init__(self, params: ConstantCostParams, hardware: object = None):
        self.params = params
        self.kv_bytes_per_token = params.kv_bytes_per_token
        self.weight_bytes_per_gpu = params.weight_bytes_per_gpu

    def step_parts(
        self, prefill: Chunks, num_decode_seqs: int, num_decode_tokens: int, decode_context_tokens: int
    ) -> dict[str, float]:
        p = self.params
        prefill_tokens = 0
        for new, _offset in prefill:
            prefill_tokens += new
        prefill_s = p.per_prefill_token_s * prefill_tokens
        decode_s = p.per_decode_token_s * num_decode_tokens
        return {"overhead": p.step_s, "prefill": prefill_s, "decode": decode_s,
                "total": p.step_s + prefill_s + decode_s}

    def step_time_s(
        self, prefill: Chunks, num_decode_seqs: int, num_decode_tokens: int, decode_context_tokens: int
    ) -> float:
        p = self.params
        prefill_tokens = 0
        for new, _offset in prefill:
            prefill_tokens += new
        return p.step_s + p.per_prefill_token_s * prefill_tokens + p.per_decode_token_s * num_decode_tokens

    def decode_step_times_s(self, num_seqs: int, context_tokens: int, num_steps: int) -> np.ndarray:
        # same scalar arithmetic as step_time_s with no prefill, so bit-identical
        p = self.params
        return np.full(num_steps, p.step_s + p.per_prefill_token_s * 0 + p.per_decode_token_s * num_seqs)

    def decode_times_at_s(self, num_seqs: int, num_tokens: int, contexts: np.ndarray) -> np.ndarray:
        """``step_time_s((), num_seqs, num_tokens, c)`` for every ``c`` of ``contexts`` (the same scalar)."""
        p = self.params
        return np.full(np.shape(contexts), p.step_s + p.per_prefill_token_s * 0 + p.per_decode_token_s * num_tokens)

    def decode_times_grid_s(self, num_seqs: int, contexts: np.ndarray) -> np.ndarray:
        """The pure-decode step times ``decode_step_times_s`` gives, at every context of ``contexts``."""
        p = self.params
        return np.full(np.shape(contexts), p.step_s + p.per_prefill_token_s * 0 + p.per_decode_token_s * num_seqs)

    def kv_capacity_bytes(self, gpu_memory_utilization: float) -> float:
        return self.params.kv_capacity_tokens * self.params.kv_bytes_per_token

    def swap_time_s(self, num_bytes: float) -> float:
        return num_bytes / (self.params.swap_gbps * 1e9)
