"""Which mechanism could explain the vLLM 0.5 misses? A sensitivity check, not a fit (issue 17, fid6).

Lambda's vLLM 0.5.4 rows (held-out source ``lambda_vllm``) miss on A100 hosts (median ITL 36-55%
short, flat across TP) and, for Mixtral, in throughput on H100 (+46..+85% while ITL is within 6%).
Three candidate mechanisms were named; none has a public calibration measurement (README (l)), so
none is modelled. This script only shows how each would move the held-out rows if it were, with
trial values that are NOT solved from anything and NOT adopted:

- ``cpu x k``: the row's stack's per-step and per-sequence CPU costs times ``k`` (a slower host
  CPU); rows on A100 hosts. The same trial is shown on the other A100 rows of the corpus: the held-out
  ``vllm_rfc3130_a100`` (offline, another lab) and the calibration rows measured on A100 hosts
  (``vllm_pr3240_mixtral``, IBM's host; SGLang's vLLM 0.6.0 rows of ``sglang_vllm060``), which a
  factor tied to "A100" would have to fit as well.
- ``dequant +d``: the GEMMs of FP8 checkpoints on a GPU without FP8 tensor cores (weight-only FP8
  Marlin, W8A16) cost ``1 + d`` times their BF16-rate compute (``gemm_compute_efficiency / (1+d)``;
  applied to the FP8 rows on A100 only; it also slows the 16-bit head and attention a little).
- ``moe f``: the fused_moe compute factor set to ``f`` (0.63 is the solved value) on the Mixtral rows.

It also sets the fused_moe compute factor against a printed kernel measurement on H100 (not a corpus
row: a 2025 build): vllm-project/vllm#24700 (mgoin, 2025-09-11), ``benchmarks/kernels/benchmark_moe.py
--model=mistralai/Mixtral-8x7B-Instruct-v0.1 -tp=2`` on H100 with the tuned config
``E=8,N=7168,device_name=NVIDIA_H100_80GB_HBM3.json``: kernel time at batch (tokens) 256 / 512 / 1024 /
1536 = 536.77 / 662.33 / 833.72 / 1122.93 us. The model's price of the same fused_moe call is the
roofline of its FLOPs at peak x ``GEMM_COMPUTE_EFFICIENCY`` x ``VLLM_FUSED_MOE_COMPUTE_FACTOR`` and the
touched experts' weight bytes at HBM x ``MEMORY_EFFICIENCY``.

Prints, per row, measured, the prediction at the stored constants and under each trial setting::

    python experiments/v05_mechanism_sensitivity.py            # every A100 and Mixtral row (~1 min)
    python experiments/v05_mechanism_sensitivity.py --quick    # TP 1 and TP 8 only
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware import calibration_constants as cc  # noqa: E402
from hardware import corpus_predict as cp  # noqa: E402


def cpu_trial(k: float, stack: str = "vllm_v05") -> dict[str, float]:
    """The stack's per-step and per-sequence CPU costs times ``k``."""
    st = cc.STACKS[stack]
    return {"iteration_overhead_s": k * st.iteration_s, "seq_overhead_s": k * st.seq_s}


def dequant_trial(d: float) -> dict[str, float]:
    """GEMMs at 1 / (1 + d) of the stored compute efficiency."""
    return {"gemm_compute_efficiency": cc.GEMM_COMPUTE_EFFICIENCY / (1.0 + d)}


