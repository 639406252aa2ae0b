"""Plots drawn from result tables only (matplotlib); the same functions serve CLI and notebooks.

Inputs are frames, never simulator objects:

- a sweep's combined table (``results.parquet``): one row per point, swept columns between
  ``point`` and ``seed``; rows of the same swept values are averaged over seeds;
- a run's ``requests`` frame (CDFs) or ``steps`` frame (time series, needs
  ``output.record_steps: true``).

::

    from sim.tools.plots import plot_latency_goodput, read_table
    fig = plot_latency_goodput(read_table("runs/smoke"))
    fig.savefig("latency_goodput.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.tools import plot_style as style_

KINDS = ("latency", "goodput", "latency_goodput", "cdf", "timeseries", "pareto")
LATENCIES = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- tables


def read_table(path: str | Path, kind: str = "results") -> pd.DataFrame:
    """Read a table: a file, or from a folder its ``results`` / ``requests`` / ``steps`` table."""
    from sim.tools.output import read_frame

    path = Path(path)
    if path.is_dir():
        for suffix in (".parquet", ".csv"):
            if (path / (kind + suffix)).is_file():
                return read_frame(path / (kind + suffix))
        raise FileNotFoundError(f"no {kind}.parquet or {kind}.csv in {path}")
    return read_frame(path)


def swept_columns(table: pd.DataFrame) -> list[str]:
    """The swept columns of a sweep table: those between ``point`` and ``seed``."""
    cols = list(table.columns)
    if "point" not in cols or "seed" not in cols:
        return []
    return cols[cols.index("point") + 1:cols.index("seed")]


def guess_hue(table: pd.DataFrame) -> str | None:
    """The column telling policies apart: the first swept column that is not numeric."""
    for col in swept_columns(table):
        if not pd.api.types.is_numeric_dtype(table[col]):
            return col
    return None


CI_SUFFIX = "__ci95"  # column of the 95% confidence half-width over seeds, beside each mean


def aggregate(table: pd.DataFrame, hue: str | None = None) -> pd.DataFrame:
    """Finished points averaged over seeds: one row per combination of swept values, with the
    95% confidence half-width of each mean (1.96 standard errors; NaN with one seed) in
    ``<column>__ci95``."""
    df = table[table["status"] == "ok"] if "status" in table.columns else table
    keys = [c for c in swept_columns(df) if c != hue]
    keys = ([hue] if hue else []) + keys
    if not keys:
        return df.copy()
    numeric = [c for c in df.columns if c not in keys and c not in ("point", "seed")
               and pd.api.types.is_numeric_dtype(df[c])]
    groups = df.groupby(keys, sort=True, dropna=False)[numeric]
    mean = groups.mean()
    half = (1.96 * groups.sem()).add_suffix(CI_SUFFIX)
    return pd.concat([mean, half], axis=1).reset_index()


def _series(table: pd.DataFrame, hue: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    """(label, rows) per value of ``hue`` (one unlabelled series without it)."""
    if hue is None:
        return [(None, table)]
    return [(str(value), rows) for value, rows in table.groupby(hue, sort=True, dropna=False)]


def _lines(ax: Any, table: pd.DataFrame, x: str, y: str, hue: str | None, style: str = "-",
           suffix: str = "") -> None:
    """One line per policy (its fixed colour), with a 95% band over seeds where there are several."""
    if y not in table.columns:
        return
    for label, rows in _series(table, hue):
        rows = rows.sort_values(x)
        name = f"{label}{suffix}" if label is not None else (suffix.strip() or y)
        line_color = style_.color(label if label is not None else y)
        ax.plot(rows[x], rows[y], style, marker="o", markersize=3, label=name, color=line_color)
        style_.band(ax, rows[x], rows[y], rows.get(y + CI_SUFFIX), line_color)


def _label(col: str) -> str:
    names = {"request_rate_rps": "served request rate (req/s)", "offered_rps": "request rate (req/s)",
             "goodput_rps": "goodput (req/s)", "slo_attainment": "SLO attainment", "completed_rps": "completed (req/s)"}
    return names.get(col, col)


def _prepare(table: pd.DataFrame, hue: str | None, x: str | None = None,
             need_x: bool = True) -> tuple[pd.DataFrame, str | None, str]:
    if not len(table):
        raise ValueError("the table has no rows")
    if "point" not in table.columns:
        raise ValueError("this figure needs a sweep table (servesim sweep ... writes results.parquet); "
                         "for one run use --kind cdf or timeseries")
    hue = hue if hue is not None else guess_hue(table)
    if hue is not None and hue not in table.columns:
        raise ValueError(f"no column {hue!r} to tell policies apart (columns: {', '.join(swept_columns(table))})")
    if x is None:
        x = "offered_rps" if "offered_rps" in table.columns else "request_rate_rps"
    if need_x and x not in table.columns:
        raise ValueError(f"no column {x!r} for the x axis")
    return aggregate(table, hue), hue, x


def _slo(slo: dict[str, float] | None, metric: str) -> float | None:
    return (slo or {}).get(f"{metric}_s")


# ---------------------------------------------------------------------------- sweep plots


def _latency_axis(ax: Any, agg: pd.DataFrame, x: str, hue: str | None, metric: str,
                  quantiles: tuple[int, ...], slo: dict[str, float] | None) -> None:
    cols = [f"{metric}_p{q}_s" for q in quantiles if f"{metric}_p{q}_s" in agg.columns]
    for q in quantiles:
        _lines(ax, agg, x, f"{metric}_p{q}_s", hue, style_.percentile_style(q), f" p{q}")
    style_.slo_line(ax, _slo(slo, metric), f"{LATENCIES.get(metric, metric)} SLO")
    if cols:
        style_.maybe_log(ax, agg[cols].to_numpy().ravel())
    ax.set_ylabel(f"{LATENCIES.get(metric, metric)} (s)")
    ax.set_xlabel(_label(x))
    ax.grid(alpha=0.3, which="both")


def plot_latency(table: pd.DataFrame, x: str | None = None, hue: str | None = None,
                 metrics: tuple[str, ...] = ("ttft", "tpot", "e2e"), quantiles: tuple[int, ...] = (50, 99),
                 slo: dict[str, float] | None = None, caption: str = "") -> Any:
    """TTFT, TPOT and E2E percentiles (p50 dashed, p99 solid) against request rate, per policy,
    with the SLO lines and 95% bands over seeds."""
    plt = _pyplot()
    agg, hue, x = _prepare(table, hue, x)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        _latency_axis(ax, agg, x, hue, m, quantiles, slo)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    style_.add_caption(fig, caption)
    return fig


def _goodput_axes(ax_good: Any, ax_att: Any, agg: pd.DataFrame, x: str, hue: str | None,
                  attainment: float | None) -> None:
    steady = "goodput_steady_rps" in agg.columns and agg["goodput_steady_rps"].notna().any()
    _lines(ax_good, agg, x, "goodput_steady_rps" if steady else "goodput_rps", hue)
    ax_good.set_ylabel("goodput, steady window (req/s)" if steady else _label("goodput_rps"))
    if x in ("offered_rps", "offered_steady_rps"):
        lo, hi = float(np.nanmin(agg[x].to_numpy())), float(np.nanmax(agg[x].to_numpy()))
        ax_good.plot([lo, hi], [lo, hi], color="black", lw=0.6, alpha=0.4, label="goodput = offered")
    att = "slo_attainment_steady" if steady and "slo_attainment_steady" in agg.columns else "slo_attainment"
    _lines(ax_att, agg, x, att, hue)
    ax_att.set_ylabel("SLO attainment" + (", steady window" if att.endswith("steady") else ""))
    style_.slo_line(ax_att, attainment, f"target {100 * attainment:g}%" if attainment else "")
    ax_att.set_ylim(-0.02, 1.02)
    for ax in (ax_good, ax_att):
        ax.set_xlabel(_label(x))
        ax.grid(alpha=0.3)


def plot_goodput(table: pd.DataFrame, x: str | None = None, hue: str | None = None,
                 attainment: float | None = 0.9, caption: str = "") -> Any:
    """Goodput and SLO attainment against request rate, per policy (steady window when the
    table has it), with the attainment target and 95% bands over seeds."""
    plt = _pyplot()
    agg, hue, x = _prepare(table, hue, x)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    _goodput_axes(axes[0], axes[1], agg, x, hue, attainment)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    style_.add_caption(fig, caption)
    return fig


def plot_latency_goodput(table: pd.DataFrame, x: str | None = None, hue: str | None = None,
                         slo: dict[str, float] | None = None, attainment: float | None = 0.9,
                         caption: str = "") -> Any:
    """The four headline curves: TTFT and TPOT (p50 dashed, p99 solid) with their SLO lines,
    goodput and SLO attainment (steady window) with the target, against request rate."""
    plt = _pyplot()
    agg, hue, x = _prepare(table, hue, x)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.8))
    for ax, m in zip(axes[0], ("ttft", "tpot"), strict=True):
        _latency_axis(ax, agg, x, hue, m, (50, 99), slo)
    _goodput_axes(axes[1][0], axes[1][1], agg, x, hue, attainment)
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    style_.add_caption(fig, caption)
    return fig


def cost_per_hour(table: pd.DataFrame) -> pd.Series | None:
    """Dollars per hour of each row (cost_usd over the simulated span), or None without prices."""
    if "cost_usd" not in table.columns or "simulated_duration_s" not in table.columns:
        return None
    hours = table["simulated_duration_s"] / 3600.0
    cost = table["cost_usd"] / hours.where(hours > 0)
    return cost if (cost.fillna(0) > 0).any() else None


def pareto_front(cost: np.ndarray, goodput: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both lower cost and higher goodput."""
    cost, goodput = np.asarray(cost, dtype=float), np.asarray(goodput, dtype=float)
    order = np.lexsort((-goodput, cost))
    front, best = [], -np.inf
    for i in order:
        if goodput[i] > best:
            front.append(i)
            best = goodput[i]
    return np.asarray(front, dtype=int)


