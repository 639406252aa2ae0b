"""The public Python API: ``simulate(config) -> Result``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import SimulationConfig, from_dict, load_config
from sim.engine.cluster import Cluster
from sim.engine.metrics import summarize
from sim.engine.recorder import Recorder


@dataclass
class Result:
    """What a run produced: one row per request, a flat summary, optional iteration rows, one
    row per replica visit (request, replica, pool, reason it came, start_s, end_s, how it left)."""

    config: SimulationConfig
    requests: pd.DataFrame
    summary: dict[str, Any]
    steps: pd.DataFrame | None = None
    token_times: dict[int, list[float]] | None = None
    visits: pd.DataFrame | None = None


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
    recorder = Recorder(config.output.record_steps, config.output.record_token_times)
    cluster = Cluster(config, workload, recorder, seeds)
    cluster.run()
    df = recorder.requests_frame()
    extra = dict(workload.describe())
    extra.update(_energy_and_cost(cluster, df))
    extra.update(cluster.transfer.summary())
    summary = summarize(df, recorder.itl, config.slo, cluster.replicas, extra)
    summary["num_events"] = next(cluster.env._eid)  # events scheduled over the run
    summary["wall_s"] = time.perf_counter() - wall_start
    return Result(config, df, summary, recorder.steps_frame(),
                  recorder.token_times if config.output.record_token_times else None, recorder.visits_frame())


def _energy_and_cost(cluster: Cluster, df: pd.DataFrame) -> dict[str, Any]:
    """Energy (J), GPU-hours and dollars per pool from busy time per phase and the catalog's
    power and price (``hardware.energy``); an iteration with any prefill counts as prefill."""
    from hardware.energy import energy_and_cost, summary_columns

    if len(df) == 0 or not df["finish_s"].notna().any():
        return {}
    span = float(np.nanmax(df["finish_s"].to_numpy()) - df["arrival_s"].min())
    rows = []
    for pool in cluster.pools:
        prefill_s = sum(r.busy_prefill_s for r in pool.replicas)
        decode_s = sum(r.busy_decode_s for r in pool.replicas)
        idle_s = max(span * len(pool.replicas) - prefill_s - decode_s, 0.0)
        rows.append(energy_and_cost(pool.cost_model, prefill_s, decode_s, idle_s, span, len(pool.replicas)))
    total = summary_columns(rows)
    out_tokens = float(df.loc[df["state"] == "finished", "num_output_tokens"].sum())
    per_m = 1e6 / out_tokens if out_tokens else float("nan")
    total["joules_per_m_output_tokens"] = total["energy_j"] * per_m
    total["usd_per_m_output_tokens"] = total["cost_usd"] * per_m
    return total
