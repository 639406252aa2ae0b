"""The public Python API: ``simulate(config) -> Result``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.cluster import Cluster
from sim.config import SimulationConfig, from_dict, load_config
from sim.metrics import summarize
from sim.recorder import Recorder


@dataclass
class Result:
    """What a run produced: one row per request, a flat summary, optional iteration rows."""

    config: SimulationConfig
    requests: pd.DataFrame
    summary: dict[str, Any]
    steps: pd.DataFrame | None = None
    token_times: dict[int, list[float]] | None = None


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
    if config.output.record_token_times:
        _enable_token_times(cluster)
    cluster.run()
    df = recorder.requests_frame()
    extra = dict(workload.describe())
    extra.update(_energy_and_cost(cluster, df))
    summary = summarize(df, recorder.itl.values_and_weights(), config.slo, cluster.replicas, extra)
    summary["num_events"] = next(cluster.env._eid)  # events scheduled over the run
    summary["wall_s"] = time.perf_counter() - wall_start
    return Result(config, df, summary, recorder.steps_frame(),
                  recorder.token_times if config.output.record_token_times else None)


def _enable_token_times(cluster: Cluster) -> None:
    """Give every dispatched request a token-time list."""
    dispatch = cluster.dispatch

    def with_times(req):
        req.token_times = []
        dispatch(req)

    cluster.dispatch = with_times


def _energy_and_cost(cluster: Cluster, df: pd.DataFrame) -> dict[str, Any]:
    """Energy (J), GPU-hours and dollars from busy time per phase and catalog power/price."""
    if len(df) == 0:
        return {}
    span = float(np.nanmax(df["finish_s"].to_numpy()) - df["arrival_s"].min()) if df["finish_s"].notna().any() else 0.0
    energy_j = 0.0
    cost_usd = 0.0
    gpu_hours = 0.0
    for rep in cluster.replicas:
        cm = rep.cost_model
        gpus = getattr(cm, "num_gpus", 1)
        idle_s = max(span - rep.busy_prefill_s - rep.busy_decode_s, 0.0)
        energy_j += gpus * (cm.power_w("prefill") * rep.busy_prefill_s + cm.power_w("decode") * rep.busy_decode_s
                            + cm.power_w("idle") * idle_s)
        hours = gpus * span / 3600.0
        gpu_hours += hours
        cost_usd += hours * cm.price_per_gpu_hour()
    out_tokens = float(df.loc[df["state"] == "finished", "num_output_tokens"].sum())
    per_m = 1e6 / out_tokens if out_tokens else float("nan")
    return {"energy_j": energy_j, "gpu_hours": gpu_hours, "cost_usd": cost_usd,
            "joules_per_m_output_tokens": energy_j * per_m, "usd_per_m_output_tokens": cost_usd * per_m}
