"""Energy and money of a run from busy time per phase, idle time, catalog power and price.

Energy counts every GPU of every replica: ``num_gpus x (P_prefill x busy_prefill +
P_decode x busy_decode + P_idle x idle)``, idle being the time a replica is alive and not
busy. GPU-hours bill each replica's whole lifetime whether busy or not (the way clouds
charge): the wall span for a fixed cluster, ``replica_seconds`` when replicas come and go.
Power figures are Splitwise's per-phase averages (``hardware.devices``); an iteration
mixing prefill and decode is the engine's to classify.
"""

from __future__ import annotations

from typing import Any


def energy_and_cost(
    cost_model: Any,
    busy_prefill_s: float,
    busy_decode_s: float,
    idle_s: float,
    wall_span_s: float,
    num_replicas: int = 1,
    num_output_tokens: int = 0,
    replica_seconds: float | None = None,
) -> dict[str, float]:
    """Joules, GPU-hours and dollars of ``num_replicas`` replicas sharing ``cost_model``.

    Busy and idle seconds are summed over those replicas (replica-seconds); ``wall_span_s``
    is the run's simulated duration; ``replica_seconds`` (default ``wall_span_s x num_replicas``)
    the seconds those replicas were alive, which GPU-hours bill. Returns flat keys: ``energy_j``, ``energy_kwh``,
    ``gpu_hours``, ``cost_usd``, and with output tokens ``energy_j_per_mtok`` and
    ``cost_usd_per_mtok`` (per million output tokens).
    """
    num_gpus = getattr(cost_model, "num_gpus", 1) * num_replicas
    per_gpu_j = (cost_model.power_w("prefill") * busy_prefill_s
                 + cost_model.power_w("decode") * busy_decode_s
                 + cost_model.power_w("idle") * idle_s)
    energy_j = per_gpu_j * getattr(cost_model, "num_gpus", 1)
    if replica_seconds is None:
        gpu_hours = num_gpus * wall_span_s / 3600.0
    else:
        gpu_hours = getattr(cost_model, "num_gpus", 1) * replica_seconds / 3600.0
    cost_usd = gpu_hours * cost_model.price_per_gpu_hour()
    out = {"energy_j": energy_j, "energy_kwh": energy_j / 3.6e6, "gpu_hours": gpu_hours, "cost_usd": cost_usd}
    if num_output_tokens > 0:
        out["energy_j_per_mtok"] = energy_j / num_output_tokens * 1e6
        out["cost_usd_per_mtok"] = cost_usd / num_output_tokens * 1e6
    return out


def summary_columns(rows: list[dict[str, float]]) -> dict[str, float]:
    """Sum the additive keys of several ``energy_and_cost`` results (one per pool)."""
    total = {"energy_j": 0.0, "energy_kwh": 0.0, "gpu_hours": 0.0, "cost_usd": 0.0}
    for row in rows:
        for key in total:
            total[key] += row.get(key, 0.0)
    return total
