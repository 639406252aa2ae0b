"""Issue 17: the measured corpus, its split by source, ranking fidelity, error bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware.models import get_model

CORPUS_DIR = Path(cp.__file__).parent / "corpus"
RESERVED_WORDS = ("nemo", "nim", "perf-overview", "perf_overview", "nightly", "vidur", "mooncake")


def test_corpus_meets_the_coverage_floor():
    rows = cp.load_corpus()
    assert len(rows) >= 150
    assert len({r["source"] for r in rows}) >= 8
    served = [r for r in rows if r["kind"] != "legacy"]
    assert len({r["device"] for r in served}) >= 4
    assert len({r["model"] for r in served}) >= 6
    assert {1, 2, 4, 8} <= {r["tp"] for r in served}
    assert {"bf16", "fp8"} <= {r["weight_dtype"] for r in served}
    assert {"static", "offline", "online"} <= {r["kind"] for r in served}
    assert any(get_model(r["model"]).is_moe for r in served)
    assert len({r["id"] for r in rows}) == len(rows)


def test_every_source_is_documented_and_none_is_reserved():
    text = (CORPUS_DIR / "SOURCES.md").read_text()
    for source in {r["source"] for r in cp.load_corpus()}:
        assert f"| {source} |" in text, source
        assert not any(w in source.lower() for w in RESERVED_WORDS), source
    assert (CORPUS_DIR / "RESERVED.md").is_file()


def test_split_is_by_whole_source():
    results = fid.evaluate([r for r in cp.load_corpus() if r["kind"] in ("static", "legacy")])
    by_source: dict[str, set[str]] = {}
    for r in results:
        by_source.setdefault(r["source"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_source.values())
    assert {"calibration", "held-out"} <= {next(iter(s)) for s in by_source.values()} <= set(fid.SPLITS)
    rep = fid.report(results)
    assert rep["overall"]["held-out"]["n"] > 0 and rep["overall"]["calibration"]["n"] > 0
    assert set(rep["groups"]) >= {"group", "tp", "weight_dtype", "device", "source"}


def test_kendall_tau():
    assert fid.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert fid.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert fid.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_static_prediction_tracks_a_held_out_point():
    row = next(r for r in cp.load_corpus() if r["id"] == "h200b-4")  # Llama-2-70B H200 FP8 TP1
    assert abs(cp.predict(row) - row["value"]) / row["value"] < 0.2


def test_serving_prediction_runs_the_simulator():
    row = next(r for r in cp.load_corpus() if r["id"] == "sgl-6")  # SGLang median TTFT, A100
    value = cp.predict({**row, "num_prompts": 200})
    assert 0.0 < value < 1000.0


def test_band_lookup_and_run_summary(tmp_path):
    assert fid.band_for("H100-SXM", 1, "bf16", "vllm_v1") is not None
    band = fid.band_for("Nonexistent-GPU", 3, "int4", "nope")  # falls back to the overall band
    assert band is not None and band["regime"] == "*|*|*|*"
    assert fid.band_for("H100-SXM", 1, "bf16", "vllm_v1", path=tmp_path / "missing.json") is None

    from sim.api import simulate

    cfg = {"seed": 0, "workload": {"name": "synthetic", "num_requests": 20, "rate_rps": 5.0},
           "cluster": {"pools": [{"name": "main", "num_replicas": 1,
                                  "hardware": {"device": "H100-SXM", "model": "Llama-3-8B"},
                                  "cost_model": {"name": "analytic", "stack": "vllm_v1"},
                                  "scheduler": "vllm_v1", "kv": {"name": "paged"}}]}}
    summary = simulate(cfg).summary
    assert summary["heldout_error_regime"].startswith("H100-SXM")
    assert 0.0 <= summary["heldout_error_median_abs"]


def test_vllm_v05_stack_is_solved_from_its_calibration_source():
    from hardware import calibration_constants as cc
    from hardware import fit_v05

    a, b = fit_v05.solve()
    assert a == pytest.approx(cc.VLLM_V05_ITERATION_S, rel=0.01)
    assert b == pytest.approx(cc.VLLM_V05_SEQ_S, rel=0.01)
    assert "vllm_blog_v060" in fid.CALIBRATION_SOURCES
    rows = {r["id"]: r for r in cp.load_corpus()}
    blog = {"iteration_overhead_s": a, "seq_overhead_s": b}
    assert cp.predict(rows["vblog-1"], blog) == pytest.approx(13.0, rel=0.01)  # the blog-only pair: both facts
    assert cp.predict(rows["vblog-2"], blog) == pytest.approx(38.0, rel=0.01)
    # the stack: the light-load step still reproduced; the profile (batch assumed 256) is now a check:
    # with the per-sequence cost measured at 256 running, the 38% GPU share holds at a smaller batch
    assert cp.predict(rows["vblog-1"]) == pytest.approx(13.0, rel=0.01)
    assert cp.predict(rows["vblog-2"]) < 38.0
    assert 16 <= fit_v05.profile_batch(cc.VLLM_V05_ENGINE_SEQ_S) < 256


def test_vllm_v05_per_sequence_cost_is_solved_where_the_batch_is_known():
    from hardware import calibration_constants as cc
    from hardware import fit_v05

    assert set(fit_v05.ENGINE_SOURCES) <= fid.CALIBRATION_SOURCES
    assert "vllm_rfc3130_a100" not in fid.CALIBRATION_SOURCES  # the A100 check stays held out
    assert abs(fit_v05.engine_median_error()) < 0.01  # stored constants: median signed error ~0
    assert fit_v05.light_load_iteration_s(cc.VLLM_V05_ENGINE_SEQ_S) == pytest.approx(
        cc.VLLM_V05_ENGINE_ITERATION_S, rel=0.01)
    assert cc.VLLM_V05_ENGINE_SEQ_S > 1.5 * cc.VLLM_V05_SEQ_S  # the blog's batch-256 reading was low
    rows = [r for r in cp.load_corpus() if r["source"] in fit_v05.ENGINE_SOURCES]
    assert {cp.stack_for(r) for r in rows} == {"vllm_v05_offline"}  # benchmark_throughput: no API server
    assert {r["tp"] for r in rows} == {1, 8}
    # one per-sequence cost fits TP 1 and TP 8 alike (no TP term on H100): each row within 10%
    assert all(abs(cp.predict(r) / r["value"] - 1) < 0.10 for r in rows)
    # and it is what the rows need: with the blog-only cost the TP 1 run comes out far too fast
    row = next(r for r in rows if r["tp"] == 1)
    assert cp.predict(row, fit_v05.engine_overrides(cc.VLLM_V05_SEQ_S)) > 1.15 * row["value"]


def test_engine_versions_map_to_stacks():
    row = {"id": "x", "engine": "vllm"}
    assert cp.stack_for({**row, "engine_version": "0.5.4"}) == "vllm_v05"
    assert cp.stack_for({**row, "engine_version": "0.4.2"}) == "vllm_v05"
    assert cp.stack_for({**row, "engine_version": "0.6.0"}) == "vllm_v06"  # 0.6 default: one step
    assert cp.stack_for({**row, "engine_version": "0.6.0", "notes": "multi-step 1; x"}) == "vllm_v06"
    assert cp.stack_for({**row, "engine_version": "0.6.0", "notes": "num-scheduler-steps 10"}) == "vllm_v1"
    assert cp.stack_for({**row, "engine_version": "unstated (2023)"}) == "vllm_nccl"  # before custom all-reduce
    assert cp.stack_for({**row, "engine_version": "unstated"}) == "vllm"
    assert cp.stack_for({**row, "engine_version": "unstated (2024)"}) == "vllm_v05"
    assert cp.stack_for({**row, "engine_version": "unstated (ROCm fork; blog of 2024-10)"}) == "vllm_v06"


def test_vllm_v05_pays_a_per_sequence_cpu_cost_over_graphed_kernels():
    row = {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1, "weight_dtype": "bf16", "kv_dtype": "bf16"}
    v05, v1 = cp.cost_model(row, stack="vllm_v05"), cp.cost_model(row, stack="vllm_v1")
    grow = [float(cm.decode_step_times_s(256, 256 * 300, 1)[0] - cm.decode_step_times_s(1, 300, 1)[0])
            for cm in (v05, v1)]
    assert grow[0] - grow[1] == pytest.approx(255 * (v05._o_seq - v1._o_seq), rel=1e-6)


def test_realised_lengths_replace_sharegpt_for_their_source():
    row = next(r for r in cp.load_corpus() if r["id"] == "lam-1a")
    reqs = cp._requests(row)
    assert len(reqs) == 320
    assert sum(i for _, i, _ in reqs) == 65578  # the published total_input_tokens
    assert sum(o for _, _, o in reqs) == 44041 + 101  # published total_output_tokens + 101 empty outputs run as 1


def test_a_run_replays_its_own_published_lengths_where_its_file_is_stored():
    # Lambda's v0.5.4 result files of 4x H100 Llama-3-8B FP8 and 4x / 8x H100 Mixtral (2024-08-19) are
    # stored: those runs replay their own output lengths (totals as the files print them), the others
    # the source's generic table
    rows = {r["id"]: r for r in cp.load_corpus()}
    own = {"lam-17a": 42874, "lam-19a": 70216, "lam-22a": 68688}
    for rid, total in own.items():
        outs = cp.lengths_for(rows[rid])[:, 1]
        assert len(outs) == 320
        assert int(outs.sum()) - int((outs == 1).sum()) <= total <= int(outs.sum())
    generic = cp.lengths_for(rows["lam-14a"])  # 2x H100 Llama-3-8B: no stored file of its own
    assert generic is cp.realised_lengths()[("lambda_vllm", "Llama-3-8B", 320, "", 0)]
    assert not np.array_equal(cp.lengths_for(rows["lam-17a"]), generic)
    assert np.array_equal(cp.lengths_for(rows["lam-17a"])[:, 0], generic[:, 0])  # same prompts


def test_vllm_v06_single_step_costs_what_multi_step_saves():
    from hardware import calibration_constants as cc
    from hardware import fit_v05

    v06 = cc.STACKS["vllm_v06"]
    assert v06.iteration_s == pytest.approx(cc.VLLM_V1_ITERATION_S + cc.VLLM_V06_CPU_SHARE * cc.VLLM_V05_ITERATION_S)
    assert v06.seq_s == pytest.approx(cc.VLLM_V1_SEQ_S + cc.VLLM_V06_CPU_SHARE * cc.VLLM_V05_SEQ_S)
    row = next(r for r in cp.load_corpus() if r["id"] == fit_v05.MULTI_STEP_ROW)
    small = {**row, "num_prompts": 300}  # the blog's +28% holds roughly at a smaller run too
    gain = cp.predict(small, {"stack": "vllm_v1"}) / cp.predict(small, {"stack": "vllm_v06"})
    assert 1.1 < gain < 1.5


def test_fused_moe_factor_is_solved_from_its_calibration_source():
    from hardware import calibration_constants as cc
    from hardware import fit_v05

    assert fit_v05.solve_moe_factor() == pytest.approx(cc.VLLM_FUSED_MOE_COMPUTE_FACTOR, abs=0.01)
    assert fit_v05.MOE_SOURCE in fid.CALIBRATION_SOURCES
    rows = [r for r in cp.load_corpus() if r["source"] == fit_v05.MOE_SOURCE]
    assert {cp.stack_for(r) for r in rows} == {"vllm_v05_offline"}  # benchmark_latency: no API server
    errors = [abs(cp.predict(r) / r["value"] - 1) for r in rows]
    assert max(errors) < 0.2


def test_moe_compute_factor_slows_only_the_routed_experts_compute():
    row = {"device": "A100-80GB", "tp": 2, "weight_dtype": "bf16", "kv_dtype": "bf16"}
    moe = {**row, "model": "Mixtral-8x7B"}
    full, slow = (cp.cost_model(moe, stack="vllm_v05", moe_compute_factor=f) for f in (1.0, 0.5))
    prefill = [(4096, 0)]
    assert slow.step_time_s(prefill, 0, 0, 0) > 1.3 * full.step_time_s(prefill, 0, 0, 0)  # compute-bound
    assert slow.step_time_s([], 1, 1, 300) == pytest.approx(full.step_time_s([], 1, 1, 300), rel=0.02)  # weight-bound
    dense = {**row, "model": "Llama-3-8B"}
    a, b = (cp.cost_model(dense, stack="vllm_v05", moe_compute_factor=f) for f in (1.0, 0.5))
    assert a.step_time_s(prefill, 0, 0, 0) == b.step_time_s(prefill, 0, 0, 0)
    assert cp.cost_model(moe, stack="trtllm")._moe_factor == 1.0  # other stacks unchanged


def test_offline_vllm_v05_drops_the_api_servers_share_of_cpu_time():
    from hardware import calibration_constants as cc

    on, off = cc.STACKS["vllm_v05"], cc.STACKS["vllm_v05_offline"]
    assert off.iteration_s == pytest.approx(on.iteration_s * 29 / 62)
    assert off.seq_s == on.seq_s  # the per-sequence engine cost is measured offline (fit_v05)
    row = {"id": "x", "engine": "vllm", "engine_version": "0.5.4"}
    assert cp.stack_for({**row, "kind": "static"}) == "vllm_v05_offline"
    assert cp.stack_for({**row, "kind": "online"}) == "vllm_v05"
    assert cp.stack_for({**row, "kind": "offline_fixed", "notes": "benchmark_throughput.py ..."}) == "vllm_v05_offline"
    assert cp.stack_for({**row, "kind": "offline", "notes": "ShareGPT 320 prompts at once"}) == "vllm_v05"


def test_nccl_call_cost_is_solved_from_its_calibration_source():
    from hardware import calibration_constants as cc
    from hardware import fit_v05

    assert fit_v05.solve_nccl_call_s() == pytest.approx(cc.VLLM_NCCL_CALL_S, rel=0.02)
    assert fit_v05.NCCL_SOURCE in fid.CALIBRATION_SOURCES
    row = next(r for r in cp.load_corpus() if r["source"] == fit_v05.NCCL_SOURCE)
    assert cp.stack_for(row) == "vllm_nccl"
    assert cp.predict(row) == pytest.approx(row["value"], rel=0.01)
    # the custom-kernel run of the same PR is the vllm stack's own calibration point
    assert cp.predict({**row, "engine_version": "unstated"}) == pytest.approx(14.57, rel=0.03)


def test_nccl_stack_differs_from_vllm_only_in_its_all_reduces():
    hw = {"device": "A100-80GB", "model": "Llama-2-70B", "weight_dtype": "bf16", "kv_dtype": "bf16"}
    for tp, differs in ((1, False), (4, True)):
        nccl, custom = (cp.cost_model({**hw, "tp": tp}, stack=s) for s in ("vllm_nccl", "vllm"))
        a, b = nccl.step_time_s([], 64, 64, 64 * 512), custom.step_time_s([], 64, 64, 64 * 512)
        assert (a > b) if differs else (a == b)
    parts = cp.cost_model({**hw, "tp": 4}, stack="vllm_nccl").step_parts([], 64, 64, 64 * 512)
    layers = 80
    assert parts["comm"] > 2 * layers * 40e-6  # two NCCL calls per layer, each >= the per-call cost


def test_mi300x_fp8_factor_is_solved_from_its_calibration_source():
    import statistics

    from hardware import calibration_constants as cc
    from hardware import fit_v05

    assert fit_v05.solve_cdna3_fp8_factor() == pytest.approx(cc.FP8_COMPUTE_FACTOR["cdna3"], abs=0.01)
    assert fit_v05.MI300X_SOURCE in fid.CALIBRATION_SOURCES
    rows = [r for r in cp.load_corpus() if r["source"] == fit_v05.MI300X_SOURCE]
    runs = [r for r in rows if r["kind"] != "kernel"]
    assert {cp.stack_for(r) for r in runs} == {"vllm_v1"}  # 0.6 with --num-scheduler-steps 10
    assert {cp.scheduler_for(r)["max_num_batched_tokens"] for r in runs} == {131072}  # from the notes
    assert abs(statistics.median(cp.predict(r) / r["value"] - 1 for r in runs)) < 0.02
    hbm = next(r for r in rows if r["metric"] == "hbm_tbps")
    assert cp.predict(hbm) == pytest.approx(hbm["value"], rel=0.02)
    assert fid.kind_group(hbm) == "operator"


def test_median_itl_is_the_median_gap_over_every_streamed_token():
    """benchmark_serving's median_itl_ms is np.median over all requests' inter-token gaps: the
    replay reads the simulator's ITL histogram, where a prefill stall is one long gap."""
    import numpy as np

    from hardware import corpus_predict as cp

    # 96 requests at once: more prompt tokens than one step's budget, so prefills land mid-run
    row = dict(next(r for r in cp.load_corpus() if r["id"] == "lam-12b"), num_prompts=96, id="itl-test")
    cp.clear_cache()
    predicted = cp.predict(row)
    df = cp.simulate_requests(row, cp._requests(row))
    assert predicted == pytest.approx(df.attrs["itl_p50_s"] * 1e3)
    # the per-request TPOT spreads each stall over the request's tokens: its token-weighted median
    # is at least the median gap (prefills interrupt decodes in vLLM 0.5's scheduler)
    d = df[df["num_output_tokens"] > 1]
    order = np.argsort(d["tpot_s"].to_numpy())
    cum = np.cumsum((d["num_output_tokens"].to_numpy() - 1)[order])
    tpot_median = d["tpot_s"].to_numpy()[order][np.searchsorted(cum, cum[-1] / 2.0)] * 1e3
    assert predicted <= tpot_median * 1.001
    cp.clear_cache()


