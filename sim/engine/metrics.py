"""Summary metrics of a run, defined once (as vLLM's benchmark and DistServe define them).

- TTFT = first token - arrival; TPOT = (finish - first token) / (output tokens - 1);
  ITL = gaps between consecutive tokens of a request (pooled over all requests, binned at 0.1%
  relative resolution: percentiles within 0.1%, mean and max exact; sim/engine/itl.py);
  E2E = finish - arrival; queueing delay = first scheduled - arrival.
- A request meets the SLOs when it finished and its TTFT, TPOT and E2E are within the
  limits; its own ``ttft_slo_s`` / ``tpot_slo_s`` override the run's, and its ``deadline_s``
  (an absolute time on the arrival clock, e.g. an agentic job's end-to-end deadline)
  overrides ``arrival + slo.e2e_s``.
  Rejected and unfinished requests meet no SLO.
- goodput_rps = requests meeting every SLO / simulated duration (DistServe); SLO attainment
  = share of all requests meeting each SLO, and all of them (``slo_attainment``).
- simulated_duration_s = last finish (or rejection) - first arrival.
- The same over a steady window, which leaves out the start-up transient and the drain tail
  (where a run over the whole span counts the last requests finishing after arrivals stop, so
  goodput_rps is below the offered rate even at 100% attainment): the requests arriving in
  the middle 80% of the arrival span (``STEADY_TRIM`` = 10% cut at each end).
  ``offered_steady_rps`` = those arrivals / window length; ``slo_attainment_steady`` = share
  of them meeting every SLO; ``goodput_steady_rps`` = those meeting every SLO / window length.
  NaN when the window holds fewer than ``STEADY_MIN_REQUESTS`` requests.
- With speculation: spec_acceptance_rate = accepted / proposed draft tokens,
  spec_mean_proposed_tokens and spec_mean_emitted_per_step per speculating request-step;
  spec_mean_k = proposed / all decode request-steps of speculative plans (k = 0 counted);
  spec_draft_time_share / spec_verify_time_share = draft / the rest of speculative steps'
  time (the verify pass with any prefill chunks batched with it). Per request (columns added
  by ``speculation_columns``): spec_steps, spec_proposed_tokens, spec_accepted_tokens,
  spec_emitted_tokens, spec_mean_k, spec_acceptance_rate.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where the frames are built, after the run
    import pandas as pd

PERCENTILES = (50, 90, 95, 99)
STEADY_TRIM = 0.1           # share of the arrival span left out at each end of the steady window
STEADY_MIN_REQUESTS = 20    # fewer arrivals in the window: no steady figures (NaN)


_NAN = float("nan")
#: per-request columns the summary reads (``frame_columns`` / ``request_columns.RequestColumns``)
_FLOAT_COLUMNS = ("arrival_s", "finish_s", "ttft_slo_s", "tpot_slo_s", "deadline_s", "ttft_s", "tpot_s",
                  "e2e_s", "queueing_s")
_INT_COLUMNS = ("input_tokens", "num_output_tokens", "num_preemptions")


def frame_columns(df: pd.DataFrame) -> SimpleNamespace:
    """The per-request columns ``summarize_columns`` reads, taken from a requests frame (in its
    row order, with its derived latencies as they stand, e.g. after a frontend delay)."""
    state = df["state"].tolist()
    cols = SimpleNamespace(n=len(df), state=state, reject_reason=df["reject_reason"].tolist(),
                           finished=np.fromiter((s == "finished" for s in state), dtype=bool, count=len(df)))
    for c in _FLOAT_COLUMNS:
        setattr(cols, c, df[c].to_numpy(np.float64))
    for c in _INT_COLUMNS:
        setattr(cols, c, df[c].to_numpy(np.int64))
    return cols


def _dist(prefix: str, values: np.ndarray, out: dict[str, Any]) -> None:
    vals = values[~np.isnan(values)]
    out[f"{prefix}_mean_s"] = float(vals.mean()) if len(vals) else _NAN
    for q in PERCENTILES:
        out[f"{prefix}_p{q}_s"] = float(np.percentile(vals, q)) if len(vals) else _NAN


def slo_mask(df: pd.DataFrame, ttft_s: float | None, tpot_s: float | None,
             e2e_s: float | None) -> dict[str, np.ndarray]:
    """Per-request booleans of a requests frame: meets TTFT, TPOT, E2E and all."""
    return slo_masks(frame_columns(df), ttft_s, tpot_s, e2e_s)


def slo_masks(cols: Any, ttft_s: float | None, tpot_s: float | None, e2e_s: float | None) -> dict[str, np.ndarray]:
    """Per-request booleans: meets TTFT, TPOT, E2E and all (per-request limits override; a
    request's ``deadline_s`` is absolute, on the arrival clock; the run's ``e2e_s`` is relative)."""
    finished = cols.finished
    inf = np.inf
    masks = {}
    with np.errstate(invalid="ignore"):
        ttft_lim = np.where(np.isnan(cols.ttft_slo_s), ttft_s if ttft_s is not None else inf, cols.ttft_slo_s)
        masks["ttft"] = finished & (cols.ttft_s <= ttft_lim)
        tpot_lim = np.where(np.isnan(cols.tpot_slo_s), tpot_s if tpot_s is not None else inf, cols.tpot_slo_s)
        masks["tpot"] = finished & ((cols.tpot_s <= tpot_lim) | np.isnan(cols.tpot_s))
        deadline = np.where(np.isnan(cols.deadline_s), cols.arrival_s + (e2e_s if e2e_s is not None else inf),
                            cols.deadline_s)
        masks["e2e"] = finished & (cols.finish_s <= deadline)
    masks["all"] = masks["ttft"] & masks["tpot"] & masks["e2e"]
    return masks


def _rejected_by_reason(cols: Any) -> dict[str, int]:
    reasons = [r for s, r in zip(cols.state, cols.reject_reason, strict=True) if s == "rejected"]
    kinds = Counter(r for r in reasons if r is not None and r == r)
    if len(kinds) <= 1:
        return {str(k): int(v) for k, v in kinds.items()}
    import pandas as pd  # two or more reasons: their order is value_counts' own

    return {str(k): int(v) for k, v in pd.Series(reasons, dtype=object).value_counts().items()}


def summarize(df: pd.DataFrame, itl: Any, slo: Any, replicas: list[Any],
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat summary dict written to summary.json, from a requests frame."""
    return summarize_columns(frame_columns(df), itl, slo, replicas, extra)


