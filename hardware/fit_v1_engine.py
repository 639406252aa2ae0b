"""Solve the ``vllm_v1_engine`` stack (vLLM >= 0.8, the V1 engine) from its calibration source.

The ``inferencebench_marathon_h100`` rows of ``hardware/corpus/points.csv`` are vLLM 0.21.0 on H100
(InferenceBench's multi-vendor marathon, 2026-05-18): Llama-3.1-8B, Qwen2.5-7B and Mistral-7B at TP 1
and Llama-3.1-70B at TP 4, four closed-loop clients sending short chat prompts with ``max_tokens=128``;
each model gives its median TTFT and median TPOT. Two constants are solved from them:

- the per-step cost ``iteration_s`` (scheduling and input preparation not hidden by async scheduling,
  sampling, the step's host-device synchronisation), so that the median signed error of the source's
  four TPOT rows is zero;
- the per-request delay ``request_s`` (the API server's tokenisation, detokenisation and HTTP, and the
  request's trips to and from the engine-core process), added to TTFT and E2E and used as the clients'
  think time, so that the median signed error of the four TTFT rows is zero.

TPOT barely depends on ``request_s`` and TTFT depends on ``iteration_s`` (the prefill step's own cost),
so the two are solved in turn (``ROUNDS`` times, each by bisection) starting from zero. With at most
four sequences running no marathon row separates the per-sequence cost from the per-step cost; fid5 kept
``vllm_v1``'s. Since fid7 the stack has a serial serving front end (``sim/engine/frontend.py``), and
``solve_joint`` solves four constants in turn: the front end's service time from ``kvcached_h100_inf``'s
request throughput, the per-sequence cost from that run's median TPOT, and the two above from the
marathon (whose TTFT now holds the front end's service time too).

``python -m hardware.fit_v05`` prints the solution beside the stored constants.
"""

from __future__ import annotations

import statistics
from typing import Any

from hardware import corpus_predict as cp

SOURCE = "inferencebench_marathon_h100"
ROUNDS = 3


def rows(metric: str) -> list[dict[str, Any]]:
    return [r for r in cp.load_corpus() if r["source"] == SOURCE and r["metric"] == metric]


def median_error(metric: str, iteration_s: float | None = None, request_s: float | None = None) -> float:
    """Median signed error of the source's ``metric`` rows (stored constants where ``None``)."""
    over: dict[str, Any] = {}
    if iteration_s is not None:
        over["iteration_overhead_s"] = iteration_s
    if request_s is not None:
        over["request_overhead_s"] = request_s
    return statistics.median(cp.predict(r, over) / r["value"] - 1.0 for r in rows(metric))