def test_held_out_sources_share_no_origin_with_calibration():
    """A held-out source measured by the lab and campaign of a calibration source is reported as
    same-origin, never as an independent check; the error bands read independent sources only."""
    cal_origins = {fid.origin(s) for s in fid.CALIBRATION_SOURCES}
    results = fid.evaluate([r for r in cp.load_corpus() if r["kind"] in ("static", "legacy")])
    for r in results:
        if r["split"] == "held-out":
            assert fid.origin(r["source"]) not in cal_origins, r["source"]
    assert fid.split_of("trtllm_h200_blog") == "same-origin"  # NVIDIA's TRT-LLM v0.5 pages, as hwmd_trtllm_perf
    assert fid.split_of("hwmd_trtllm_perf") == "calibration"
    assert fid.split_of("lambda_vllm") == "held-out"
    fake = [{**r, "split": "same-origin", "kind": "static"} for r in results[:3]]
    assert fid.regime_bands(fake) == {}


def test_a_stated_sharegpt_sample_mean_scales_the_lengths_and_nm_vllm_is_held_out():
    """nm-vllm's runner samples its own ShareGPT requests and prints their means: its rows say
    "ShareGPT sample means IN / OUT" and replay the length table scaled to them; other rows keep the
    default means. The source is held out whole (no constant is solved from it)."""
    row = {"notes": "benchmark_serving ShareGPT 300 prompts; ShareGPT sample means 298.2 / 217.0 (stated)"}
    assert cp.sharegpt_means(row) == (298.2, 217.0)
    pairs = cp.sharegpt_pairs(*cp.sharegpt_means(row))
    assert abs(pairs[:, 0].mean() - 298.2) < 1.0 and abs(pairs[:, 1].mean() - 217.0) < 1.0
    assert cp.sharegpt_means({"notes": "ShareGPT Poisson"}) == (cp.SHAREGPT_MEAN_INPUT, cp.SHAREGPT_MEAN_OUTPUT)
    assert fid.split_of("nm_vllm_bench") == "held-out"
    nm = [r for r in cp.load_corpus() if r["source"] == "nm_vllm_bench"]
    assert nm and {cp.stack_for(r) for r in nm} <= {"vllm_v05", "vllm_v05_offline"}


