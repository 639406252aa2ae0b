"""Solve the ``vllm_v05`` stack's per-step CPU cost from its calibration source.

vLLM 0.4-0.5 ran scheduling, input preparation, sampling, detokenisation and the OpenAI
server's streaming in one Python process, synchronously with the GPU, so every iteration
costs ``a + b x batch`` of CPU time on top of its (CUDA-graphed) kernels. The
``vllm_blog_v060`` rows of ``hardware/corpus/points.csv`` give two facts about v0.5.x on
Llama-3-8B / 1x H100 (the vLLM v0.6.0 blog, Sept 2024): a decode step every 13 ms under light
load, and GPU execution 38% of the time under load. Two facts, two unknowns: this module
solves the linear system exactly and prints ``a`` and ``b``; the values live in
``hardware.calibration_constants`` (``VLLM_V05_ITERATION_S``, ``VLLM_V05_SEQ_S``).

The same module solves the ``vllm_v06`` stack (vLLM 0.6 with the default single scheduler
step): multi-step scheduling amortises the per-step scheduling and input preparation over
``n`` steps, and the v0.6.0 blog states that it "improves the throughput of running Llama 70B
models on 4xH100 by 28%". ``vllm_v06`` is ``vllm_v1`` (fitted on multi-step-10 runs) plus a
share ``s`` of ``vllm_v05``'s per-step CPU cost (and eager prefill steps); ``s`` is solved so
that, at the setting of the calibration row ``sgl-4`` (Llama-3-70B, 4x H100, ShareGPT), the
predicted throughput of ``vllm_v1`` is 1.28x that of ``vllm_v06``. The split of the cost into
a per-step and a per-sequence part is assumed to be ``vllm_v05``'s (uncertain).

The third solution is the fused_moe kernel's share of the dense GEMM compute efficiency
(``VLLM_FUSED_MOE_COMPUTE_FACTOR``) from the ``vllm_pr3240_mixtral`` rows (vllm-project/vllm
#3240: Mixtral-8x7B on 2x A100, benchmark_latency 1000/50 at batch 1-64): the factor is
solved so that the predicted latency increase from batch 32 to batch 64 (32,000 more prompt
tokens, nearly all of it the experts' prefill GEMMs; the per-step CPU cost cancels) equals the
measured one.

The fourth is the per-call cost of an NCCL all-reduce in 2023 vLLM (``VLLM_NCCL_CALL_S``, stack
``vllm_nccl``) from the ``vllm_pr2192_allreduce`` row (vllm-project/vllm#2192: Llama-70B on 4x
A100-80GB, benchmark_latency 256/256 at batch 64, 16.37 s with NCCL all-reduces against 14.57
s with the custom kernel, the ``vllm`` stack's calibration point): solved so that the row is
reproduced.

The fifth is the FP8 GEMM factor of CDNA3 (MI300X; ``FP8_COMPUTE_FACTOR["cdna3"]``) from the
``azure_nd_mi300x`` rows (Azure AI-benchmarking-guide, ND MI300X v5: vLLM benchmark_throughput of
Llama-3.1-405B FP8 on 8x MI300X, 1000 requests at six fixed lengths): solved so that the median
signed error of the six runs is zero. The same source's hipBLASLt FP8 GEMMs at 8192^3 reach twice
that rate, so the factor is the effective rate at vLLM's TP8 shapes and kernels, not the GEMM
unit's.

The sixth (issue 17, fid3) is the per-sequence cost of vLLM 0.4-0.5's engine loop measured where the
batch is known: ``benchmark_throughput`` runs of fixed 256/256 requests keep 256 sequences running
(``vllm_pr7117_h100``: Llama-3-8B on 1x H100, three trials; ``vllm_pr5399_h100``: Llama-2-7B on 8x
H100, before and after the shared-memory broadcast). The blog's profile row (``vblog-2``) pinned it
only under an assumed batch of 256. ``VLLM_V05_ENGINE_SEQ_S`` is solved so that the median signed
error of those five rows is zero, with the offline per-step cost ``VLLM_V05_OFFLINE_CPU_SHARE x a``
and ``a`` re-solved from the blog's light-load step (``vblog-1``) at each trial value
(``light_load_iteration_s``). The served ``vllm_v05`` takes the same per-sequence cost (its lower
bound: the engine loop does the same per-sequence work with the API server in the process; the
server's share is left in ``a``); the profile row becomes a check.

The seventh (issue 17, fid5) is the ``vllm_v1_engine`` stack (vLLM >= 0.8): its per-step and per-request
costs from the ``inferencebench_marathon_h100`` rows (``hardware.fit_v1_engine`` has the method); since
fid7 jointly with its serial front end (from ``kvcached_h100_inf``'s throughput) and per-sequence cost
(from that run's TPOT): ``hardware.fit_v1_engine.solve_joint``.

The eighth (issue 17, fid10) is one factor on the kernel efficiencies of the GDDR6, PCIe-only A10G and L4
(``GDDR_PCIE_EFFICIENCY_FACTOR``) from the ``llm_price_compass`` rows (vLLM 0.5.x ShareGPT throughput runs on
1x L4 and 2x A10G): solved so that the median signed error of the two rows is zero (0.537; not adopted,
see ``calibration_constants``: the stored factor stays 1).

The ninth (issue 17, fid12) is the latency of the ``pcie_shm`` all-reduce (A10G hosts without peer-to-peer;
fid11 had it assumed) from the ``jinwoong_a10g_l4_blog`` rows (vLLM V1 ``vllm bench serve`` closed loops of
Qwen2.5-7B / 14B at TP 1 / 2 / 4 on one g5.12xlarge): solved so that the median signed error of the four
concurrency-1 median TPOT rows at TP > 1 is zero (one token's activations per all-reduce: latency-bound). The bus
efficiency its loaded rows would ask and the GDDR factor its TP 1 rows would ask are printed as diagnostics only.

The tenth (issue 17, fid15c) is the ``sglang`` stack's routed-expert compute factor
(``SGLANG_FUSED_MOE_COMPUTE_FACTOR``) from the ``sglang_pr14764_dsv31_h200`` rows (sgl-project/sglang#14764:
DeepSeek-V3.1 on 8x H200, ``bench_one_batch`` 16 x 512): ``hardware.fit_sglang_moe`` has the method.

``python -m hardware.fit_v05`` prints the solutions beside the stored constants.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from hardware import calibration_constants as cc
from hardware import corpus_predict as cp
from hardware.devices import get_device

SOURCE = "vllm_blog_v060"


def _step_s(row: dict, stack: str, **overrides: float) -> float:
    b, ctx = row["batch"], row["input_len"]
    return float(cp.cost_model(row, stack=stack, **overrides).decode_step_times_s(b, b * ctx, 1)[0])


def solve(rows: list[dict] | None = None) -> tuple[float, float]:
    """(iteration_s, seq_s) that reproduce the source's step time and GPU share exactly."""
    rows = [r for r in (cp.load_corpus() if rows is None else rows) if r["source"] == SOURCE]
    light = next(r for r in rows if r["metric"] == "step_ms")
    loaded = next(r for r in rows if r["metric"] == "gpu_share_pct")
    # each equation: a + b x batch = (target step) - (step without the CPU cost)
    eqs = []
    for r in (light, loaded):
        bare = _step_s(r, "vllm_v05", iteration_overhead_s=0.0, seq_overhead_s=0.0)
        if r["metric"] == "step_ms":
            target = r["value"] * 1e-3
        else:
            target = _step_s(r, "ideal") / (r["value"] / 100.0)
        eqs.append((float(r["batch"]), target - bare))
    (b1, y1), (b2, y2) = eqs
    seq_s = (y2 - y1) / (b2 - b1)
    return y1 - seq_s * b1, seq_s


