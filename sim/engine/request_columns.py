"""The summary of a run straight from the recorder's columns, without pandas.

``simulate`` needs the per-request table only for its summary; building it as a pandas
DataFrame costs the pandas import (about 0.2 s) on every run. For a run with none of the
features whose summary keys are computed on the frame (a serving-frontend delay,
multi-model serving), ``RequestColumns`` holds the
columns as numpy arrays sorted by id, with the derived latencies computed as
``Recorder.requests_frame`` computes them (the same float operations on the same values in
the same order), so ``metrics.summarize_columns`` gives on them what it gives on that frame
(``metrics.summarize``), bit for bit (tests/engine/test_request_columns.py). The frame
itself is built only when ``Result.requests`` is first read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_NAN = float("nan")


def needs_frame(cluster: Any) -> bool:
    """Whether a run's summary needs the pandas frame (features whose keys are computed on it)."""
    if cluster.models is not None:
        return True
    for rep in cluster.replicas:
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
        clients = objs["client"]
        self.client = [clients[i] for i in order.tolist()] if self.n else []
        self.finished = np.fromiter((s == "finished" for s in self.state), dtype=bool, count=self.n)
        self.arrival_s = floats("arrival_s")
        self.finish_s = floats("finish_s")
        first_token = floats("first_token_s")
        self.first_token_s = first_token
        self.first_scheduled_s = floats("first_scheduled_s")
        self.input_tokens = ints("input_tokens")
        self.output_tokens = ints("output_tokens")
        self.num_output_tokens = ints("num_output_tokens")
        self.num_preemptions = ints("num_preemptions")
        self.ttft_slo_s = floats("ttft_slo_s")
        self.tpot_slo_s = floats("tpot_slo_s")
        self.deadline_s = floats("deadline_s")
        # derived as requests_frame derives them
        self.ttft_s = first_token - self.arrival_s
        e2e = self.finish_s - self.arrival_s
        self.queueing_s = self.first_scheduled_s - self.arrival_s
        n_out = self.num_output_tokens
        denom = np.where(n_out > 1, (n_out - 1).astype(np.float64), _NAN)
        tpot = (self.finish_s - first_token) / denom
        e2e[~self.finished] = _NAN
        tpot[~self.finished] = _NAN
        self.e2e_s, self.tpot_s = e2e, tpot

    def num_clients(self) -> int:
        """Distinct clients named (None not counted), as ``Series.nunique`` counts them."""
        return len({c for c in self.client if c is not None and c == c})

    def window(self) -> tuple[float, float] | None:
        """[first arrival, last finish], as ``sim.api._run_window`` reads it off the frame."""
        if self.n == 0 or np.isnan(self.finish_s).all():
            return None
        return float(self.arrival_s.min()), float(np.nanmax(self.finish_s))

    def finished_output_tokens(self) -> float:
        return float(self.num_output_tokens[self.finished].sum())