def test_mlperf_offline_rows_replay_openorca_and_sum_their_replicas():
    """An MLPerf Offline row replays the benchmark's OpenOrca prompts with outputs scaled to the run's stated
    mean (capped at 1024), every OPENORCA_STRIDE-th sample at t = 0; "N replicas" multiplies one replica's
    throughput; the batch cap reaches TensorRT-LLM's scheduler. The source is held out whole."""
    rows = [r for r in cp.load_corpus() if r["source"] == "mlperf_inference_v41"]
    assert len(rows) == 6 and {cp.stack_for(r) for r in rows} == {"trtllm"}
    assert fid.split_of("mlperf_inference_v41") == "held-out"
    h100 = next(r for r in rows if r["device"] == "H100-SXM")
    assert cp.num_replicas(h100) == 4 and h100["tp"] == 2 and cp.openorca_mean(h100) == 290.31
    assert cp.num_replicas({"notes": "ShareGPT Poisson"}) == 1 and cp.openorca_mean({"notes": None}) is None
    reqs = cp._requests(h100)
    lengths = np.array([(i, o) for _, i, o in reqs])
    assert len(reqs) == 24576 // cp.OPENORCA_STRIDE and all(a == 0.0 for a, _, _ in reqs)
    assert abs(lengths[:, 1].mean() - 290.31) < 3.0 and lengths[:, 1].max() <= cp.OPENORCA_MAX_OUTPUT
    assert cp.scheduler_for(h100)["max_batch_size"] == 896
    assert "max_batch_size" not in cp.scheduler_for({**h100, "max_num_seqs": None})


