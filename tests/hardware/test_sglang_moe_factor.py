"""The ``sglang`` stack's routed-expert factor (SOURCES.md fid15c) and the bench_one_batch static metrics."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import calibration_constants as cc
from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware import fit_sglang_moe


def _row(metric: str, **changes) -> dict:
    row = next(r for r in cp.load_corpus() if r["source"] == fit_sglang_moe.SOURCE)
    return {**row, "metric": metric, **changes}


def test_bench_one_batch_metrics_split_the_static_latency():
    # prefill_s is the one prefill iteration, decode_median_s the median decode iteration; with the
    # decode iterations they add up to latency_s
    row = _row("latency_s", batch=4, input_len=256, output_len=9)
    cm = cp.cost_model(row)
    prefill = cm.step_time_s([(256, 0)] * 4, 0, 0, 0)
    decode = cm.decode_step_times_s(4, 4 * 257, 8)
    assert cp.predict({**row, "metric": "prefill_s"}) == pytest.approx(prefill, rel=1e-12)
    assert cp.predict({**row, "metric": "decode_median_s"}) == pytest.approx(float(np.median(decode)), rel=1e-12)
    assert cp.predict(row) == pytest.approx(prefill + float(decode.sum()), rel=1e-12)
    assert decode[-1] > decode[0]  # the context grows, so the median is not just any step


def test_sglang_moe_factor_is_the_rounded_solution_and_only_the_sglang_stack_takes_it():
    assert fit_sglang_moe.SOURCE in fid.CALIBRATION_SOURCES
    solved = fit_sglang_moe.solve()
    assert solved is not None and 0.0 < solved < 1.0
    assert round(solved, 2) == cc.SGLANG_FUSED_MOE_COMPUTE_FACTOR
    assert cc.STACKS["sglang"].moe_compute_factor == cc.SGLANG_FUSED_MOE_COMPUTE_FACTOR
    assert cc.STACKS["vllm_v05"].moe_compute_factor == cc.VLLM_FUSED_MOE_COMPUTE_FACTOR  # vLLM's own, unchanged
    assert cc.STACKS["trtllm"].moe_compute_factor == 1.0


def test_solve_row_is_reproduced_and_the_factor_slows_only_moe_prefill():
    solve_row = next(r for r in fit_sglang_moe.source_rows() if r["id"] == fit_sglang_moe.SOLVE_ROW)
    assert cp.predict(solve_row) == pytest.approx(solve_row["value"], rel=0.005)
    # at factor 1 the same iteration is priced far faster: the factor carries the gap (fid15c)
    assert fit_sglang_moe.prefill_s(1.0) < 0.6 * solve_row["value"]
    # a dense model on the sglang stack is priced as before (no routed experts to slow down)
    dense = {**solve_row, "model": "Llama-3-70B", "weight_dtype": "bf16"}
    assert cp.predict(dense) == pytest.approx(cp.predict(dense, {"moe_compute_factor": 1.0}), rel=1e-12)
