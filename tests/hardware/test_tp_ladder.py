"""The jinwoong A10G / L4 blog (fid12): ShareGPT closed-loop rows, the pcie_shm latency solved from its TP ladder."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware import fit_v05
from hardware.calibration_constants import ALLREDUCE_ALGOS
from hardware.corpus_engines import v1_server_token_budget

SOURCE = fit_v05.TP_LADDER_SOURCE


def _rows() -> list[dict]:
    return [r for r in cp.load_corpus() if r["source"] == SOURCE]


def test_the_rows_parse_as_sharegpt_closed_loops_of_every_request():
    rows = _rows()
    assert len(rows) == 26 and fid.split_of(SOURCE) == "calibration"
    assert {(r["device"], r["model"], r["tp"]) for r in rows} == {
        ("A10G", "Qwen2.5-7B", 1), ("A10G", "Qwen2.5-7B", 2), ("A10G", "Qwen2.5-7B", 4),
        ("A10G", "Qwen2.5-14B", 2), ("A10G", "Qwen2.5-14B", 4), ("L4", "Qwen2.5-7B", 1)}
    for r in rows:
        assert cp.closed_loop_sharegpt(r) and r["num_prompts"] and r["max_num_seqs"] == 128
        assert cp.stack_for(r) == "vllm_v1_engine" and cp.memory_share(r) == 0.9
        # a 22 GiB GPU: V1's OpenAI-server budget is 2048 tokens, not the 8192 of >= 70 GiB parts
        assert cp.scheduler_for(r) == {"name": "vllm_v1", "max_num_seqs": 128, "max_num_batched_tokens": 2048}
        assert cp.closed_loop_requests(r) == r["num_prompts"]
    assert sum(r["metric"] == "median_tpot_ms" for r in rows) == 19


def test_v1_token_budget_follows_vllm_batch_defaults():
    assert v1_server_token_budget("H100-SXM") == 8192
    assert v1_server_token_budget("A100-80GB") == 2048  # excluded by name in vLLM
    assert v1_server_token_budget("A10G") == v1_server_token_budget("L4") == 2048


def test_every_request_counted_keeps_the_first_wave():
    (row,) = [r for r in _rows() if r["id"] == "jw-6"]  # 7B TP 4, 8 clients, 24 prompts
    draws = cp.closed_loop_draws(row)
    assert len(draws) == cp.CLOSED_LOOP_SHAREGPT_DRAWS and all(len(d) == 24 for d in draws)
    assert not np.array_equal(draws[0], draws[1])  # independent draws
    df = cp.simulate_closed_loop(row, None, draws[0])
    assert len(df) == 24 and int(df["id"].min()) == 0
    assert np.array_equal(df.sort_values("id")["input_tokens"].to_numpy(), draws[0][:, 0])
    dropped = cp.simulate_closed_loop({**row, "notes": ""}, None, draws[0])
    assert len(dropped) == 24 - row["batch"]


def test_the_tpot_rows_predict_within_a_tenth():
    for r in _rows():
        if r["metric"] == "median_tpot_ms":
            assert abs(cp.predict(r) / r["value"] - 1.0) < 0.10, r["id"]


def test_the_solver_reproduces_the_stored_latency_and_the_rule_holds():
    solved = fit_v05.solve_pcie_shm_latency()
    assert ALLREDUCE_ALGOS["pcie_shm"].latency_s == pytest.approx(solved, abs=0.5e-6)
    # fid12's adoption rule: >= 0, the TP 1 row (no all-reduce) within 10%, the TP > 1 TPOT rows within 20%
    assert solved >= 0.0
    (tp1,) = fit_v05.ladder_signed_errors(fit_v05.ladder_rows((1,), tp_above_one=False))
    assert abs(tp1) <= 0.10
    loaded = fit_v05.ladder_signed_errors(fit_v05.ladder_rows((1, 8, 32)))
    assert len(loaded) == 12 and float(np.median(np.abs(loaded))) <= 0.20
    # the bus efficiency, re-solved from fid11's row with the new latency, is the stored one
    assert ALLREDUCE_ALGOS["pcie_shm"].bus_efficiency == pytest.approx(fit_v05.solve_pcie_shm_efficiency(), rel=0.005)


def test_the_trial_constants_are_restored():
    stored = ALLREDUCE_ALGOS["pcie_shm"]
    (row,) = [r for r in _rows() if r["id"] == "jw-3"]  # 7B TP 4, one client
    base = cp.predict(row)
    slower = fit_v05.ladder_signed_errors([row], latency_s=200e-6)[0]
    assert slower > base / row["value"] - 1.0  # 56 all-reduces a step, each 170 us dearer
    assert ALLREDUCE_ALGOS["pcie_shm"] is stored and cp.predict(row) == base
