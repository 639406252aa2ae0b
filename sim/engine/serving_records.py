"""What a multi-model run reports: cold starts, switches, weight memory and host-link use.

- cold start of a request = arrival until a replica could run its model (0 when one ran it
  already); ``cold_start_*`` summarise the requests that had one, ``cold_start_fraction`` how
  many did;
- ``serving_num_switches`` / ``serving_num_loads`` / ``serving_load_gb``: model switches,
  those that loaded weights, the bytes loaded;
- ``serving_hbm_weights_gb_peak``: most weight bytes resident in HBM at once, all replicas
  (``serving_hbm_gb_peak_by_model`` per model); ``serving_grace_gb_per_chip``: the models
  staged in each chip's host tier (streaming pools; ``serving_grace_gb_by_model`` per model);
- ``c2c_utilisation``: bytes moved over the chips' host links (streams, loads, background
  copies) / (their bandwidth x chips x span); ``link_frame`` / ``utilisation_series`` give it
  over time and ``memory_frame`` the HBM weights per replica and model over time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from sim.engine.multimodel import ModelHub

LINK_KINDS = ("stream", "load", "copy")


def link_frame(hub: ModelHub) -> pd.DataFrame:
    """One row per use of a chip's link: chip, kind (stream / load / copy), start_s, end_s, bytes."""
    import pandas as pd

    hub.settle_links()
    kinds = np.frombuffer(hub._l_kind, dtype=np.int8).copy()
    return pd.DataFrame({
        "chip": np.frombuffer(hub._l_chip, dtype=np.int64).copy(),
        "kind": pd.Categorical.from_codes(kinds, LINK_KINDS),
        "start_s": np.frombuffer(hub._l_start, dtype=np.float64).copy(),
        "end_s": np.frombuffer(hub._l_end, dtype=np.float64).copy(),
        "bytes": np.frombuffer(hub._l_bytes, dtype=np.float64).copy(),
    })


def memory_frame(hub: ModelHub) -> pd.DataFrame:
    """One row per change of a replica's HBM weights: time_s, replica, model, bytes (now)."""
    import pandas as pd

    return pd.DataFrame({
        "time_s": np.frombuffer(hub._m_time, dtype=np.float64).copy(),
        "replica": np.frombuffer(hub._m_rep, dtype=np.int64).copy(),
        "model": hub._m_model,
        "bytes": np.frombuffer(hub._m_bytes, dtype=np.float64).copy(),
    })


def utilisation_series(links: pd.DataFrame, bytes_per_s: float, bin_s: float, t0: float, t1: float,
                       chips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(bin starts, busy share) of ``chips`` links: each use's bytes spread evenly over its span."""
    edges = np.arange(t0, t1 + bin_s, bin_s)
    moved = np.zeros(len(edges) - 1)
    for s, e, b in zip(links["start_s"], links["end_s"], links["bytes"], strict=True):
        if e <= s:
            continue
        lo = np.clip(edges[:-1], s, e)
        hi = np.clip(edges[1:], s, e)
        moved += b * (hi - lo) / (e - s)
    return edges[:-1], moved / (bytes_per_s * bin_s * max(chips, 1))


def _peak_hbm(mem: pd.DataFrame) -> float:
    current: dict[tuple[int, str], float] = {}
    total = peak = 0.0
    for rep, model, b in zip(mem["replica"], mem["model"], mem["bytes"], strict=True):
        total += b - current.get((rep, model), 0.0)
        current[(rep, model)] = b
        peak = max(peak, total)
    return peak


def hbm_peak_by_model(mem: pd.DataFrame) -> dict[str, float]:
    """Per model: the most HBM its weights held at once over all replicas, bytes."""
    current: dict[tuple[int, str], float] = {}
    total: dict[str, float] = {}
    peak: dict[str, float] = {}
    for rep, model, b in zip(mem["replica"], mem["model"], mem["bytes"], strict=True):
        total[model] = total.get(model, 0.0) + b - current.get((rep, model), 0.0)
        current[(rep, model)] = b
        peak[model] = max(peak.get(model, 0.0), total[model])
    return peak


def summary(hub: ModelHub, df: pd.DataFrame) -> dict[str, Any]:
    """The flat summary keys of a multi-model run."""
    out: dict[str, Any] = {}
    cold = df["cold_start_s"].to_numpy()
    had = cold[cold > 0]
    out["cold_start_fraction"] = float(len(had) / len(cold)) if len(cold) else 0.0
    for key, fn in (("mean", np.mean), ("p50", lambda v: np.percentile(v, 50)),
                    ("p90", lambda v: np.percentile(v, 90)), ("p99", lambda v: np.percentile(v, 99))):
        out[f"cold_start_{key}_s"] = float(fn(had)) if len(had) else 0.0
    out["cold_start_max_s"] = float(had.max()) if len(had) else 0.0
    out["serving_num_switches"] = int(hub.num_switches)
    out["serving_num_loads"] = int(hub.num_loads)
    out["serving_load_gb"] = float(hub.load_bytes / 1e9)
    mem = memory_frame(hub)
    out["serving_hbm_weights_gb_peak"] = _peak_hbm(mem) / 1e9
    out["serving_hbm_gb_peak_by_model"] = {m: b / 1e9 for m, b in sorted(hbm_peak_by_model(mem).items())}
    grace = [sum(pm.weight_bytes.values()) for pm in hub.pools.values() if pm.params.stream]
    out["serving_grace_gb_by_model"] = {m: b / 1e9 for pm in hub.pools.values() if pm.params.stream
                                        for m, b in sorted(pm.weight_bytes.items())}
    out["serving_grace_gb_per_chip"] = float(max(grace) / 1e9) if grace else 0.0
    links = link_frame(hub)
    finished = df["finish_s"].to_numpy()
    if len(links) and hub.chips and np.isfinite(finished).any():
        span = float(np.nanmax(finished) - df["arrival_s"].min())
        bw = next(iter(hub.chips.values())).host.bytes_per_s
        host = links[links["kind"] != "load"]["bytes"].sum() if any(
            c.load is not c.host for c in hub.chips.values()) else links["bytes"].sum()
        out["c2c_utilisation"] = float(host / (bw * len(hub.chips) * span)) if span > 0 else 0.0
    else:
        out["c2c_utilisation"] = 0.0
    return out