def test_trtllm_rows_that_state_their_harness_setup_are_simulated_with_it():
    """The MLPerf rows state NVIDIA's harness setup (MAX_UTILIZATION, engines of max_num_tokens 4096, no chunked
    context, 0.9 of the free memory for KV); a TensorRT-LLM row that states nothing keeps the defaults."""
    rows = [r for r in cp.load_corpus() if r["source"] == "mlperf_inference_v41"]
    for r in rows:
        sched = cp.scheduler_for(r)
        assert (sched["policy"], sched["max_num_tokens"], sched["enable_chunked_context"]) == \
            ("max_utilization", 4096, False)
    h200 = next(r for r in rows if r["device"] == "H200")
    plain = {**h200, "notes": "no setup stated"}
    sched = cp.scheduler_for(plain)
    assert "policy" not in sched and sched["max_num_tokens"] == 8192 and sched["enable_chunked_context"]
    assert cp.memory_share(plain) == 0.9
    # 0.9 of what weights and activations leave free: more KV than vLLM's 0.9 of the whole GPU
    cm = cp.cost_model(h200)
    free = cm.device.memory_bytes - cm.weight_bytes_per_gpu - cm.activation_reserve_bytes()
    assert cm.kv_capacity_bytes(cp.memory_share(h200)) == pytest.approx(0.9 * free, rel=1e-9)
    assert cp.memory_share(h200) > 0.9
