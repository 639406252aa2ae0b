"""fid7: the serial front end of ``vllm_v1_engine``, solved from ``kvcached_h100_inf``, reproduces its rows."""

from __future__ import annotations

from hardware import calibration_constants as cc
from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware import fit_v1_engine as f


def test_solved_front_end_reproduces_the_rows_it_came_from():
    assert f.SEQ_SOURCE in fid.CALIBRATION_SOURCES
    stored: dict = {}
    assert abs(f.source_median_error(f.SEQ_SOURCE, "req_tput", stored)) < 0.02  # front end: solved here
    assert abs(f.source_median_error(f.SEQ_SOURCE, "median_tpot_ms", stored)) < 0.03  # per sequence: here
    ttft = f.source_median_error(f.SEQ_SOURCE, "median_ttft_ms", stored)  # solved from nothing
    assert -0.20 < ttft < 0.0
    # the marathon's rows (per-step and per-request costs re-solved with the front end in every TTFT)
    for metric in ("median_tpot_ms", "median_ttft_ms"):
        assert abs(f.source_median_error(f.SOURCE, metric, stored)) < 0.03
    for r in f.rows("median_tpot_ms") + f.rows("median_ttft_ms"):
        assert abs(cp.predict(r) / r["value"] - 1.0) < 0.30


def test_the_solve_is_not_vacuous_and_finds_the_stored_front_end():
    # without the front end the same constants miss the run by far
    off = {"frontend_request_s": 0.0}
    assert f.source_median_error(f.SEQ_SOURCE, "req_tput", off) > 0.15
    assert f.source_median_error(f.SEQ_SOURCE, "median_tpot_ms", off) > 2.0  # all 500 run at once
    assert f.source_median_error(f.SEQ_SOURCE, "median_ttft_ms", off) < -0.7
    # one bisection from the stored other constants gives the stored service time back
    fe_s = f.bisect_root(lambda x: -f.source_median_error(f.SEQ_SOURCE, "req_tput", {"frontend_request_s": x}),
                         0.0, 50e-3, 0.01e-3)
    assert abs(fe_s - cc.VLLM_V1_ENGINE_FRONTEND_S) < 0.1e-3
    # two front-end servers (vLLM's --api-server-count 2): the engine sees twice the rate, so the run is
    # faster until the engine itself limits it (about 112 req/s with the per-sequence cost), and TTFT falls
    row, ttft_row = f.seq_rows("req_tput")[0], f.seq_rows("median_ttft_ms")[0]
    assert cp.predict(row, {"frontend_servers": 2}) > 1.1 * cp.predict(row)
    assert cp.predict(ttft_row, {"frontend_servers": 2}) < 0.7 * cp.predict(ttft_row)
