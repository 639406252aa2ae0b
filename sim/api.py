"""The public Python API: ``simulate(config) -> Result``."""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.config import SimulationConfig, from_dict, load_config
from sim.engine.cluster import Cluster
from sim.engine.fairness import FairRows, fairness_summary
from sim.engine.metrics import speculation_columns, summarize, summarize_columns
from sim.engine.recorder import Recorder
from sim.engine.request_columns import RequestColumns, needs_frame

if TYPE_CHECKING:  # pandas is imported by the recorder when it builds the frames, after the run
    import pandas as pd


class Result:
    """What a run produced: one row per request, a flat summary, optional iteration rows, one
    row per replica visit (request, replica, pool, reason it came, start_s, end_s, how it left),
    and one row per controller action (``sim.engine.actions``; empty without controllers).

    The frames (``requests``, ``steps``, ``visits``, ``actions``) are pandas DataFrames built
    when first read (a run that only needs its summary never imports pandas)."""

    def __init__(self, config: SimulationConfig, requests: Any, summary: dict[str, Any], steps: Any = None,
                 token_times: dict[int, list[float]] | None = None, visits: Any = None, actions: Any = None,
                 models: Any = None) -> None:
        self.config = config
        self.summary = summary
        self.token_times = token_times
        self.models = models
        self._frames = {"requests": requests, "steps": steps, "visits": visits, "actions": actions}

    def _frame(self, name: str) -> Any:
        value = self._frames[name]
        if callable(value):  # a builder: build once
            value = self._frames[name] = value()
        return value

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a sweep's worker process sends it back) with every frame built."""
        state = self.__dict__.copy()
        state["_frames"] = {name: self._frame(name) for name in self._frames}
        return state

    requests = property(lambda self: self._frame("requests"),
                        lambda self, v: self._frames.__setitem__("requests", v), doc="one row per request")
    steps = property(lambda self: self._frame("steps"), lambda self, v: self._frames.__setitem__("steps", v),
                     doc="one row per iteration (None unless recorded)")
    visits = property(lambda self: self._frame("visits"), lambda self, v: self._frames.__setitem__("visits", v),
                      doc="one row per replica visit")
    actions = property(lambda self: self._frame("actions"),
                       lambda self, v: self._frames.__setitem__("actions", v), doc="one row per controller action")