def trials_for(row: dict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if row["device"].startswith("A100"):
        stack = cp.stack_for(row)
        out.update({"cpu x2": cpu_trial(2.0, stack), "cpu x2.5": cpu_trial(2.5, stack)})
        if row["weight_dtype"] == "fp8":
            out.update({"dequant +0.5": dequant_trial(0.5), "dequant +1": dequant_trial(1.0)})
    if row["model"].startswith("Mixtral"):
        out.update({"moe 0.32": {"moe_compute_factor": 0.32}, "moe 0.16": {"moe_compute_factor": 0.16}})
    return out


#: vllm-project/vllm#24700: Mixtral-8x7B BF16, TP 2, H100, tuned config: (tokens, kernel us) as printed.
MOE_KERNEL_H100_TP2 = ((256, 536.77), (512, 662.33), (1024, 833.72), (1536, 1122.93))


def moe_kernel_check() -> None:
    """Measured vs modelled fused_moe call (both expert GEMMs) of Mixtral at TP 2 on one H100."""
    from hardware.analytic import roofline_time_s
    from hardware.devices import get_device

    d = get_device("H100-SXM")
    hidden, inter, experts, top_k, tp = 4096, 14336, 8, 2, 2
    expert_flops = 2.0 * 3 * hidden * inter / tp  # gate + up + down projections of one expert shard
    print("fused_moe kernel, Mixtral-8x7B BF16 TP 2 on H100 (vllm-project/vllm#24700, tuned config):")
    for tokens, us in MOE_KERNEL_H100_TP2:
        flops = tokens * top_k * expert_flops
        touched = experts * (1.0 - (1.0 - top_k / experts) ** tokens)
        wbytes = touched * 3 * hidden * inter / tp * 2
        reached = flops / (us * 1e-6) / (d.bf16_tflops * 1e12)
        peak = d.bf16_tflops * 1e12 * cc.GEMM_COMPUTE_EFFICIENCY * cc.VLLM_FUSED_MOE_COMPUTE_FACTOR
        model = roofline_time_s(flops, wbytes, peak, d.hbm_gbps * 1e9 * cc.MEMORY_EFFICIENCY)
        print(f"  tokens {tokens:5d}: measured {us:8.2f} us ({reached:.0%} of BF16 peak, "
              f"{reached / cc.GEMM_COMPUTE_EFFICIENCY:.2f} of the dense efficiency), model at factor "
              f"{cc.VLLM_FUSED_MOE_COMPUTE_FACTOR} {model * 1e6:8.2f} us ({model * 1e6 / us - 1.0:+.1%})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="TP 1 and TP 8 rows only")
    args = ap.parse_args(argv)
    rows = [r for r in cp.load_corpus() if r["source"] == "lambda_vllm" and cp.stack_for(r) == "vllm_v05"
            and r["id"][-1] in "ab" and (r["device"].startswith("A100") or r["model"].startswith("Mixtral"))]
    if args.quick:
        rows = [r for r in rows if r["tp"] in (1, 8)]
    others = {"vllm_rfc3130_a100", "vllm_pr3240_mixtral", "sglang_vllm060"}
    rows += [r for r in cp.load_corpus() if r["source"] in others and r["device"].startswith("A100")
             and cp.stack_for(r).startswith("vllm")]
    errs: dict[str, list[float]] = {}
    print(f"{'row':9s} {'device':9s} {'model':13s} tp {'dtype':4s} {'metric':14s} {'measured':>9s} "
          f"{'stored':>8s}  trial settings (signed error)")
    for r in rows:
        lam = r["source"] == "lambda_vllm"
        base = cp.predict(r) / r["value"] - 1.0
        if lam:
            errs.setdefault("stored", []).append(abs(base))
        cells = []
        for name, ov in trials_for(r).items():
            e = cp.predict(r, ov) / r["value"] - 1.0
            if lam:
                errs.setdefault(name, []).append(abs(e))
            cells.append(f"{name} {e:+.1%}")
        print(f"{r['id']:9s} {r['device']:9s} {r['model']:13s} {r['tp']:2d} {r['weight_dtype']:4s} "
              f"{r['metric']:14s} {r['value']:9.2f} {base:+8.1%}  " + ", ".join(cells))
    print("median |error| over the lambda_vllm rows each setting applies to: "
          + ", ".join(f"{k} {statistics.median(v):.1%} (n={len(v)})" for k, v in errs.items()))
    moe_kernel_check()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
