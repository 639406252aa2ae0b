"""The fid6 sensitivity check (experiments/v05_mechanism_sensitivity.py): trial settings apply only
where their condition holds, and the host-CPU trial moves the A100 rows the way the README says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hardware import corpus_predict as cp

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "v05_mechanism_sensitivity.py"
_spec = importlib.util.spec_from_file_location("v05_mechanism_sensitivity", _PATH)
sens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sens)


def _row(rid: str) -> dict:
    return next(r for r in cp.load_corpus() if r["id"] == rid)


def test_trials_switch_on_only_where_their_condition_holds():
    assert set(sens.trials_for(_row("lam-12b"))) == set()  # H100, dense FP8: none
    assert set(sens.trials_for(_row("lam-1b"))) == {"cpu x2", "cpu x2.5", "dequant +0.5", "dequant +1"}
    assert set(sens.trials_for(_row("lam-5b"))) == {"cpu x2", "cpu x2.5", "moe 0.32", "moe 0.16"}  # A100 bf16
    assert set(sens.trials_for(_row("lam-16a"))) == {"moe 0.32", "moe 0.16"}  # H100 Mixtral


def test_cpu_trial_closes_the_a100_floor_and_dequant_does_not_at_tp8():
    row = _row("lam-9b")  # Llama-3-8B FP8, 8x A100, median ITL
    stored = cp.predict(row) / row["value"] - 1.0
    cpu = cp.predict(row, sens.cpu_trial(2.5)) / row["value"] - 1.0
    deq = cp.predict(row, sens.dequant_trial(1.0)) / row["value"] - 1.0
    assert stored < -0.4 and abs(cpu) < 0.1  # the floor is per step / per sequence, host-side
    assert deq < -0.4  # a GEMM dequantisation cost barely moves a TP 8 step of an 8B model


def test_moe_kernel_check_uses_the_printed_figures():
    assert sens.MOE_KERNEL_H100_TP2[2] == (1024, 833.72)


def test_a_host_factor_tied_to_a100_contradicts_the_a100_calibration_rows():
    row = _row("sgl-10")  # vLLM 0.6.0 (vllm_v1) on SGLang's A100 host, median TPOT: in-sample within 7%
    stored = cp.predict(row) / row["value"] - 1.0
    trial = cp.predict(row, sens.cpu_trial(2.0, cp.stack_for(row))) / row["value"] - 1.0
    assert abs(stored) < 0.1 and trial > 0.25
