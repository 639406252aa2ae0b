"""Solve the ``sglang`` stack's routed-expert compute factor from its calibration source (SOURCES.md fid15c).

``sglang_pr14764_dsv31_h200`` (sgl-project/sglang#14764) ran ``sglang.bench_one_batch`` of DeepSeek-V3.1
(DeepSeek-V3 shapes, FP8) on 8x H200 at TP 8: 16 prompts of 512 tokens prefilled in one iteration. Row
``sgp-1`` (the run without the all-reduce fusion flag, the engine's default path) is that iteration's time.
Its price under the ``sglang`` stack falls as the factor ``f`` (``moe_compute_factor``: the share of the
dense GEMM compute efficiency the routed-expert GEMMs reach) grows, so ``f`` is solved by bisection on
(0, 1] to reproduce it; whatever else of the iteration the model misprices is absorbed into ``f``.
Adoption (fid15c): the stored ``SGLANG_FUSED_MOE_COMPUTE_FACTOR`` is the solution rounded to two decimals if
it lies in (0, 1); if the price at ``f = 1`` already reaches the measured time, the factor stays 1.
"""

from __future__ import annotations

import sys

from hardware import calibration_constants as cc
from hardware import corpus_predict as cp

SOURCE, SOLVE_ROW = "sglang_pr14764_dsv31_h200", "sgp-1"


def source_rows() -> list[dict]:
    """The source's corpus rows (the solve row and its in-sample checks)."""
    return [r for r in cp.load_corpus() if r["source"] == SOURCE]


def prefill_s(factor: float) -> float:
    """Predicted prefill iteration of the solve row with the ``sglang`` stack's MoE factor at ``factor``."""
    row = next(r for r in source_rows() if r["id"] == SOLVE_ROW)
    return cp.predict(row, {"moe_compute_factor": factor})


def solve(tol: float = 1e-4) -> float | None:
    """The factor that reproduces the solve row (bisection on (0, 1]); None when none does (the price at
    factor 1 is already at or above the measured time)."""
    target = next(r for r in source_rows() if r["id"] == SOLVE_ROW)["value"]
    if prefill_s(1.0) >= target:
        return None
    lo, hi = 0.01, 1.0  # the price falls as the factor grows
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if prefill_s(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def main() -> int:
    f = solve()
    target = next(r for r in source_rows() if r["id"] == SOLVE_ROW)["value"]
    stored = cc.STACKS["sglang"].moe_compute_factor
    if f is None:
        print(f"sglang fused_moe compute factor from {SOURCE}: none in (0, 1] (prefill at 1: "
              f"{prefill_s(1.0) * 1e3:.1f} ms vs {target * 1e3:.2f} ms measured); stored {stored:.2f}")
    else:
        print(f"sglang fused_moe compute factor from {SOURCE} ({SOLVE_ROW}): {f:.4f} (stored {stored:.2f}; "
              f"prefill at factor 1: {prefill_s(1.0) * 1e3:.1f} ms, measured {target * 1e3:.2f} ms)")
    for row in source_rows():
        pred = cp.predict(row)
        print(f"  {row['id']} {row['metric']:16s} measured {row['value']:.5g} predicted {pred:.5g} "
              f"({pred / row['value'] - 1.0:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