def bisect_root(f, lo: float, hi: float, tol: float) -> float:
    """Root of an increasing ``f`` on [lo, hi], to ``tol`` (the fits of hardware/fit_v05.py too)."""
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if f(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def solve(rounds: int = ROUNDS) -> tuple[float, float]:
    """(iteration_s, request_s) with median signed error zero over the TPOT and the TTFT rows."""
    it_s = req_s = 0.0
    for _ in range(rounds):
        it_s = bisect_root(lambda a, r=req_s: median_error("median_tpot_ms", a, r), 0.0, 10e-3, 0.02e-3)
        req_s = bisect_root(lambda r, a=it_s: median_error("median_ttft_ms", a, r), 0.0, 100e-3, 0.1e-3)
    return it_s, req_s


#: The high-batch run of the calibration (kvcached's H100 check of vanilla vLLM 0.19.0: 500 fixed 512/128
#: requests at once). fid5's split rule had its request throughput solve the per-sequence cost; that
#: solution was NOT adopted: the same run's TTFT (median 2.9 s) and TPOT (5.7 ms) show that its requests
#: reached the engine a few at a time (about 1 / throughput apart: a serial front end), which no
#: per-sequence engine cost reproduces (see README (j)). fid7 models that front end (``solve_joint``).
SEQ_SOURCE = "kvcached_h100_inf"


def seq_rows(metric: str = "req_tput") -> list[dict[str, Any]]:
    return [r for r in cp.load_corpus() if r["source"] == SEQ_SOURCE and r["metric"] == metric]


def seq_median_error(seq_s: float, metric: str = "req_tput", over: dict[str, Any] | None = None) -> float:
    """Median signed error of the high-batch run's ``metric`` rows with per-sequence cost ``seq_s`` (and
    the cost-model overrides ``over``)."""
    o = dict(over or {}, seq_overhead_s=seq_s)
    return statistics.median(cp.predict(r, o) / r["value"] - 1.0 for r in seq_rows(metric))


def solve_seq_s(tol: float = 0.5e-6) -> float:
    """Per-sequence cost with median signed error zero over the high-batch run's throughput rows."""
    return solve_seq_s_with(None, tol)


def solve_seq_s_with(over: dict[str, Any] | None, tol: float = 0.5e-6) -> float:
    """``solve_seq_s`` with the cost-model overrides ``over`` (fid5's solve: ``over`` without a front end)."""
    return bisect_root(lambda b: -seq_median_error(b, "req_tput", over), 0.0, 400e-6, tol)  # throughput falls


# ---------------------------------------------------------------- fid7: the serial front end, jointly

#: Rounds of the joint solve (each solves the four constants in turn, by bisection).
JOINT_ROUNDS = 4
#: Where the joint solve starts: fid5's solution without a front end (per-step, per-request cost), so that
#: its result does not depend on the stored constants (the TTFT medians jump, so the start matters at
#: the 0.05 ms level).
FID5_ITERATION_S, FID5_REQUEST_S = 0.186e-3, 18.5e-3


def source_median_error(source: str, metric: str, over: dict[str, Any]) -> float:
    """Median signed error of ``source``'s ``metric`` rows with cost-model overrides ``over``."""
    rows_ = [r for r in cp.load_corpus() if r["source"] == source and r["metric"] == metric]
    return statistics.median(cp.predict(r, over) / r["value"] - 1.0 for r in rows_)


def joint_overrides(it_s: float, req_s: float, fe_s: float, seq_s: float) -> dict[str, Any]:
    return {"iteration_overhead_s": it_s, "request_overhead_s": req_s, "frontend_request_s": fe_s,
            "seq_overhead_s": seq_s}


def solve_joint(rounds: int = JOINT_ROUNDS, solve_seq: bool = True,
                seq_start: float | None = None) -> tuple[float, float, float, float]:
    """(iteration_s, request_s, frontend_request_s, seq_s) of ``vllm_v1_engine``, solved in turn:

    - ``frontend_request_s`` (one serial front-end server per replica) so that the median signed error
      of ``kvcached_h100_inf``'s request throughput rows is zero (500 requests at once: the front end
      releases one request per service time, so the run's throughput is about 1 / service);
    - ``seq_s`` (per sequence per step; only where ``solve_seq``) so that the same run's median TPOT rows
      have median signed error zero (with the front end, about 70 sequences run, not 500);
    - ``iteration_s`` and ``request_s`` from the marathon's TPOT and TTFT rows as ``solve`` does, now with
      the front end's service time in every request's TTFT (4 clients rarely queue in it).

    The same run's median TTFT rows are solved from no constant: they check the front end."""
    from hardware import calibration_constants as cc

    cur = {"it_s": FID5_ITERATION_S, "req_s": FID5_REQUEST_S, "fe_s": 0.0,  # from fid5's solution
           "seq_s": cc.VLLM_V1_SEQ_S if seq_start is None else seq_start}

    def err(source: str, metric: str, name: str, sign: float = 1.0):
        """Signed median error of ``source``'s ``metric`` as a function of the constant ``name``."""
        return lambda x: sign * source_median_error(source, metric, joint_overrides(**{**cur, name: x}))

    for _ in range(rounds):
        cur["fe_s"] = bisect_root(err(SEQ_SOURCE, "req_tput", "fe_s", -1.0), 0.0, 50e-3, 0.005e-3)
        if solve_seq:
            cur["seq_s"] = bisect_root(err(SEQ_SOURCE, "median_tpot_ms", "seq_s"), 0.0, 400e-6, 0.2e-6)
        cur["it_s"] = bisect_root(err(SOURCE, "median_tpot_ms", "it_s"), 0.0, 10e-3, 0.005e-3)
        cur["req_s"] = bisect_root(err(SOURCE, "median_ttft_ms", "req_s"), 0.0, 100e-3, 0.05e-3)
    return cur["it_s"], cur["req_s"], cur["fe_s"], cur["seq_s"]
