"""Quantized checkpoints keep embeddings and the LM head in 16 bits (hardware/quant_layout.py)."""

from types import SimpleNamespace

import pytest

from hardware.analytic import AnalyticCostModel, AnalyticParams
from hardware.models import get_model
from hardware.quant_layout import lm_head_dtype, model_weight_bytes


def _cm(dtype: str, **params) -> AnalyticCostModel:
    hw = SimpleNamespace(device="H100-SXM", model="Llama-3-70B", tp=1, pp=1, weight_dtype=dtype, kv_dtype="bf16")
    return AnalyticCostModel(AnalyticParams(stack="vllm_v05", **params), hw)


def test_fp8_weights_keep_embeddings_and_head_in_bf16():
    m = get_model("Llama-3-70B")
    kept = m.embedding_params + m.norm_params
    assert model_weight_bytes(m, "fp8") == pytest.approx((m.num_params - kept) * 1.0 + kept * 2.0)
    # Llama-3-70B: 2 x 128,256 x 8,192 embedding + head weights, 2.1 GB more than all-FP8
    assert model_weight_bytes(m, "fp8") - m.weight_bytes("fp8") == pytest.approx(2 * 128_256 * 8_192, rel=0.01)
    assert model_weight_bytes(m, "fp8", keep_16bit=False) == m.weight_bytes("fp8")
    assert model_weight_bytes(m, "bf16") == m.weight_bytes("bf16")  # nothing to keep for a 16-bit model
    assert lm_head_dtype("fp8") == "bf16" and lm_head_dtype("bf16") == "bf16"
    assert lm_head_dtype("int4", keep_16bit=False) == "int4"


def test_kv_capacity_and_head_cost_follow_the_16bit_layers():
    kept, whole = _cm("fp8"), _cm("fp8", quantized_embeddings=True)
    extra = kept.weight_bytes_per_gpu - whole.weight_bytes_per_gpu
    assert extra == pytest.approx(2 * 128_256 * 8_192, rel=0.01)
    assert kept.kv_capacity_bytes(0.9) == pytest.approx(whole.kv_capacity_bytes(0.9) - extra)
    # the LM head reads 16-bit weights each decode step: the step is slower by about the extra bytes
    step_kept = float(kept.decode_step_times_s(8, 8 * 512, 1)[0])
    step_whole = float(whole.decode_step_times_s(8, 8 * 512, 1)[0])
    assert step_kept > step_whole
    head_bytes = 128_256 * 8_192  # one extra byte per head weight
    hbm = kept.device.hbm_gbps * 1e9 * kept.params.memory_efficiency
    assert step_kept - step_whole == pytest.approx(head_bytes / hbm, rel=0.05)
    # BF16 models are untouched by the flag
    assert _cm("bf16").weight_bytes_per_gpu == _cm("bf16", quantized_embeddings=True).weight_bytes_per_gpu
