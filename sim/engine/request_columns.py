"""The summary of a run straight from the recorder's columns, without pandas.

``simulate`` needs the per-request table only for its summary; building it as a pandas
DataFrame costs the pandas import (about 0.2 s) on every run. For a run with none of the
features whose summary keys are computed on the frame (a serving-frontend delay,
speculation, multi-model serving, two or more clients), ``RequestColumns`` holds the
columns as numpy arrays sorted by id, with the derived latencies computed as
``Recorder.requests_frame`` computes them (the same float operations on the same values in
the same order), and ``summarize_columns`` gives what ``metrics.summarize`` gives on that
frame, bit for bit (tests/engine/test_request_columns.py). The frame itself is built only
when ``Result.requests`` is first read.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from sim.engine.metrics import PERCENTILES, steady_window_arrays, summary_tail

_NAN = float("nan")


def needs_frame(cluster: Any) -> bool:
    """Whether a run's summary needs the pandas frame (features whose keys are computed on it)."""
    if cluster.models is not None:
        return True
    for rep in cluster.replicas:
        if getattr(rep, "speculator", None) is not None:
            return True
        if getattr(rep.cost_model, "request_overhead_s", 0.0):
            return True
    return False


class RequestColumns:
    """Per-request columns sorted by id (what ``requests_frame`` holds), as numpy arrays."""

    def __init__(self, recorder: Any) -> None:
        float_cols, int_cols, objs = recorder.request_columns()
        ids = np.frombuffer(int_cols["id"], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        self.n = len(ids)

        def ints(c: str) -> np.ndarray:
            return np.frombuffer(int_cols[c], dtype=np.int64)[order]

        def floats(c: str) -> np.ndarray:
            return np.frombuffer(float_cols[c], dtype=np.float64)[order]

        self.state = [objs["state"][i] for i in order.tolist()]
        self.reject_reason = [objs["reject_reason"][i] for i in order.tolist()] if self.n else []
        self.clients = objs["client"]
        self.finished = np.fromiter((s == "finished" for s in self.state), dtype=bool, count=self.n)
        self.arrival_s = floats("arrival_s")
        self.finish_s = floats("finish_s")
        first_token = floats("first_token_s")
        self.input_tokens = ints("input_tokens")
        self.num_output_tokens = ints("num_output_tokens")
        self.num_preemptions = ints("num_preemptions")
        self.ttft_slo_s = floats("ttft_slo_s")
        self.tpot_slo_s = floats("tpot_slo_s")
        self.deadline_s = floats("deadline_s")
        # derived as requests_frame derives them
        self.ttft_s = first_token - self.arrival_s
        e2e = self.finish_s - self.arrival_s
        self.queueing_s = floats("first_scheduled_s") - self.arrival_s
        n_out = self.num_output_tokens
        denom = np.where(n_out > 1, (n_out - 1).astype(np.float64), _NAN)
        tpot = (self.finish_s - first_token) / denom
        e2e[~self.finished] = _NAN
        tpot[~self.finished] = _NAN
        self.e2e_s, self.tpot_s = e2e, tpot

    def num_clients(self) -> int:
        """Distinct clients named (None not counted), as ``Series.nunique`` counts them."""
        return len({c for c in self.clients if c is not None and c == c})

    def window(self) -> tuple[float, float] | None:
        """[first arrival, last finish], as ``sim.api._run_window`` reads it off the frame."""
        if self.n == 0 or np.isnan(self.finish_s).all():
            return None
        return float(self.arrival_s.min()), float(np.nanmax(self.finish_s))

    def finished_output_tokens(self) -> float:
        return float(self.num_output_tokens[self.finished].sum())


def _dist(prefix: str, values: np.ndarray, out: dict[str, Any]) -> None:
    vals = values[~np.isnan(values)]
    out[f"{prefix}_mean_s"] = float(vals.mean()) if len(vals) else _NAN
    for q in PERCENTILES:
        out[f"{prefix}_p{q}_s"] = float(np.percentile(vals, q)) if len(vals) else _NAN


def _rejected_by_reason(cols: RequestColumns) -> dict[str, int]:
    reasons = [r for s, r in zip(cols.state, cols.reject_reason, strict=True) if s == "rejected"]
    kinds = Counter(r for r in reasons if r is not None and r == r)
    if len(kinds) <= 1:
        return {str(k): int(v) for k, v in kinds.items()}
    import pandas as pd  # two or more reasons: their order is value_counts' own

    return {str(k): int(v) for k, v in pd.Series(reasons, dtype=object).value_counts().items()}


def summarize_columns(cols: RequestColumns, itl: Any, slo: Any, replicas: list[Any],
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``metrics.summarize`` on the columns (the same keys, in the same order, same values)."""
    out: dict[str, Any] = {}
    n = cols.n
    finished = cols.finished
    num_finished = int(finished.sum())
    out["num_requests"] = int(n)
    out["num_completed"] = num_finished
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
    masks = _slo_masks(cols, slo.ttft_s, slo.tpot_s, slo.e2e_s)
    for key in ("ttft", "tpot", "e2e"):
        out[f"slo_attainment_{key}"] = float(masks[key].mean()) if n else _NAN
    out["slo_attainment"] = float(masks["all"].mean()) if n else _NAN
    out["goodput_rps"] = float(masks["all"].sum() / duration)
    out.update(steady_window_arrays(cols.arrival_s, masks["all"]))
    summary_tail(out, int(cols.num_preemptions.sum()), replicas, duration, extra)
    return out


def _slo_masks(cols: RequestColumns, ttft_s: float | None, tpot_s: float | None,
               e2e_s: float | None) -> dict[str, np.ndarray]:
    """``metrics.slo_mask`` on the columns."""
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