#: vLLM v0.6.0 blog: multi-step scheduling "improves the throughput of running Llama 70B models
#: on 4xH100 by 28%"; the calibration row whose setting that is.
MULTI_STEP_GAIN, MULTI_STEP_ROW = 1.28, "sgl-4"


def v06_overrides(share: float) -> dict[str, float]:
    """Cost-model overrides of ``vllm_v1`` that add ``share`` of vLLM 0.5's per-step CPU cost."""
    return {"iteration_overhead_s": cc.VLLM_V1_ITERATION_S + share * cc.VLLM_V05_ITERATION_S,
            "seq_overhead_s": cc.VLLM_V1_SEQ_S + share * cc.VLLM_V05_SEQ_S,
            "layer_overhead_prefill_s": cc.VLLM_EAGER_LAYER_S}


def solve_v06_share(tol: float = 0.005) -> float:
    """Share ``s`` with throughput(vllm_v1) / throughput(vllm_v06) = MULTI_STEP_GAIN (bisection)."""
    row = next(r for r in cp.load_corpus() if r["id"] == MULTI_STEP_ROW)
    multi = cp.predict(row, {"stack": "vllm_v1"})
    lo, hi = 0.0, 2.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if multi / cp.predict(row, {"stack": "vllm_v1", **v06_overrides(mid)}) < MULTI_STEP_GAIN:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