def summarize_columns(cols: Any, itl: Any, slo: Any, replicas: list[Any],
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat summary dict written to summary.json, from per-request columns (``frame_columns``
    of a frame, or ``sim.engine.request_columns.RequestColumns`` straight from the recorder)."""
    out: dict[str, Any] = {}
    n = cols.n
    finished = cols.finished
    out["num_requests"] = int(n)
    out["num_completed"] = int(finished.sum())
    out["num_rejected"] = sum(1 for s in cols.state if s == "rejected")
    out["num_unfinished"] = sum(1 for s in cols.state if s == "unfinished")
    out["rejected_by_reason"] = _rejected_by_reason(cols)
    start = float(cols.arrival_s.min()) if n else 0.0
    end = float(np.nanmax(cols.finish_s)) if n and not np.isnan(cols.finish_s).all() else start
    duration = max(end - start, 1e-12)
    out["simulated_duration_s"] = end - start
    for name in ("ttft", "tpot", "e2e", "queueing"):
        _dist(name, getattr(cols, f"{name}_s")[finished], out)
    out["itl_mean_s"] = itl.mean_s()
    for q, v in zip(PERCENTILES, itl.percentiles(PERCENTILES), strict=True):
        out[f"itl_p{q}_s"] = v
    out["itl_max_s"] = itl.max_s if itl.count else _NAN
    out["throughput_input_tps"] = float(cols.input_tokens[finished].sum() / duration)
    out["throughput_output_tps"] = float(cols.num_output_tokens[finished].sum() / duration)
    out["request_rate_rps"] = float(n / duration)
    out["completed_rps"] = float(finished.sum() / duration)
    masks = slo_masks(cols, slo.ttft_s, slo.tpot_s, slo.e2e_s)
    for key in ("ttft", "tpot", "e2e"):
        out[f"slo_attainment_{key}"] = float(masks[key].mean()) if n else _NAN
    out["slo_attainment"] = float(masks["all"].mean()) if n else _NAN
    out["goodput_rps"] = float(masks["all"].sum() / duration)
    out.update(steady_window(cols.arrival_s, masks["all"]))
    _summary_tail(out, int(cols.num_preemptions.sum()), replicas, duration, extra)
    return out


def _summary_tail(out: dict[str, Any], num_preemptions: int, replicas: list[Any], duration: float,
                  extra: dict[str, Any] | None) -> None:
    """The summary keys after the steady window: GPUs, preemptions, prefix hits, steps, busy
    fraction, speculation, then ``extra``."""
    num_gpus = sum(getattr(r.cost_model, "num_gpus", 1) for r in replicas)
    out["num_gpus"] = int(num_gpus)
    out["goodput_rps_per_gpu"] = out["goodput_rps"] / max(num_gpus, 1)
    out["num_preemptions"] = num_preemptions
    stats = [r.kv.prefix_stats() for r in replicas]
    queried = sum(s[1] for s in stats)
    hits = sum(s[2] for s in stats)
    out["prefix_hit_rate"] = float(hits / queried) if queried else 0.0
    if any(getattr(r.kv, "retain_blocks", False) for r in replicas):  # policies/kv/paged.py retention
        out["retained_hit_tokens"] = int(sum(r.kv.retention_stats()[1] for r in replicas))
    steps = sum(r.num_steps for r in replicas)
    out["num_steps"] = int(steps)
    out["mean_batch_size"] = float(sum(r.batch_size_sum for r in replicas) / steps) if steps else 0.0
    busy = sum(r.busy_prefill_s + r.busy_decode_s for r in replicas)
    out["gpu_busy_fraction"] = float(busy / (duration * len(replicas))) if replicas else 0.0
    if any(getattr(r, "speculator", None) is not None for r in replicas):
        out.update(speculation_summary(replicas))
    if extra:
        out.update(extra)


def steady_window(arrivals: np.ndarray, meets_all: np.ndarray) -> dict[str, float]:
    """Offered rate, SLO attainment and goodput of the requests arriving in the steady window
    (the middle of the arrival span; see the module docstring), from arrival times and whether
    each request met every SLO, in request order."""
    nan = float("nan")
    out = {"steady_window_start_s": nan, "steady_window_end_s": nan, "offered_steady_rps": nan,
           "slo_attainment_steady": nan, "goodput_steady_rps": nan}
    if not len(arrivals):
        return out
    first, last = float(arrivals.min()), float(arrivals.max())
    lo, hi = first + STEADY_TRIM * (last - first), last - STEADY_TRIM * (last - first)
    inside = (arrivals >= lo) & (arrivals <= hi)
    count = int(inside.sum())
    out["steady_window_start_s"], out["steady_window_end_s"] = lo, hi
    if count < STEADY_MIN_REQUESTS or hi <= lo:
        return out
    good = int(meets_all[inside].sum())
    out["offered_steady_rps"] = count / (hi - lo)
    out["slo_attainment_steady"] = good / count
    out["goodput_steady_rps"] = good / (hi - lo)
    return out


def speculation_summary(replicas: list[Any]) -> dict[str, float]:
    """Speculative decoding over all speculating decode steps (one per request and step with
    k > 0): acceptance rate = accepted / proposed draft tokens; mean proposed and mean emitted
    (accepted + 1, cut at the request's end) tokens per such step."""
    steps = sum(r.spec_steps for r in replicas)
    proposed = sum(r.spec_proposed for r in replicas)
    accepted = sum(r.spec_accepted for r in replicas)
    emitted = sum(r.spec_emitted for r in replicas)
    nan = float("nan")
    return {
        "spec_acceptance_rate": accepted / proposed if proposed else nan,
        "spec_mean_proposed_tokens": proposed / steps if steps else nan,
        "spec_mean_emitted_per_step": emitted / steps if steps else nan,
        "spec_num_steps": int(steps),
        **_spec_shares(replicas, proposed),
    }


def _spec_shares(replicas: list[Any], proposed: int) -> dict[str, float]:
    decode_steps = sum(getattr(r, "spec_decode_steps", 0) for r in replicas)
    step_s = sum(getattr(r, "spec_step_s", 0.0) for r in replicas)
    draft_s = sum(getattr(r, "spec_draft_s", 0.0) for r in replicas)
    nan = float("nan")
    return {
        "spec_mean_k": proposed / decode_steps if decode_steps else nan,
        "spec_draft_time_share": draft_s / step_s if step_s else nan,
        "spec_verify_time_share": (step_s - draft_s) / step_s if step_s else nan,
    }


def speculation_columns(df: pd.DataFrame, replicas: list[Any]) -> pd.DataFrame:
    """Add per-request speculation columns (summed over the replicas a request visited)."""
    rows: dict[int, list[int]] = {}
    for rep in replicas:
        for rid, row in getattr(rep, "spec_by_request", {}).items():
            acc = rows.get(rid)
            if acc is None:
                rows[rid] = list(row)
            else:
                for j, v in enumerate(row):
                    acc[j] += v
    ids = df["id"].to_numpy()
    cols = np.zeros((len(ids), 5), dtype=np.int64)
    for i, rid in enumerate(ids.tolist()):
        row = rows.get(rid)
        if row is not None:
            cols[i] = row
    decode_steps = cols[:, 0]
    df["spec_steps"] = cols[:, 1]
    df["spec_proposed_tokens"] = cols[:, 2]
    df["spec_accepted_tokens"] = cols[:, 3]
    df["spec_emitted_tokens"] = cols[:, 4]
    with np.errstate(invalid="ignore", divide="ignore"):
        df["spec_mean_k"] = np.where(decode_steps > 0, cols[:, 2] / np.maximum(decode_steps, 1), np.nan)
        df["spec_acceptance_rate"] = np.where(cols[:, 2] > 0, cols[:, 3] / np.maximum(cols[:, 2], 1), np.nan)
    return df