def plot_pareto(table: pd.DataFrame, goodput: str = "goodput_rps", hue: str | None = None, caption: str = "") -> Any:
    """Cost ($/h, else GPUs) against goodput, one marker per point, with the Pareto front."""
    plt = _pyplot()
    agg, hue, _ = _prepare(table, hue, need_x=False)
    cost = cost_per_hour(agg)
    xlabel = "cost ($/h)"
    if cost is None:
        cost = agg["num_gpus"].astype(float) if "num_gpus" in agg.columns else pd.Series(np.ones(len(agg)))
        xlabel = "GPUs"
    agg = agg.assign(_cost=cost.to_numpy())
    finite = agg["_cost"][np.isfinite(agg["_cost"])]
    if finite.nunique() < 2:
        raise ValueError(f"pareto needs points of different cost ({xlabel} is the same at every point): "
                         "sweep the replica count, the GPU or the price")
    fig, ax = plt.subplots(figsize=(5.2, 4))
    for label, rows in _series(agg, hue):
        ax.scatter(rows["_cost"], rows[goodput], s=18, label=label if label is not None else "points",
                   color=style_.color(label if label is not None else "points"))
    valid = agg[np.isfinite(agg["_cost"]) & np.isfinite(agg[goodput])]
    if len(valid):
        front = valid.iloc[pareto_front(valid["_cost"].to_numpy(), valid[goodput].to_numpy())]
        ax.step(front["_cost"], front[goodput], where="post", color="black", lw=1, label="Pareto front")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_label(goodput))
    ax.margins(0.08)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    style_.add_caption(fig, caption)
    return fig


