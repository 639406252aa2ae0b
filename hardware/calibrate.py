"""Compare the analytic model with every measured point of HARDWARE.md section 5.

``python -m hardware.calibrate`` prints one row per point (setting, measured, predicted,
relative error) and the median absolute error; ``--json`` prints
``{"points": [...], "median_abs_error": x}``. Targets: operator-level points within 15%,
end-to-end points within 25%, median absolute error at most 10%.

Every prediction is computed by the model from the setting; the measured values below are
the published figures, and ranges ("71-85%") are compared with their midpoint.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from hardware.analytic import AnalyticCostModel, AnalyticParams, gemm_time_s
from hardware.devices import get_device
from hardware.links import allreduce_time_s

OPERATOR_TOLERANCE = 0.15
END_TO_END_TOLERANCE = 0.25
MEDIAN_TOLERANCE = 0.10


@dataclass
class Point:
    """One measured figure and how to predict it."""

    level: str  # "operator" or "end-to-end"
    setting: str
    unit: str
    measured: float
    predict: Callable[[], float]


def _model(device: str, model: str, tp: int = 1, weight_dtype: str = "bf16", kv_dtype: str | None = None,
           stack: str = "trtllm") -> AnalyticCostModel:
    hw = SimpleNamespace(device=device, model=model, tp=tp, pp=1, weight_dtype=weight_dtype,
                         kv_dtype=kv_dtype or weight_dtype)
    return AnalyticCostModel(AnalyticParams(stack=stack), hw)


# Llama-2-7B's layer GEMMs (d_in, d_out): fused QKV, output, fused gate+up, down
_LLAMA7B_GEMMS = ((4096, 12288), (4096, 4096), (4096, 22016), (11008, 4096))


def _gemm_flops_share(device: str, tokens: int) -> float:
    """Mean achieved share of BF16 peak over Llama-2-7B's GEMMs at ``tokens`` tokens, in %."""
    d = get_device(device)
    shares = [2.0 * tokens * k * n / gemm_time_s(d, tokens, k, n) / (d.bf16_tflops * 1e12)
              for k, n in _LLAMA7B_GEMMS]
    return 100.0 * sum(shares) / len(shares)


def _gemm_bw_share(device: str) -> float:
    """Mean achieved share of HBM bandwidth (weight bytes / time) over 1-32 tokens, in %."""
    d = get_device(device)
    shares = [k * n * 2.0 / gemm_time_s(d, t, k, n) / (d.hbm_gbps * 1e9)
              for k, n in _LLAMA7B_GEMMS for t in (1, 2, 4, 8, 16, 32)]
    return 100.0 * sum(shares) / len(shares)


def _allreduce_us(device: str, num_bytes: float, n: int, algo: str) -> float:
    return allreduce_time_s(num_bytes, n, get_device(device).nvlink_gbps, algo) * 1e6


def _ttft_ms(cm: AnalyticCostModel, prompt: int) -> float:
    return cm.prefill_time_s(prompt) * 1e3


