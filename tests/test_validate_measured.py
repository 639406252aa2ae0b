"""Issue 17: `servesim validate` / `fit` on the shipped real per-request measurement file.

traces/data/measured/fmbench_llama2_7b_a10g_tgi110_requests.csv is FMBench's published run of
Llama-2-7B on one A10G (TGI 1.1.0, one request at a time, two runs of the same 15 prompts); it
records end-to-end latency only.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sim.errors import ConfigError
from sim.tools import validate as v
from sim.tools.cli import main
from traces.lengths import LengthSampler, LengthsConfig

REPO = Path(__file__).resolve().parents[1]
MEASURED = REPO / "traces/data/measured/fmbench_llama2_7b_a10g_tgi110_requests.csv"
CONFIG = REPO / "configs/validate_fmbench_llama2_7b_a10g.yaml"


def _errors(capsys) -> dict:
    return json.loads(capsys.readouterr().out.split("\nfigure:")[0])["rel_error"]


def _abs_sum(err: dict) -> float:
    return sum(abs(err[m][s]) for m in v.METRICS for s in ("mean", "p50") if err[m][s] is not None)


def test_shipped_file_is_the_recorded_one_and_reads_as_a_closed_loop():
    sha = hashlib.sha256(MEASURED.read_bytes()).hexdigest()
    assert sha in (REPO / "traces/data/README.md").read_text()
    result = v.load_result(MEASURED)
    assert result["arrival"] == {"concurrency": 1}
    assert len(result["requests"]) == 30
    assert all(math.isnan(x) for x in result["measured"]["ttft_s"])  # E2E only in this source
    assert result["measured"]["e2e_s"].mean() == pytest.approx(2.5745, abs=1e-3)


def test_validate_prints_errors_and_a_figure_and_fit_lowers_them(tmp_path, capsys):
    fig = tmp_path / "before.png"
    assert main(["validate", str(MEASURED), "--config", str(CONFIG), "--figure", str(fig), "--json"]) == 0
    before = _errors(capsys)
    assert before["ttft_s"]["mean"] is None and before["tpot_s"]["p50"] is None  # not measured
    assert all(math.isfinite(before["e2e_s"][s]) for s in v.STATS)
    assert fig.stat().st_size > 0
    stack = tmp_path / "stack.yaml"
    assert main(["fit", str(MEASURED), "--config", str(CONFIG), "--out", str(stack)]) == 0
    capsys.readouterr()
    assert "base_stack: vllm" in stack.read_text()
    assert main(["validate", str(MEASURED), "--config", str(CONFIG), "--stack-file", str(stack),
                 "--figure", str(tmp_path / "after.png"), "--json"]) == 0
    after = _errors(capsys)
    assert _abs_sum(after) < _abs_sum(before)


def test_csv_inputs_that_cannot_be_simulated_name_the_problem(tmp_path):
    untimed = tmp_path / "untimed.csv"
    untimed.write_text("input_tokens,output_tokens\n10,5\n")
    with pytest.raises(ConfigError, match="at least one of ttft_s"):
        v.load_result(untimed)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("input_tokens,output_tokens,e2e_s,concurrency\n10,5,0.1,1\n10,5,0.1,4\n")
    with pytest.raises(ConfigError, match="concurrency must hold one value"):
        v.load_result(mixed)


def test_lengths_in_file_order_replay_the_requests_and_cycle(tmp_path):
    """validate's closed loop takes the measured requests in order (not resampled)."""
    path = tmp_path / "lengths.csv"
    path.write_text("input_tokens,output_tokens\n10,1\n20,2\n30,3\n")
    sampler = LengthSampler(LengthsConfig(file=str(path), order="file"))
    rng = np.random.default_rng(0)
    firsts = [sampler.sample(rng, 1) for _ in range(4)]
    assert [(int(i[0]), int(o[0])) for i, o in firsts] == [(10, 1), (20, 2), (30, 3), (10, 1)]
    with pytest.raises(ConfigError, match="random"):
        LengthsConfig(file=str(path), order="sorted").validate()


def test_llmperf_individual_responses_are_read_with_their_summary_concurrency(tmp_path, capsys):
    rows = [{"ttft_s": 0.1, "end_to_end_latency_s": 0.1 + 0.02 * 49, "number_input_tokens": 300,
             "number_output_tokens": 50, "inter_token_latency_s": 0.0216, "error_code": None}
            for _ in range(8)]
    rows.append({"ttft_s": None, "end_to_end_latency_s": None, "number_input_tokens": 300,
                 "number_output_tokens": 0, "error_code": 500})
    path = tmp_path / "m_300_50_individual_responses.json"
    path.write_text(json.dumps(rows))
    (tmp_path / "m_300_50_summary.json").write_text(json.dumps({"num_concurrent_requests": 4}))
    result = v.load_result(path)
    assert result["arrival"] == {"concurrency": 4}
    assert len(result["requests"]) == 8  # the failed request is left out
    assert result["measured"]["tpot_s"][0] == pytest.approx(0.02)
    assert main(["validate", str(path), "--config", str(CONFIG), "--concurrency", "2",
                 "--figure", str(tmp_path / "l.png")]) == 0
    assert "arrivals {'concurrency': 2}" in capsys.readouterr().out
    bad = tmp_path / "list.json"
    bad.write_text(json.dumps([{"a": 1}]))
    with pytest.raises(ConfigError, match="LLMPerf"):
        v.load_result(bad)