# ---------------------------------------------------------------------------- run plots


def plot_cdf(requests: pd.DataFrame | dict[str, pd.DataFrame],
             metrics: tuple[str, ...] = ("ttft_s", "tpot_s", "e2e_s"),
             slo: dict[str, float] | None = None, caption: str = "") -> Any:
    """Empirical CDFs of per-request latencies, one line per run (finished requests only), with
    the SLO as a vertical line; log x where a latency spans decades."""
    plt = _pyplot()
    frames = requests if isinstance(requests, dict) else {"run": requests}
    for label, df in frames.items():
        missing = [c for c in metrics if c not in df.columns]
        if missing:
            raise ValueError(f"cdf needs per-request rows (requests.parquet of a run folder); {label} has no "
                             f"{', '.join(missing)}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, col in zip(axes[0], metrics, strict=True):
        every = []
        for label, df in frames.items():
            done = df[df["state"] == "finished"] if "state" in df.columns else df
            vals = np.sort(done[col].dropna().to_numpy())
            if len(vals):
                ax.plot(vals, np.arange(1, len(vals) + 1) / len(vals), label=label, color=style_.color(label))
                every.append(vals)
        limit = (slo or {}).get(col)
        if limit is not None:
            ax.axvline(limit, **style_.SLO_STYLE)
        if every:
            pooled = np.concatenate(every)
            pooled = pooled[pooled > 0]
            if len(pooled) > 1 and pooled.max() / pooled.min() > style_.LOG_SPAN:
                ax.set_xscale("log")
        ax.set_xlabel(f"{LATENCIES.get(col.removesuffix('_s'), col)} (s)")
        ax.set_ylabel("share of requests")
        ax.grid(alpha=0.3, which="both")
    if len(frames) > 1:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    style_.add_caption(fig, caption)
    return fig


def plot_timeseries(steps: pd.DataFrame, metrics: tuple[str, ...] = ("num_waiting", "batch_size", "kv_blocks_used"),
                    num_bins: int = 400, caption: str = "") -> Any:
    """Queue length, batch size and KV blocks in use over time, one line per replica (binned means)."""
    plt = _pyplot()
    missing = [c for c in ("replica", "start_s", *metrics) if c not in steps.columns]
    if missing or not len(steps):
        raise ValueError("timeseries needs the iteration rows of a run recorded with output.record_steps: true "
                         f"(steps.parquet){'; missing ' + ', '.join(missing) if missing else ''}")
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 2.2 * len(metrics)), sharex=True, squeeze=False)
    t0, t1 = float(steps["start_s"].min()), float(steps["start_s"].max())
    edges = np.linspace(t0, t1 if t1 > t0 else t0 + 1.0, num_bins + 1)
    for replica, rows in steps.groupby("replica", sort=True):
        idx = np.clip(np.searchsorted(edges, rows["start_s"].to_numpy(), side="right") - 1, 0, num_bins - 1)
        for ax, col in zip(axes[:, 0], metrics, strict=True):
            sums = np.bincount(idx, weights=rows[col].to_numpy(dtype=float), minlength=num_bins)
            counts = np.bincount(idx, minlength=num_bins)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = sums / counts
            ax.plot((edges[:-1] + edges[1:]) / 2, mean, lw=1, label=f"replica {replica}")
    for ax, col in zip(axes[:, 0], metrics, strict=True):
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("time (s)")
    axes[0][0].legend(fontsize=7, ncol=4)
    fig.tight_layout()
    style_.add_caption(fig, caption)
    return fig