def simulate(config: SimulationConfig | dict | str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Result:
    """Run one simulation. ``config`` is a parsed config, a mapping, or a YAML file path."""
    if isinstance(config, (str, Path)):
        config = load_config(config, overrides)
    elif isinstance(config, dict):
        config = from_dict(config, overrides)
    elif overrides:
        raise TypeError("overrides apply to a mapping or a file, not a parsed config")
    wall_start = time.perf_counter()
    seeds = np.random.SeedSequence(config.seed)
    workload = config.workload.build()
    recorder = Recorder(config.output.record_steps or config.output.trace_events, config.output.record_token_times)
    cluster = Cluster(config, workload, recorder, seeds)
    cluster.run()
    cols = None
    if not needs_frame(cluster):
        cols = RequestColumns(recorder)
    if cols is None:
        df = recorder.requests_frame()
        _frontend_delay(cluster, df)
        if any(getattr(r, "speculator", None) is not None for r in cluster.replicas):
            df = speculation_columns(df, cluster.replicas)
        window, out_tokens = _run_window(df), None
    else:
        df = recorder.requests_frame  # built when Result.requests is first read
        if any(getattr(r, "speculator", None) is not None for r in cluster.replicas):
            df = partial(_with_speculation_columns, recorder, cluster.replicas)
        window, out_tokens = cols.window(), cols.finished_output_tokens()
    extra = dict(workload.describe())
    extra.update(_energy_and_cost(cluster, df, window, out_tokens))
    extra.update(cluster.transfer.summary())
    if cluster.frontends:  # what the replicas' serving front ends added (sim/engine/frontend.py)
        from sim.engine.frontend import frontend_summary

        extra.update(frontend_summary(cluster.frontends))
    if cols is None:
        extra.update(fairness_summary(df))  # fair_* keys, only with two or more clients
    elif cols.num_clients() >= 2:
        extra.update(fairness_summary(FairRows.of_columns(cols)))
    if cluster.models is not None:
        from sim.engine.serving_records import summary as serving_summary

        extra.update(serving_summary(cluster.models, df))
    if cols is None:
        summary = summarize(df, recorder.itl, config.slo, cluster.replicas, extra)
    else:
        summary = summarize_columns(cols, recorder.itl, config.slo, cluster.replicas, extra)
    summary.update(_error_band(config))
    if config.engine.max_time_s is not None:
        _cut_summary(cluster, summary)
    _lifecycle_summary(cluster, window, summary)
    summary["num_events"] = next(cluster.env._eid)  # events scheduled over the run
    summary["wall_s"] = time.perf_counter() - wall_start
    result = Result(config, df, summary, recorder.steps_frame,
                    recorder.token_times if config.output.record_token_times else None, recorder.visits_frame,
                    cluster.action_log.frame)
    result.models = cluster.models  # multi-model state (sim.engine.serving_records reads it); None otherwise
    return result


def _with_speculation_columns(recorder: Recorder, replicas: list) -> Any:
    """The requests frame with its per-request speculation columns (``speculation_columns``)."""
    return speculation_columns(recorder.requests_frame(), replicas)


def _frontend_delay(cluster: Cluster, df: pd.DataFrame) -> None:
    """Add each request's serving-frontend cost (tokenisation, detokenisation, HTTP: the cost
    model's ``request_overhead_s``, 0 unless a stack sets it) to its first-token and finish
    times, as a pure delay outside the engine (it does not occupy the replica; a closed-loop
    client's next request is still sent at the engine-side finish)."""
    delays = {rep.id: float(getattr(rep.cost_model, "request_overhead_s", 0.0) or 0.0) for rep in cluster.replicas}
    if not any(delays.values()) or len(df) == 0:
        return
    d = df["first_replica"].map(delays).fillna(0.0).to_numpy(dtype=float)
    started = df["first_token_s"].notna().to_numpy()
    d = np.where(started, d, 0.0)
    for col in ("first_token_s", "ttft_s", "finish_s", "e2e_s"):
        df[col] = df[col] + d


def _error_band(config: SimulationConfig) -> dict[str, Any]:
    """The held-out corpus error of the first pool's regime (device, TP, dtype, stack), from
    ``hardware/corpus/error_bands.json`` (``servesim calibrate``): how far to trust this run."""
    pool = config.cluster.pools[0]
    hw, cost = pool.hardware, pool.cost_model
    stack = getattr(cost.params, "stack", None) if cost.name == "analytic" else None
    band = None
    if stack:  # the corpus tooling (argparse, csv, the predictor) is imported only for a stack's run
        from hardware.fidelity import band_for

        band = band_for(hw.device, hw.tp, hw.weight_dtype, stack or cost.name)
    if band is None:
        return {"heldout_error_regime": "none (no held-out corpus points for this cost model)"}
    return {"heldout_error_regime": band["regime"], "heldout_error_median_abs": band["median_abs_error"],
            "heldout_error_within_20": band["within_20"], "heldout_error_n": band["n"]}


def _cut_summary(cluster: Cluster, summary: dict[str, Any]) -> None:
    """What a run with ``engine.max_time_s`` reports about its cut: ``truncated``, the requests
    that had not arrived, and the workload's count, so that completed + rejected + unfinished +
    not arrived = ``num_workload_requests`` (``num_requests`` counts the arrived ones)."""
    summary["truncated"] = bool(cluster.truncated)
    summary["num_not_arrived"] = int(cluster.num_not_arrived)
    summary["num_workload_requests"] = int(summary["num_requests"] + cluster.num_not_arrived)


def _run_window(df: pd.DataFrame) -> tuple[float, float] | None:
    """[first arrival, last finish] of a run: the span its replicas are billed within."""
    if len(df) == 0 or not df["finish_s"].notna().any():
        return None
    return float(df["arrival_s"].min()), float(np.nanmax(df["finish_s"].to_numpy()))


def _energy_and_cost(cluster: Cluster, df: Any, window: tuple[float, float] | None = None,
                     out_tokens: float | None = None) -> dict[str, Any]:
    """Energy (J), GPU-hours and dollars per pool from busy time per phase and the catalog's
    power and price (``hardware.energy``); an iteration with any prefill counts as prefill.

    Each replica is billed, and idles, only while alive: its lifetime [start_s, end_s or the
    run's end] inside the run's span. A pool whose replicas all lived the whole span is billed
    as before (span x replicas), so fixed clusters keep their figures bit for bit. ``window``
    and ``out_tokens`` (finished requests' output tokens) are read off the frame when not given."""
    from hardware.energy import energy_and_cost, summary_columns

    if window is None and not callable(df):  # the columns path passes a frame builder and its window
        window = _run_window(df)
    if window is None:
        return {}
    t0, t1 = window
    span = t1 - t0
    rows = []
    for pool in cluster.pools:
        prefill_s = sum(r.busy_prefill_s for r in pool.replicas)
        decode_s = sum(r.busy_decode_s for r in pool.replicas)
        lifetimes = [r.lifetime_s(t0, t1) for r in pool.replicas]
        if all(life == span for life in lifetimes):  # a fixed pool
            idle_s = max(span * len(pool.replicas) - prefill_s - decode_s, 0.0)
            rows.append(energy_and_cost(pool.cost_model, prefill_s, decode_s, idle_s, span, len(pool.replicas)))
            continue
        alive_s = math.fsum(lifetimes)
        idle_s = max(alive_s - prefill_s - decode_s, 0.0)
        rows.append(energy_and_cost(pool.cost_model, prefill_s, decode_s, idle_s, span, len(pool.replicas),
                                    replica_seconds=alive_s))
    total = summary_columns(rows)
    if out_tokens is None:
        out_tokens = float(df.loc[df["state"] == "finished", "num_output_tokens"].sum())
    per_m = 1e6 / out_tokens if out_tokens else float("nan")
    total["joules_per_m_output_tokens"] = total["energy_j"] * per_m
    total["usd_per_m_output_tokens"] = total["cost_usd"] * per_m
    return total


def _lifecycle_summary(cluster: Cluster, window: tuple[float, float] | None, summary: dict[str, Any]) -> None:
    """Add ``num_replicas_peak``, ``replica_seconds``, ``num_actions`` and ``num_invalid_actions``.
    When replicas came and went, ``num_gpus`` is the GPUs alive at the peak and the per-GPU
    and busy-fraction figures use it and the replicas' lifetimes."""
    log = cluster.action_log
    summary["num_replicas_peak"] = int(cluster.num_replicas_peak)
    summary["num_actions"] = int(log.num_applied)
    summary["num_invalid_actions"] = int(log.num_invalid)
    if window is None:
        summary["replica_seconds"] = 0.0
        return
    t0, t1 = window
    span = t1 - t0
    lifetimes = [r.lifetime_s(t0, t1) for r in cluster.replicas]
    if all(life == span for life in lifetimes):  # a fixed cluster: figures as they were
        summary["replica_seconds"] = span * len(lifetimes)
        return
    summary["replica_seconds"] = math.fsum(lifetimes)
    num_gpus = _peak_gpus(cluster.replicas, t0, t1)
    summary["num_gpus"] = num_gpus
    summary["goodput_rps_per_gpu"] = summary["goodput_rps"] / max(num_gpus, 1)
    busy = sum(r.busy_prefill_s + r.busy_decode_s for r in cluster.replicas)
    summary["gpu_busy_fraction"] = float(busy / summary["replica_seconds"]) if summary["replica_seconds"] else 0.0


def _peak_gpus(replicas: list[Any], t0: float, t1: float) -> int:
    """Most GPUs alive at once inside [t0, t1] (a replica's end frees its GPUs before a start at
    the same instant takes them)."""
    events = []
    for r in replicas:
        if r.lifetime_s(t0, t1) > 0:
            gpus = getattr(r.cost_model, "num_gpus", 1)
            events.append((max(r.start_s, t0), 1, gpus))
            events.append((t1 if r.end_s is None else min(r.end_s, t1), 0, -gpus))
    peak = alive = 0
    for _t, _order, delta in sorted(events):
        alive += delta
        peak = max(peak, alive)
    return int(peak)