MOE_SOURCE, MOE_BATCHES = "vllm_pr3240_mixtral", (32, 64)


def solve_moe_factor(tol: float = 0.002) -> float:
    """fused_moe compute factor f with predicted latency(64) - latency(32) = measured (bisection)."""
    rows = {r["batch"]: r for r in cp.load_corpus() if r["source"] == MOE_SOURCE}
    lo_row, hi_row = rows[MOE_BATCHES[0]], rows[MOE_BATCHES[1]]
    target = hi_row["value"] - lo_row["value"]

    def rise(f: float) -> float:
        return cp.predict(hi_row, {"moe_compute_factor": f}) - cp.predict(lo_row, {"moe_compute_factor": f})

    lo, hi = 0.05, 1.0  # rise falls as f grows
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if rise(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


NCCL_SOURCE = "vllm_pr2192_allreduce"


def solve_nccl_call_s(tol: float = 0.2e-6) -> float:
    """Per-call NCCL all-reduce cost that reproduces the source's NCCL latency (bisection)."""
    row = next(r for r in cp.load_corpus() if r["source"] == NCCL_SOURCE)
    lo, hi = 0.0, 500e-6  # latency grows with the per-call cost
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if cp.predict(row, {"stack": "vllm_nccl", "allreduce_call_overhead_s": mid}) < row["value"]:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


PCIE_SHM_SOURCE = "pytorch127077_a10g_allreduce"


def solve_pcie_shm_efficiency(latency_s: float | None = None) -> float:
    """Bus efficiency of the ``pcie_shm`` all-reduce that reproduces the source's all-reduce time (closed
    form: the algorithm's latency, stored unless ``latency_s``, is kept; the row's time minus it is wire bytes
    over the reached bandwidth)."""
    row = next(r for r in cp.load_corpus() if r["source"] == PCIE_SHM_SOURCE)
    n, num_bytes = row["tp"], row["batch"]
    wire = 2.0 * (n - 1) / n * num_bytes
    lat = cc.ALLREDUCE_ALGOS["pcie_shm"].latency_s if latency_s is None else latency_s
    seconds = row["value"] * 1e-6 - lat
    return wire / (get_device(row["device"]).host_link_gbps * 1e9 * seconds)


#: Issue 17, fid12: the TP 1 / 2 / 4 ladder of A10G serving runs without peer-to-peer (the jinwoong blog's
#: ``vllm bench serve`` closed loops on one g5.12xlarge). Its concurrency-1 median TPOT rows at TP > 1 pin the
#: ``pcie_shm`` latency (one token's activations per all-reduce); the TP 1 row checks the kernels' side.
TP_LADDER_SOURCE = "jinwoong_a10g_l4_blog"


def ladder_rows(concurrency: tuple[int, ...] = (1,), tp_above_one: bool = True) -> list[dict]:
    """The ladder source's A10G median TPOT rows at the given concurrencies (TP > 1 only, or TP 1 only)."""
    return [r for r in cp.load_corpus() if r["source"] == TP_LADDER_SOURCE and r["device"] == "A10G"
            and r["metric"] == "median_tpot_ms" and r["batch"] in concurrency and (r["tp"] > 1) == tp_above_one]


@contextlib.contextmanager
def pcie_shm_constants(latency_s: float | None = None, bus_efficiency: float | None = None) -> Iterator[None]:
    """Price the ``pcie_shm`` all-reduce with a trial latency / bus efficiency inside the ``with`` block (the
    catalog entry is restored after, and the predictor's simulation cache cleared on both sides)."""
    stored = cc.ALLREDUCE_ALGOS["pcie_shm"]
    trial = {k: v for k, v in (("latency_s", latency_s), ("bus_efficiency", bus_efficiency)) if v is not None}
    cc.ALLREDUCE_ALGOS["pcie_shm"] = replace(stored, **trial)
    cp.clear_cache()
    try:
        yield
    finally:
        cc.ALLREDUCE_ALGOS["pcie_shm"] = stored
        cp.clear_cache()


def ladder_signed_errors(rows: list[dict], latency_s: float | None = None,
                         bus_efficiency: float | None = None) -> list[float]:
    """Signed relative errors of ``rows`` with the trial ``pcie_shm`` constants (stored where None)."""
    with pcie_shm_constants(latency_s, bus_efficiency):
        return [cp.predict(r) / r["value"] - 1.0 for r in rows]


def solve_pcie_shm_latency(bus_efficiency: float | None = None, tol: float = 0.5e-6) -> float:
    """``pcie_shm`` latency with median signed error 0 over the ladder's concurrency-1 TPOT rows at TP > 1
    (bisection; predicted TPOT rises with the latency)."""
    rows = ladder_rows((1,))
    return bisect_zero(lambda lat: statistics.median(ladder_signed_errors(rows, lat, bus_efficiency)), 0.0, 1e-3, tol,
                       rising=True)


def solve_pcie_shm_serving_efficiency(latency_s: float, tol: float = 0.002) -> float:
    """Diagnostic (fid12: not adopted): the bus efficiency with median signed error 0 over the ladder's
    concurrency-8 / 32 TPOT rows at TP > 1, at ``latency_s`` (bisection; TPOT falls as the efficiency grows)."""
    rows = ladder_rows((8, 32))
    return bisect_zero(lambda eff: statistics.median(ladder_signed_errors(rows, latency_s, eff)), 0.01, 1.0, tol,
                       rising=False)


MI300X_SOURCE = "azure_nd_mi300x"


def solve_cdna3_fp8_factor(tol: float = 0.005) -> float:
    """FP8 compute factor on MI300X with median signed error 0 over the source's vLLM runs."""
    rows = [r for r in cp.load_corpus() if r["source"] == MI300X_SOURCE and r["kind"] != "kernel"]

    def median_error(f: float) -> float:
        return statistics.median(cp.predict(r, {"fp8_compute_factor": f}) / r["value"] - 1.0 for r in rows)

    from hardware.fit_v1_engine import bisect_root

    return bisect_root(median_error, 0.05, 1.0, tol)  # predicted throughput grows with the factor


ENGINE_SOURCES = ("vllm_pr7117_h100", "vllm_pr5399_h100")


def light_load_iteration_s(seq_s: float) -> float:
    """Per-step cost ``a`` that reproduces the blog's light-load step (``vblog-1``) given ``seq_s``."""
    light = next(r for r in cp.load_corpus() if r["source"] == SOURCE and r["metric"] == "step_ms")
    bare = _step_s(light, "vllm_v05", iteration_overhead_s=0.0, seq_overhead_s=0.0)
    return light["value"] * 1e-3 - bare - seq_s * light["batch"]


def engine_overrides(seq_s: float, offline: bool = True) -> dict[str, Any]:
    """Cost-model overrides of the vllm_v05 stacks for a trial per-sequence cost."""
    a = light_load_iteration_s(seq_s)
    share = cc.VLLM_V05_OFFLINE_CPU_SHARE if offline else 1.0
    return {"stack": "vllm_v05_offline" if offline else "vllm_v05", "iteration_overhead_s": share * a,
            "seq_overhead_s": seq_s}


def engine_median_error(seq_s: float | None = None) -> float:
    """Median signed error of the engine sources' rows (stored constants unless ``seq_s``)."""
    rows = [r for r in cp.load_corpus() if r["source"] in ENGINE_SOURCES]
    overrides = {} if seq_s is None else engine_overrides(seq_s)
    return statistics.median(cp.predict(r, overrides) / r["value"] - 1.0 for r in rows)


def bisect_zero(error, lo: float, hi: float, tol: float, rising: bool) -> float:
    """The root of a monotone ``error(x)`` in [lo, hi] by bisection (``rising``: error grows with x)."""
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if (error(mid) > 0.0) == rising:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def solve_engine_seq_s(tol: float = 1e-6) -> float:
    """Per-sequence cost with median signed error 0 over the engine sources (bisection)."""
    # predicted throughput falls as the cost grows
    return bisect_zero(engine_median_error, 0.0, 400e-6, tol, rising=False)


def profile_batch(seq_s: float) -> int:
    """The batch at which the blog's profile share (``vblog-2``: GPU 38%) holds with ``seq_s``."""
    row = next(r for r in cp.load_corpus() if r["source"] == SOURCE and r["metric"] == "gpu_share_pct")
    over = engine_overrides(seq_s, offline=False)
    over.pop("stack")
    for b in range(1, 1025):
        probe = {**row, "batch": b}
        if cp.predict(probe, over) < row["value"]:
            return b
    return 1024


GDDR_SOURCE = "llm_price_compass"


def gddr_median_error(factor: float) -> float:
    """Median signed error of the GDDR source's rows with the A10G / L4 efficiency factor at ``factor``."""
    rows = [r for r in cp.load_corpus() if r["source"] == GDDR_SOURCE]
    return statistics.median(cp.predict(r, {"device_efficiency_factor": factor}) / r["value"] - 1.0 for r in rows)


def solve_gddr_factor(tol: float = 0.002) -> float:
    """A10G / L4 efficiency factor with median signed error 0 over ``GDDR_SOURCE`` (bisection)."""
    return bisect_zero(gddr_median_error, 0.1, 1.0, tol, rising=True)  # throughput rises with the factor


def ladder_gddr_rows() -> list[dict]:
    """The ladder source's TP 1 concurrency-1 median TPOT rows (A10G 7B, L4): kernels only, no all-reduce."""
    return [r for r in cp.load_corpus() if r["source"] == TP_LADDER_SOURCE and r["tp"] == 1 and r["batch"] == 1
            and r["metric"] == "median_tpot_ms"]


def ladder_gddr_factor(row: dict, tol: float = 0.002) -> float:
    """Diagnostic (fid12: not adopted): the A10G / L4 efficiency factor that reproduces one TP 1 TPOT row
    (bisection in [0.3, 1]: the cost model takes no factor above 1; 1.0 means the row asks 1 or more)."""
    def error(f: float) -> float:
        return cp.predict(row, {"device_efficiency_factor": f}) / row["value"] - 1.0

    if error(1.0) >= 0.0:
        return 1.0
    return bisect_zero(error, 0.3, 1.0, tol, rising=False)  # TPOT falls as the factor grows


def main() -> int:
    a, b = solve()
    print(f"vllm_v05 from {SOURCE}: iteration_s = {a * 1e3:.2f} ms, seq_s = {b * 1e6:.1f} us")
    print(f"stored: VLLM_V05_ITERATION_S = {cc.VLLM_V05_ITERATION_S * 1e3:.2f} ms, "
          f"VLLM_V05_SEQ_S = {cc.VLLM_V05_SEQ_S * 1e6:.1f} us")
    share = solve_v06_share()
    print(f"vllm_v06 share of vllm_v05's per-step CPU cost: {share:.3f} (stored {cc.VLLM_V06_CPU_SHARE:.3f})")
    moe = solve_moe_factor()
    print(f"fused_moe compute factor from {MOE_SOURCE}: {moe:.3f} (stored {cc.VLLM_FUSED_MOE_COMPUTE_FACTOR:.3f})")
    call = solve_nccl_call_s()
    print(f"NCCL all-reduce per-call cost from {NCCL_SOURCE}: {call * 1e6:.1f} us "
          f"(stored {cc.VLLM_NCCL_CALL_S * 1e6:.1f} us)")
    shm = solve_pcie_shm_efficiency()
    print(f"pcie_shm all-reduce bus efficiency from {PCIE_SHM_SOURCE}: {shm:.4f} "
          f"(stored {cc.ALLREDUCE_ALGOS['pcie_shm'].bus_efficiency:.4f})")
    fp8 = solve_cdna3_fp8_factor()
    print(f"MI300X FP8 GEMM factor from {MI300X_SOURCE}: {fp8:.3f} (stored {cc.FP8_COMPUTE_FACTOR['cdna3']:.3f})")
    seq = solve_engine_seq_s()
    print(f"vllm_v05 engine per-sequence cost from {', '.join(ENGINE_SOURCES)}: {seq * 1e6:.1f} us "
          f"(stored {cc.VLLM_V05_ENGINE_SEQ_S * 1e6:.1f} us); per-step a = {light_load_iteration_s(seq) * 1e3:.2f} ms "
          f"(stored {cc.VLLM_V05_ENGINE_ITERATION_S * 1e3:.2f} ms); the blog's 38% GPU share then holds at "
          f"batch {profile_batch(seq)}")
    lat = solve_pcie_shm_latency()
    print(f"pcie_shm all-reduce latency from {TP_LADDER_SOURCE} (median signed error 0 over its 4 A10G "
          f"concurrency-1 TPOT rows at TP > 1): {lat * 1e6:.1f} us (stored "
          f"{cc.ALLREDUCE_ALGOS['pcie_shm'].latency_s * 1e6:.1f} us); bus efficiency re-solved from "
          f"{PCIE_SHM_SOURCE} with it: {solve_pcie_shm_efficiency(lat):.4f}")
    tp1 = ladder_signed_errors(ladder_rows((1,), tp_above_one=False), lat)[0]
    loaded = ladder_signed_errors(ladder_rows((1, 8, 32)), lat)
    print(f"  fid12 checks: 7B TP 1 concurrency-1 TPOT {tp1:+.1%} (rule: within 10%); median |error| of the 12 "
          f"A10G TPOT rows at TP > 1 {statistics.median([abs(e) for e in loaded]):.1%} (rule: at most 20%)")
    serving = solve_pcie_shm_serving_efficiency(lat)
    print(f"  diagnostic, not adopted: the bus efficiency its concurrency-8 / 32 TPOT rows at TP > 1 ask: "
          f"{serving:.4f}")
    for row in ladder_gddr_rows():
        print(f"  diagnostic, not adopted: {row['id']} ({row['device']} TP 1 concurrency 1 TPOT) errs "
              f"{cp.predict(row) / row['value'] - 1.0:+.1%} with the GDDR factor at 1 and asks "
              f"{ladder_gddr_factor(row):.3f} (1.000: 1 or more)")
    gddr = solve_gddr_factor()
    print(f"A10G / L4 efficiency factor from {GDDR_SOURCE}: {gddr:.3f} (stored "
          f"{cc.GDDR_PCIE_EFFICIENCY_FACTOR['A10G']:.3f}); median signed error at 1: {gddr_median_error(1.0):+.1%}")
    from hardware import fit_v1_engine

    it_s, req_s, fe_s, seq_s = fit_v1_engine.solve_joint()
    print(f"vllm_v1_engine jointly from {fit_v1_engine.SOURCE} and {fit_v1_engine.SEQ_SOURCE}: iteration_s = "
          f"{it_s * 1e3:.3f} ms, request_s = {req_s * 1e3:.2f} ms, frontend_request_s = {fe_s * 1e3:.2f} ms, "
          f"seq_s = {seq_s * 1e6:.1f} us (stored {cc.VLLM_V1_ENGINE_ITERATION_S * 1e3:.3f} ms, "
          f"{cc.VLLM_V1_ENGINE_REQUEST_S * 1e3:.2f} ms, {cc.VLLM_V1_ENGINE_FRONTEND_S * 1e3:.2f} ms, "
          f"{cc.VLLM_V1_ENGINE_SEQ_S * 1e6:.1f} us)")
    over = fit_v1_engine.joint_overrides(it_s, req_s, fe_s, seq_s)
    print(f"  with it {fit_v1_engine.SEQ_SOURCE}'s median TTFT (solved from no constant) is "
          f"{fit_v1_engine.source_median_error(fit_v1_engine.SEQ_SOURCE, 'median_ttft_ms', over):+.1%}")
    fe0 = {"frontend_request_s": 0.0, "seq_overhead_s": cc.VLLM_V1_SEQ_S,
           "iteration_overhead_s": fit_v1_engine.FID5_ITERATION_S, "request_overhead_s": fit_v1_engine.FID5_REQUEST_S}
    seq0 = fit_v1_engine.solve_seq_s_with(fe0)
    print(f"  without a front end (fid5's constants) the per-sequence cost that reproduces "
          f"{fit_v1_engine.SEQ_SOURCE}'s throughput is {seq0 * 1e6:.1f} us, and with it that run's median TPOT is "
          f"{fit_v1_engine.seq_median_error(seq0, 'median_tpot_ms', fe0):+.0%}, median TTFT "
          f"{fit_v1_engine.seq_median_error(seq0, 'median_ttft_ms', fe0):+.0%} (not adopted in fid5)")
    from hardware import fit_sglang_moe

    fit_sglang_moe.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
