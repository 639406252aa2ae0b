"""The draft model's share of a pool's memory: its weights and its KV next to the target's.

vLLM V1 loads the draft model into the same worker as the target (``DraftModelProposer.load_model``
in ``vllm/v1/spec_decode/draft_model.py``: the draft's attention layers are registered in the same
config as the target's), so the memory profile that sizes the KV cache counts both models' weights,
and the KV cache spec holds both models' attention layers; layers of one attention type share a
group whose page is the sum of the layers' pages (``UniformTypeKVCacheSpecs.page_size_bytes`` in
``vllm/v1/kv_cache_interface.py``), so one block of ``block_size`` token slots holds the target's
and the draft's KV for those tokens. The pool's token capacity is therefore::

    tokens = (memory after the target's and the draft's weights and the activation reserve)
             / (target + draft KV bytes per token)

The activation reserve stays the target's: the draft's forward passes run after the target's in
the same step, so the profiled peak is the larger model's, not the sum (an assumption: vLLM's
profile run exercises both, and the 0.5B-class drafts' activations are a small part of it).
"""

from __future__ import annotations

from typing import Any

from sim.errors import ConfigError


def draft_kv_capacity_bytes(target: Any, draft: Any, gpu_memory_utilization: float) -> float:
    """Bytes of the target's KV the pool can hold when ``draft`` shares its GPUs: the target's
    capacity less the draft's weights, times the target's share of each token's KV. A KV
    manager that divides this by the target's ``kv_bytes_per_token`` gets the token count
    above (its blocks stay priced at the target's bytes for swaps and transfers)."""
    free = target.kv_capacity_bytes(gpu_memory_utilization) - draft.weight_bytes_per_gpu * draft.num_gpus
    if free <= 0:
        raise ConfigError("no room for the KV cache next to the draft model's weights "
                          f"({draft.weight_bytes_per_gpu * draft.num_gpus / (1 << 30):.2f} GiB): use a smaller "
                          "draft model or a bigger device", "speculation.draft_model")
    per_token = target.kv_bytes_per_token
    return free * per_token / (per_token + draft.kv_bytes_per_token)


class DraftKVSizing:
    """The cost model a pool's KV manager is sized with when a draft model shares the GPUs: the
    target's, with ``kv_capacity_bytes`` taken by ``draft_kv_capacity_bytes``."""

    def __init__(self, target: Any, draft: Any):
        self._target, self._draft = target, draft

    def kv_capacity_bytes(self, gpu_memory_utilization: float) -> float:
        return draft_kv_capacity_bytes(self._target, self._draft, gpu_memory_utilization)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
