"""The ``vllm_v1_engine`` stack (vLLM >= 0.8, the V1 engine): mapping, YAML selection, solved constants."""

from __future__ import annotations

from hardware import calibration_constants as cc
from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware import fit_v1_engine
from hardware.corpus_engines import is_v1_engine


def test_stack_exists_and_differs_from_the_vllm060_multi_step_fit():
    v1e, v06ms = cc.STACKS["vllm_v1_engine"], cc.STACKS["vllm_v1"]
    assert v1e.request_s < 0.5 * v06ms.request_s  # no multi-step first-token wait
    assert v1e.iteration_s < v06ms.iteration_s
    assert v1e.seq_s == cc.VLLM_V1_ENGINE_SEQ_S  # fid7: solved from kvcached_h100_inf's TPOT
    assert v1e.frontend_request_s == cc.VLLM_V1_ENGINE_FRONTEND_S > 0 and v1e.frontend_servers == 1
    assert "inferencebench_marathon_h100" in v1e.source and "kvcached_h100_inf" in v1e.source


def test_v1_engine_releases_map_to_it_and_older_ones_do_not():
    row = {"id": "x", "engine": "vllm", "notes": ""}
    for version in ("0.8.0", "0.8.5", "0.10.1", "0.21.0", "0.22.1"):
        assert cp.stack_for({**row, "engine_version": version}) == "vllm_v1_engine"
    assert cp.stack_for({**row, "engine_version": "0.7.3"}) == "vllm_v1"
    assert cp.stack_for({**row, "engine_version": "0.6.0", "notes": "num-scheduler-steps 10"}) == "vllm_v1"
    rows = [r for r in cp.load_corpus() if r["engine"] == "vllm" and is_v1_engine(r["engine_version"])]
    assert len(rows) >= 25 and {cp.stack_for(r) for r in rows} == {"vllm_v1_engine"}


def test_selectable_from_yaml_config():
    from sim.api import simulate

    cfg = {"seed": 0, "workload": {"name": "closed_loop", "num_users": 2, "num_requests": 12,
                                   "input_tokens": 40, "output_tokens": 16},
           "cluster": {"pools": [{"name": "main", "role": "mixed", "num_replicas": 1,
                                  "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
                                  "cost_model": {"name": "analytic", "stack": "vllm_v1_engine"},
                                  "scheduler": "vllm_v1", "kv": {"name": "paged"}}]}}
    a = simulate(cfg).summary
    b = simulate({**cfg, "cluster": {"pools": [{**cfg["cluster"]["pools"][0],
                                                "cost_model": {"name": "analytic", "stack": "vllm_v1"}}]}}).summary
    assert a["num_completed"] == b["num_completed"] == 12
    assert a["tpot_p50_s"] < b["tpot_p50_s"]  # the V1 engine's smaller per-step cost


def test_solved_constants_reproduce_their_calibration_rows():
    assert "inferencebench_marathon_h100" in fid.CALIBRATION_SOURCES
    for metric in ("median_tpot_ms", "median_ttft_ms"):
        assert len(fit_v1_engine.rows(metric)) == 4
        # solved: median signed error zero, or at the jump that straddles it (fid7: the TTFT median jumped
        # from -1.0% to +9.1% at request_s = 7.305 ms, a closed-loop arrival crossing a step boundary; with
        # the prefix cache of fid15g it jumps from -1.9% to +6.2% between 7.31 and 7.35 ms)
        assert abs(fit_v1_engine.median_error(metric)) < 0.02
    # every row of the source within 30% (TTFT of Mistral-7B, whose outputs stop early, is the worst)
    for r in fit_v1_engine.rows("median_tpot_ms") + fit_v1_engine.rows("median_ttft_ms"):
        assert abs(cp.predict(r) / r["value"] - 1.0) < 0.30
    # and the stored constants are what the solver finds (one round from the stored request cost)
    it_s = fit_v1_engine.bisect_root(lambda a: fit_v1_engine.median_error("median_tpot_ms", a, None),
                                 0.0, 2e-3, 0.02e-3)
    assert abs(it_s - cc.VLLM_V1_ENGINE_ITERATION_S) < 0.05e-3
    # a wrong per-request cost would miss the TTFT rows: the solve is not vacuous
    assert fit_v1_engine.median_error("median_ttft_ms", None, cc.VLLM_V1_REQUEST_S) > 1.0


def test_online_fixed_rows_replay_fixed_lengths_at_poisson_arrivals_and_the_stated_memory_share():
    row = next(r for r in cp.load_corpus() if r["source"] == "kvcached_h100_r16")
    reqs = cp._requests(row)
    assert len(reqs) == 500 and {(i, o) for _, i, o in reqs} == {(512, 128)}
    gaps = [b[0] - a[0] for a, b in zip(reqs, reqs[1:], strict=False)]
    assert 0.8 / 16 < sum(gaps) / len(gaps) < 1.2 / 16  # Poisson at 16 requests/s
    assert cp.memory_share(row) == 0.5 and cp.memory_share({"notes": ""}) == 0.9
    assert fid.kind_group(row) == "online" and "kvcached_h100_r16" not in fid.CALIBRATION_SOURCES


def test_high_batch_run_without_a_front_end_solves_a_per_sequence_cost_that_misses_its_tpot():
    # fid5's solve (no front end, fid5's constants): it reproduces the throughput but not the same run's
    # TPOT, which is why fid5 did not adopt it and fid7 models the serial front end instead
    assert fit_v1_engine.SEQ_SOURCE in fid.CALIBRATION_SOURCES
    fe0 = {"frontend_request_s": 0.0, "iteration_overhead_s": 0.186e-3, "request_overhead_s": 18.5e-3}
    seq_s = fit_v1_engine.solve_seq_s_with(fe0, tol=2e-6)
    assert abs(fit_v1_engine.seq_median_error(seq_s, "req_tput", fe0)) < 0.03
    assert fit_v1_engine.seq_median_error(seq_s, "median_tpot_ms", fe0) > 1.0
