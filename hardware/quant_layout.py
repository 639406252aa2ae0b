"""Which weights a quantized checkpoint actually stores in its low-precision dtype.

A model served with ``weight_dtype: fp8`` (or ``int8`` / ``int4``) is not quantized whole:
the engines quantize only the linear layers of the transformer blocks, and keep the token
embedding, the LM head and the norms in 16 bits.

- vLLM: ``Fp8Config.get_quant_method`` (vllm/model_executor/layers/quantization/fp8.py)
  returns an FP8 method only for ``LinearBase`` layers; ``VocabParallelEmbedding`` and
  ``ParallelLMHead`` get none and load in the model's dtype. The same holds for its
  GPTQ / AWQ / Marlin configs.
- Neural Magic's FP8 and INT8 checkpoints (the Llama-3/3.1 ``-FP8`` models benchmarked in
  the corpus) say so on their model cards: "Only the weights [and activations] of the linear
  operators within transformers blocks are quantized" (their ``ignore: [lm_head]`` recipe).
- TensorRT-LLM / ModelOpt quantize ``lm_head`` only when asked (it is excluded by default).

Effects the cost model prices with this module (``AnalyticCostModel``): weight memory per GPU
(hence the KV capacity: Llama-3-70B in FP8 holds 2 x 128,256 x 8,192 embedding + head
weights, 2.1 GB more in BF16 than in FP8, which is about half of what a single 80 GB GPU has
left for KV at ``gpu_memory_utilization`` 0.9), and the LM head's bytes read and FLOPs per
step (a 16-bit GEMM). ``keep_16bit: false`` (cost-model param ``quantized_embeddings: true``)
restores the old whole-model pricing.
"""

from __future__ import annotations

from hardware.models import ModelSpec, dtype_bytes

#: The precision the unquantized layers keep.
HIGH_PRECISION = "bf16"


def is_quantized(dtype: str) -> bool:
    """A weight dtype narrower than 16 bits."""
    return dtype_bytes(dtype) < dtype_bytes(HIGH_PRECISION)


def lm_head_dtype(weight_dtype: str, keep_16bit: bool = True) -> str:
    """The dtype the LM head runs in for a checkpoint of ``weight_dtype``."""
    return HIGH_PRECISION if keep_16bit and is_quantized(weight_dtype) else weight_dtype


def model_weight_bytes(model: ModelSpec, weight_dtype: str, keep_16bit: bool = True) -> float:
    """Bytes of all weights of ``model`` served in ``weight_dtype``: the transformer blocks'
    linear layers in that dtype, embeddings / LM head / norms in 16 bits when quantized."""
    if not (keep_16bit and is_quantized(weight_dtype)):
        return model.weight_bytes(weight_dtype)
    kept = model.embedding_params + model.norm_params
    return (model.num_params - kept) * dtype_bytes(weight_dtype) + kept * dtype_bytes(HIGH_PRECISION)