def _static_batch_s(cm: AnalyticCostModel, batch: int, prompt: int, output: int, max_batched_tokens: int = 0) -> float:
    """Seconds for a static batch: prefill every prompt (in groups of at most
    ``max_batched_tokens`` when set), then ``output - 1`` decode iterations."""
    per_group = batch if not max_batched_tokens else max(1, max_batched_tokens // prompt)
    prefill = 0.0
    for start in range(0, batch, per_group):
        n = min(per_group, batch - start)
        prefill += cm.step_time_s([(prompt, 0)] * n, 0, 0, 0)
    decode = cm.decode_step_times_s(batch, batch * (prompt + 1), output - 1).sum()
    return prefill + float(decode)


def _throughput(cm: AnalyticCostModel, batch: int, prompt: int, output: int) -> float:
    return batch * output / _static_batch_s(cm, batch, prompt, output) / cm.num_gpus


def points() -> list[Point]:
    """Every measured point of HARDWARE.md section 5 with its predictor."""
    mib = 1 << 20
    pts: list[Point] = []
    op = "operator"
    # --- GEMM kernels (Llama-2-7B MLP gate+up, 4096 x 22016)
    for dev, tokens, us in (("H100-SXM", 1, 64.0), ("H100-SXM", 4096, 987.0),
                            ("A100-80GB", 1, 116.0), ("A100-80GB", 4096, 3366.0)):
        pts.append(Point(op, f"GEMM 4096x22016 bf16, {tokens} tok, {dev}", "us", us,
                         lambda d=dev, t=tokens: gemm_time_s(get_device(d), t, 4096, 22016) * 1e6))
    for dev, tokens, lo, hi in (("H100-SXM", 4096, 71, 85), ("H100-SXM", 512, 58, 70), ("A100-80GB", 4096, 69, 74)):
        pts.append(Point(op, f"Llama-2-7B GEMMs {tokens} tok, {dev}: {lo}-{hi}% of peak", "% peak",
                         (lo + hi) / 2, lambda d=dev, t=tokens: _gemm_flops_share(d, t)))
    for dev, lo, hi in (("H100-SXM", 63, 84), ("A100-80GB", 62, 78)):
        pts.append(Point(op, f"Llama-2-7B GEMMs 1-32 tok, {dev}: {lo}-{hi}% of HBM", "% HBM",
                         (lo + hi) / 2, lambda d=dev: _gemm_bw_share(d)))
    # --- all-reduce (fp16)
    for size, us in ((2 * mib, 34.0), (8 * mib, 51.0), (32 * mib, 115.0), (128 * mib, 322.0)):
        pts.append(Point(op, f"all-reduce NCCL 8x H100 DGX {size / 1e6:.1f} MB", "us", us,
                         lambda s=size: _allreduce_us("H100-SXM", s, 8, "nvls")))
    pts.append(Point(op, "all-reduce NCCL 8x A100 DGX 134.2 MB", "us", 675.0,
                     lambda: _allreduce_us("A100-80GB", 128 * mib, 8, "ring")))
    for size, custom_us, nccl_us in ((mib // 2, 13.0, 23.0), (4 * mib, 31.0, 53.0)):
        pts.append(Point(op, f"all-reduce custom H100 TP6 {size / 1e6:.1f} MB", "us", custom_us,
                         lambda s=size: _allreduce_us("H100-SXM", s, 6, "two_shot")))
        pts.append(Point(op, f"all-reduce NCCL H100 TP6 {size / 1e6:.1f} MB", "us", nccl_us,
                         lambda s=size: _allreduce_us("H100-SXM", s, 6, "nccl_ll")))

    e2e = "end-to-end"
    # --- TensorRT-LLM first-token latency, batch 1
    for model, dev, tp, dtype, short_ms, long_ms in (
        ("Llama-2-7B", "H100-SXM", 1, "fp8", 7.0, 36.0),
        ("Llama-2-7B", "A100-80GB", 1, "fp16", 16.0, 133.0),
        ("Llama-2-70B", "H100-SXM", 4, "fp8", 26.0, 109.0),
        ("Llama-2-70B", "A100-80GB", 4, "fp16", 47.0, 377.0),
        ("Llama-2-7B", "L40S", 1, "fp8", 14.0, 73.0),
    ):
        for prompt, ms in ((128, short_ms), (2048, long_ms)):
            pts.append(Point(e2e, f"TRT-LLM TTFT {model} {dev} TP{tp} {dtype}, {prompt} in", "ms", ms,
                             lambda m=model, d=dev, t=tp, w=dtype, p=prompt: _ttft_ms(_model(d, m, t, w), p)))
    # --- TensorRT-LLM static-batch throughput, output tokens/s per GPU
    for dev, dtype, kv, batch, prompt, output, tps in (
        ("H100-SXM", "fp8", "fp8", 768, 128, 128, 19694.0),
        ("H100-SXM", "fp8", "fp8", 48, 2048, 2048, 2740.0),
        ("A100-80GB", "fp16", "fp16", 384, 128, 128, 5586.0),
        ("A100-80GB", "fp16", "fp16", 60, 128, 2048, 1928.0),
    ):
        pts.append(Point(e2e, f"TRT-LLM throughput Llama-2-7B {dev} {dtype} b{batch} {prompt}/{output}", "tok/s",
                         tps, lambda d=dev, w=dtype, k=kv, b=batch, p=prompt, o=output:
                         _throughput(_model(d, "Llama-2-7B", 1, w, k), b, p, o)))
    # --- DistServe's fitted OPT-13B latency model on one A100-80GB (evaluated as "measured")
    for prompt in (512, 1024, 2048):
        ms = 18.10 + 0.1019 * prompt + 7.12e-6 * prompt**2
        pts.append(Point(e2e, f"DistServe OPT-13B A100 prefill {prompt} tok", "ms", ms,
                         lambda p=prompt: _model("A100-80GB", "OPT-13B", stack="distserve").prefill_time_s(p) * 1e3))
    for batch, ctx in ((1, 512), (16, 1024), (64, 1024)):
        ms = 19.93 + 6.27e-4 * batch * ctx + 0.0385 * batch
        pts.append(Point(e2e, f"DistServe OPT-13B A100 decode b{batch} ctx {ctx}", "ms", ms,
                         lambda b=batch, c=ctx:
                         _model("A100-80GB", "OPT-13B", stack="distserve").decode_time_s(b, c) * 1e3))
    # --- vLLM Llama-70B, 4x A100-80GB, batch 64, 256 in / 256 out (2023 default: 4096 tokens/iteration)
    pts.append(Point(e2e, "vLLM Llama-2-70B A100 TP4 b64 256/256 end-to-end", "s", 14.57,
                     lambda: _static_batch_s(_model("A100-80GB", "Llama-2-70B", 4, "fp16", stack="vllm"),
                                             64, 256, 256, max_batched_tokens=4096)))
    # --- published simulator profile: Llama-2-70B DGX-H100 TP4, 512-token context
    for batch, ms in ((1, 29.7), (8, 31.4), (32, 36.9), (64, 52.4)):
        pts.append(Point(e2e, f"sim profile Llama-2-70B H100 TP4 b{batch} ctx 512 per token", "ms", ms,
                         lambda b=batch: _model("H100-SXM", "Llama-2-70B", 4, "fp16", stack="sim_profile")
                         .decode_time_s(b, 512) * 1e3))
    return pts


def evaluate() -> dict:
    """Predict every point; returns ``{"points": [...], "median_abs_error": x, "ok": bool}``."""
    rows = []
    for p in points():
        predicted = float(p.predict())
        rel = (predicted - p.measured) / p.measured
        tol = OPERATOR_TOLERANCE if p.level == "operator" else END_TO_END_TOLERANCE
        rows.append({"level": p.level, "setting": p.setting, "unit": p.unit, "measured": p.measured,
                     "predicted": predicted, "rel_error": rel, "within_target": abs(rel) <= tol})
    median = statistics.median(abs(r["rel_error"]) for r in rows)
    ok = all(r["within_target"] for r in rows) and median <= MEDIAN_TOLERANCE
    return {"points": rows, "median_abs_error": median, "ok": ok}


def _format(result: dict) -> str:
    lines = [f"{'level':10s}  {'setting':66s} {'unit':>6s} {'measured':>10s} {'predicted':>10s} {'error':>7s}"]
    for r in result["points"]:
        flag = "" if r["within_target"] else "  <-- outside target"
        lines.append(f"{r['level']:10s}  {r['setting']:66s} {r['unit']:>6s} {r['measured']:10.4g} "
                     f"{r['predicted']:10.4g} {r['rel_error']:+7.1%}{flag}")
    lines.append(f"median absolute error: {result['median_abs_error']:.1%} "
                 f"(targets: operator <= {OPERATOR_TOLERANCE:.0%}, end-to-end <= {END_TO_END_TOLERANCE:.0%}, "
                 f"median <= {MEDIAN_TOLERANCE:.0%}) -> {'OK' if result['ok'] else 'MISSED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the calibration table (or JSON); exit status 1 if a target is missed."""
    parser = argparse.ArgumentParser(prog="servesim calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print {points, median_abs_error, fidelity} as JSON")
    parser.add_argument("--no-corpus", action="store_true",
                        help="only the section-5 table (skip the corpus split by source, hardware.fidelity)")
    parser.add_argument("--points", action="store_true", help="list every held-out corpus point too")
    args = parser.parse_args(argv)
    result = evaluate()
    fidelity = None
    if not args.no_corpus:
        from hardware import fidelity as fid

        results = fid.evaluate()
        fidelity = fid.report(results)
    if args.json:
        out = {"points": result["points"], "median_abs_error": result["median_abs_error"]}
        if fidelity is not None:
            out["fidelity"] = dict(fidelity, points=[
                {k: r[k] for k in ("id", "source", "split", "group", "device", "model", "tp", "weight_dtype",
                                   "stack", "metric", "value", "predicted", "rel_error")} for r in results])
        print(json.dumps(out, indent=1, default=str))
    else:
        print("== in-sample: HARDWARE.md section 5 (the points the constants were fitted to) ==")
        print(_format(result))
        if fidelity is not None:
            print(fid.format_report(fidelity, results if args.points else None))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
