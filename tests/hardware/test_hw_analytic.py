"""The analytic cost model: registration, bit-identical decode runs, monotonicity, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.analytic import AnalyticCostModel, AnalyticParams
from hardware.devices import GIB
from hardware.energy import energy_and_cost
from hardware.models import get_model
from sim import schema
from sim.config import HardwareConfig
from sim.cost import CostModel
from sim.errors import ConfigError
from sim.registry import COST_MODELS


def make_model(device="H100-SXM", model="Llama-3-8B", tp=1, pp=1, weight_dtype="bf16", kv_dtype="bf16", **params):
    hw = HardwareConfig(device=device, model=model, tp=tp, pp=pp, weight_dtype=weight_dtype, kv_dtype=kv_dtype)
    return AnalyticCostModel(schema.parse(AnalyticParams, params), hw)


def test_registered_and_built_from_config():
    cls = COST_MODELS.get("analytic")
    assert cls is AnalyticCostModel and issubclass(cls, CostModel)
    cm = cls(schema.parse(cls.Params, {"stack": "vllm", "weights_in": "hbm"}), HardwareConfig())
    assert cm.num_gpus == 1 and cm.kv_bytes_per_token == 131072
    with pytest.raises(ConfigError, match="cost_model.c2c_shar"):
        schema.parse(cls.Params, {"c2c_shar": 0.5}, "cost_model")


@pytest.mark.parametrize("setup", [
    {}, {"model": "Mixtral-8x7B", "tp": 2}, {"model": "Llama-2-70B", "tp": 4, "pp": 2},
    {"device": "GH200-96GB:3g.48gb", "weights_in": "grace"}, {"device": "H200", "model": "DeepSeek-V3", "tp": 8,
                                                                "weight_dtype": "fp8"},
])
def test_decode_step_times_bit_identical(setup):
    cm = make_model(**setup)
    for num_seqs, ctx in ((1, 17), (37, 37 * 900), (256, 256 * 3000)):
        fast = cm.decode_step_times_s(num_seqs, ctx, 300)
        slow = np.array([cm.step_time_s((), num_seqs, num_seqs, ctx + i * num_seqs) for i in range(300)])
        assert np.array_equal(fast, slow)
    assert cm.decode_step_times_s(4, 100, 0).shape == (0,)


def test_parts_add_up_and_total_is_step_time():
    cm = make_model(model="Llama-2-70B", tp=4, pp=2)
    batch = ([(512, 0), (256, 1024)], 16, 16, 16 * 2000)
    parts = cm.step_parts(*batch)
    assert parts["total"] == cm.step_time_s(*batch)
    summed = sum(parts[k] for k in ("compute", "memory", "comm", "overhead", "bubble"))
    assert summed == pytest.approx(parts["total"], rel=1e-9)
    assert parts["comm"] > 0 and parts["bubble"] > 0


@settings(max_examples=60, deadline=None)
@given(new=st.integers(1, 4096), offset=st.integers(0, 8192), seqs=st.integers(0, 256), ctx=st.integers(0, 4000),
       extra=st.integers(1, 512), which=st.sampled_from(["Llama-3-8B", "Mixtral-8x7B", "DeepSeek-V3"]))
def test_more_tokens_never_cost_less(new, offset, seqs, ctx, extra, which):
    cm = _models()[which]
    decode_ctx = seqs * (ctx + 1)
    base = cm.step_time_s([(new, offset)], seqs, seqs, decode_ctx)
    # the stack switches all-reduce algorithm at a message size (vLLM: its custom all-reduce up to
    # 8 MB, NCCL above), so an iteration just past that size may be cheaper: the one exception
    threshold = getattr(cm, "_ar_threshold_tokens", None)
    crosses = threshold is not None and new + seqs <= threshold < new + extra + seqs
    if not crosses:
        assert cm.step_time_s([(new + extra, offset)], seqs, seqs, decode_ctx) >= base
    assert cm.step_time_s([(new, offset + extra)], seqs, seqs, decode_ctx) >= base
    if threshold is None or not (new + seqs <= threshold < new + seqs + 1):
        assert cm.step_time_s([(new, offset)], seqs + 1, seqs + 1, decode_ctx + ctx + 1) >= base
    assert cm.step_time_s([(new, offset)], seqs, seqs, decode_ctx + extra) >= base


_CACHE: dict = {}


def _models():
    if not _CACHE:
        _CACHE["Llama-3-8B"] = make_model()
        _CACHE["Mixtral-8x7B"] = make_model(model="Mixtral-8x7B", tp=2)
        _CACHE["DeepSeek-V3"] = make_model(device="H200", model="DeepSeek-V3", tp=8, weight_dtype="fp8")
    return _CACHE


@pytest.mark.parametrize("model", ["Llama-3-70B", "Qwen3-235B-A22B", "DeepSeek-V3"])
def test_more_tp_never_increases_per_gpu_memory(model):
    per_gpu = []
    for tp in (1, 2, 4, 8):
        cm = make_model(device="B200", model=model, tp=tp)
        kv = cm.kv_bytes_per_token / tp
        per_gpu.append((cm.weight_bytes_per_gpu, kv, cm.activation_reserve_bytes()))
    for a, b in zip(per_gpu, per_gpu[1:], strict=False):
        assert all(y <= x for x, y in zip(a, b, strict=True))


def test_more_tp_is_faster_for_large_prefill():
    times = [make_model(model="Llama-3-70B", tp=tp).prefill_time_s(4096) for tp in (1, 2, 4, 8)]
    assert times == sorted(times, reverse=True)


def test_kv_capacity_7b_on_mig():
    with pytest.raises(ConfigError) as err:
        make_model(device="H100-SXM:1g.10gb", model="Llama-2-7B").kv_capacity_bytes(0.9)
    assert "Llama-2-7B" in str(err.value) and "H100-SXM:1g.10gb" in str(err.value)
    cm = make_model(device="H100-SXM:3g.40gb", model="Llama-2-7B")
    m = get_model("Llama-2-7B")
    reserve = GIB + 2048 * (4 * 4096 + 2 * 11008 + 32000) * 2
    expected = 39.5 * GIB * 0.9 - m.num_params * 2 - reserve
    assert cm.kv_capacity_bytes(0.9) == pytest.approx(expected)
    assert cm.kv_capacity_bytes(0.9) / cm.kv_bytes_per_token > 30_000


def test_kv_capacity_scales_with_replica():
    one = make_model(device="H100-SXM", model="Llama-3-70B", tp=4)
    two = make_model(device="H100-SXM", model="Llama-3-70B", tp=8)
    assert two.kv_capacity_bytes(0.9) > one.kv_capacity_bytes(0.9)


def test_mig_slice_slower_than_whole_gpu_and_no_tp():
    whole = make_model()
    part = make_model(device="H100-SXM:3g.40gb")
    assert part.decode_time_s(8, 1000) > whole.decode_time_s(8, 1000)
    assert part.prefill_time_s(2048) > whole.prefill_time_s(2048)
    with pytest.raises(ConfigError, match="MIG"):
        make_model(device="H100-SXM:3g.40gb", tp=2)


def test_grace_tier_streams_over_c2c():
    hbm = make_model(device="GH200-96GB")
    grace = make_model(device="GH200-96GB", weights_in="grace")
    shared = make_model(device="GH200-96GB", weights_in="grace", c2c_share=0.5)
    t = [m.decode_time_s(1, 1000) for m in (hbm, grace, shared)]
    assert t[0] < t[1] < t[2]
    assert grace.kv_capacity_bytes(0.9) > hbm.kv_capacity_bytes(0.9)  # weights moved out of HBM
    kv_grace = make_model(device="GH200-96GB", kv_in="grace")
    assert kv_grace.kv_capacity_bytes(0.9) == pytest.approx(480e9 * 0.9)
    assert kv_grace.decode_time_s(64, 4000) > hbm.decode_time_s(64, 4000)
    with pytest.raises(ConfigError, match="Grace"):
        make_model(device="H100-SXM", weights_in="grace")


def test_quickstart_range_llama3_8b_h100():
    cm = make_model()
    tpot = cm.decode_time_s(16, 1000)
    ttft = cm.prefill_time_s(1024)
    assert 0.005 < tpot < 0.02
    assert 0.015 < ttft < 0.08


def test_swap_power_price():
    cm = make_model()
    assert cm.swap_time_s(35e9) == pytest.approx(cm.params.swap_overhead_s + 1.0)
    assert (cm.power_w("prefill"), cm.power_w("decode"), cm.power_w("idle")) == (700, 380, 75)
    assert cm.price_per_gpu_hour() == 4.25
    assert make_model(price_per_gpu_hour=2.0).price_per_gpu_hour() == 2.0


def test_energy_and_cost():
    cm = make_model(model="Llama-3-70B", tp=4)
    out = energy_and_cost(cm, busy_prefill_s=10.0, busy_decode_s=100.0, idle_s=50.0, wall_span_s=160.0,
                          num_output_tokens=1_000_000)
    assert out["energy_j"] == pytest.approx(4 * (700 * 10 + 380 * 100 + 75 * 50))
    assert out["gpu_hours"] == pytest.approx(4 * 160 / 3600)
    assert out["cost_usd"] == pytest.approx(out["gpu_hours"] * 4.25)
    assert out["cost_usd_per_mtok"] == pytest.approx(out["cost_usd"])
    assert math.isclose(out["energy_kwh"], out["energy_j"] / 3.6e6)


def test_device_efficiency_factor_scales_the_kernel_efficiencies_and_defaults_to_the_device():
    """fid10: ``device_efficiency_factor`` multiplies the GEMM, attention and memory efficiencies; unset, a
    device takes its stored factor (``GDDR_PCIE_EFFICIENCY_FACTOR``, 1 for every part as stored)."""
    from hardware import calibration_constants as cc

    base = make_model(device="A10G", model="Llama-2-7B")
    half = make_model(device="A10G", model="Llama-2-7B", device_efficiency_factor=0.5)
    assert cc.GDDR_PCIE_EFFICIENCY_FACTOR["A10G"] == 1.0 and base.params.memory_efficiency == cc.MEMORY_EFFICIENCY
    assert half.params.memory_efficiency == 0.5 * cc.MEMORY_EFFICIENCY
    assert half.params.gemm_compute_efficiency == 0.5 * cc.GEMM_COMPUTE_EFFICIENCY
    assert half.params.attention_compute_efficiency == 0.5 * cc.ATTENTION_COMPUTE_EFFICIENCY
    step = base.decode_step_times_s(8, 8 * 512, 1)[0]
    assert half.decode_step_times_s(8, 8 * 512, 1)[0] > 1.5 * step
    explicit = make_model(device="H100-SXM", device_efficiency_factor=1.0)
    assert make_model().decode_step_times_s(8, 4096, 1)[0] == explicit.decode_step_times_s(8, 4096, 1)[0]
