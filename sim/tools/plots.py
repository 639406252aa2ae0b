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

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("latency", "goodput", "latency_goodput", "cdf", "timeseries", "pareto", "service")
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


def aggregate(table: pd.DataFrame, hue: str | None = None) -> pd.DataFrame:
    """Finished points averaged over seeds: one row per combination of swept values."""
    df = table[table["status"] == "ok"] if "status" in table.columns else table
    keys = [c for c in swept_columns(df) if c != hue]
    keys = ([hue] if hue else []) + keys
    if not keys:
        return df.copy()
    numeric = [c for c in df.columns if c not in keys and c not in ("point", "seed")
               and pd.api.types.is_numeric_dtype(df[c])]
    return df.groupby(keys, sort=True, dropna=False)[numeric].mean().reset_index()


def _series(table: pd.DataFrame, hue: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    """(label, rows) per value of ``hue`` (one unlabelled series without it)."""
    if hue is None:
        return [(None, table)]
    return [(str(value), rows) for value, rows in table.groupby(hue, sort=True, dropna=False)]


def _lines(ax: Any, table: pd.DataFrame, x: str, y: str, hue: str | None, style: str = "-",
           suffix: str = "", color_of: dict | None = None) -> None:
    colors = color_of if color_of is not None else {}
    for label, rows in _series(table, hue):
        rows = rows.sort_values(x)
        name = f"{label}{suffix}" if label is not None else (suffix.strip() or y)
        kwargs = {"color": colors[label]} if label in colors else {}
        line, = ax.plot(rows[x], rows[y], style, marker="o", markersize=3, label=name, **kwargs)
        colors.setdefault(label, line.get_color())


def _label(col: str) -> str:
    names = {"request_rate_rps": "served request rate (req/s)", "offered_rps": "request rate (req/s)",
             "goodput_rps": "goodput (req/s)", "slo_attainment": "SLO attainment", "completed_rps": "completed (req/s)"}
    return names.get(col, col)


def _prepare(table: pd.DataFrame, hue: str | None, x: str | None = None) -> tuple[pd.DataFrame, str | None, str]:
    hue = hue if hue is not None else guess_hue(table)
    if x is None:
        x = "offered_rps" if "offered_rps" in table.columns else "request_rate_rps"
    return aggregate(table, hue), hue, x


# ---------------------------------------------------------------------------- sweep plots


def plot_latency(table: pd.DataFrame, x: str | None = None, hue: str | None = None,
                 metrics: tuple[str, ...] = ("ttft", "tpot", "e2e"), quantiles: tuple[int, ...] = (50, 99)) -> Any:
    """TTFT, TPOT and E2E percentiles (p50 dashed, p99 solid) against request rate, per policy."""
    plt = _pyplot()
    agg, hue, x = _prepare(table, hue, x)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    colors: dict = {}
    for ax, m in zip(axes[0], metrics, strict=True):
        for q in quantiles:
            col = f"{m}_p{q}_s"
            if col in agg.columns:
                _lines(ax, agg, x, col, hue, "-" if q == max(quantiles) else "--", f" p{q}", colors)
        ax.set_title(f"{LATENCIES.get(m, m)} (s)")
        ax.set_xlabel(_label(x))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_goodput(table: pd.DataFrame, x: str | None = None, hue: str | None = None) -> Any:
    """Goodput and SLO attainment against request rate, per policy."""
    plt = _pyplot()
    agg, hue, x = _prepare(table, hue, x)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    colors: dict = {}
    for ax, col in zip(axes, ("goodput_rps", "slo_attainment"), strict=True):
        _lines(ax, agg, x, col, hue, color_of=colors)
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(col))
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_latency_goodput(table: pd.DataFrame, x: str | None = None, hue: str | None = None) -> Any:
    """The four headline curves: TTFT and TPOT (p50, p99), goodput and SLO attainment vs rate."""
    plt = _pyplot()
    agg, hue, x = _prepare(table, hue, x)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4))
    colors: dict = {}
    for ax, m in zip(axes[0], ("ttft", "tpot"), strict=True):
        _lines(ax, agg, x, f"{m}_p99_s", hue, "-", " p99", colors)
        _lines(ax, agg, x, f"{m}_p50_s", hue, "--", " p50", colors)
        ax.set_ylabel(f"{LATENCIES[m]} (s)")
    _lines(axes[1][0], agg, x, "goodput_rps", hue, color_of=colors)
    axes[1][0].set_ylabel(_label("goodput_rps"))
    _lines(axes[1][1], agg, x, "slo_attainment", hue, color_of=colors)
    axes[1][1].set_ylabel(_label("slo_attainment"))
    axes[1][1].set_ylim(-0.02, 1.02)
    for ax in axes.flat:
        ax.set_xlabel(_label(x))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
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


def plot_pareto(table: pd.DataFrame, goodput: str = "goodput_rps", hue: str | None = None) -> Any:
    """Cost ($/h, else GPUs) against goodput, one marker per point, with the Pareto front."""
    plt = _pyplot()
    agg, hue, _ = _prepare(table, hue)
    cost = cost_per_hour(agg)
    xlabel = "cost ($/h)"
    if cost is None:
        cost = agg["num_gpus"].astype(float) if "num_gpus" in agg.columns else pd.Series(np.ones(len(agg)))
        xlabel = "GPUs"
    agg = agg.assign(_cost=cost.to_numpy())
    fig, ax = plt.subplots(figsize=(5.2, 4))
    for label, rows in _series(agg, hue):
        ax.scatter(rows["_cost"], rows[goodput], s=18, label=label)
    valid = agg[np.isfinite(agg["_cost"]) & np.isfinite(agg[goodput])]
    if len(valid):
        front = valid.iloc[pareto_front(valid["_cost"].to_numpy(), valid[goodput].to_numpy())]
        ax.step(front["_cost"], front[goodput], where="post", color="black", lw=1, label="Pareto front")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_label(goodput))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- run plots


def plot_cdf(requests: pd.DataFrame | dict[str, pd.DataFrame],
             metrics: tuple[str, ...] = ("ttft_s", "tpot_s", "e2e_s")) -> Any:
    """Empirical CDFs of per-request latencies, one line per run (finished requests only)."""
    plt = _pyplot()
    frames = requests if isinstance(requests, dict) else {"run": requests}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, col in zip(axes[0], metrics, strict=True):
        for label, df in frames.items():
            done = df[df["state"] == "finished"] if "state" in df.columns else df
            vals = np.sort(done[col].dropna().to_numpy())
            if len(vals):
                ax.plot(vals, np.arange(1, len(vals) + 1) / len(vals), label=label)
        ax.set_xlabel(f"{LATENCIES.get(col.removesuffix('_s'), col)} (s)")
        ax.set_ylabel("share of requests")
        ax.grid(alpha=0.3)
    if len(frames) > 1:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_timeseries(steps: pd.DataFrame, metrics: tuple[str, ...] = ("num_waiting", "batch_size", "kv_blocks_used"),
                    num_bins: int = 400) -> Any:
    """Queue length, batch size and KV blocks in use over time, one line per replica (binned means)."""
    plt = _pyplot()
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
    return fig


def plot_service(requests: pd.DataFrame | dict[str, pd.DataFrame], num_points: int = 200,
                 max_clients: int = 12) -> Any:
    """Accumulated weighted service (w_p x input + w_q x output tokens, sim/engine/fairness.py)
    per client over time, one panel per run; at most ``max_clients`` clients (the busiest)."""
    from sim.engine.fairness import service_over_time

    plt = _pyplot()
    frames = requests if isinstance(requests, dict) else {"run": requests}
    fig, axes = plt.subplots(1, len(frames), figsize=(5.0 * len(frames), 3.6), squeeze=False, sharey=True)
    for ax, (label, df) in zip(axes[0], frames.items(), strict=True):
        t1 = float(np.nanmax(df["finish_s"].to_numpy())) if df["finish_s"].notna().any() else 1.0
        acc = service_over_time(df, np.linspace(0.0, t1, num_points))
        for col in acc.iloc[-1].sort_values(ascending=False).index[:max_clients]:
            ax.plot(acc.index, acc[col], lw=1, label=str(col))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accumulated service (weighted tokens)")
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- CLI


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim plot``."""
    p = sub.add_parser("plot", help="draw a figure from result tables")
    p.add_argument("tables", nargs="+", metavar="TABLE",
                   help="sweep table or folder (latency, goodput, latency_goodput, pareto); run folders or "
                        "requests tables (cdf); a run folder or steps table (timeseries)")
    p.add_argument("--kind", choices=KINDS, required=True, help="which figure")
    p.add_argument("--out", required=True, help="image file: .png, .svg or .pdf")
    p.add_argument("--x", default=None, help="x column of sweep plots (default offered_rps)")
    p.add_argument("--hue", default=None, help="column telling policies apart (default: first text swept column)")
    p.add_argument("--title", default=None, help="figure title")
    p.set_defaults(handler=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    """Handler of ``servesim plot``."""
    import matplotlib

    matplotlib.use("Agg")
    from sim.errors import ServesimError

    try:
        if args.kind == "cdf":
            frames = {_run_label(t): read_table(t, "requests") for t in args.tables}
            fig = plot_cdf(frames)
        elif args.kind == "timeseries":
            fig = plot_timeseries(read_table(args.tables[0], "steps"))
        elif args.kind == "service":
            frames = {_run_label(t): read_table(t, "requests") for t in args.tables}
            fig = plot_service(frames)
        else:
            table = pd.concat([read_table(t) for t in args.tables], ignore_index=True)
            draw = {"latency": plot_latency, "goodput": plot_goodput, "latency_goodput": plot_latency_goodput}
            fig = plot_pareto(table, hue=args.hue) if args.kind == "pareto" else \
                draw[args.kind](table, x=args.x, hue=args.hue)
    except (FileNotFoundError, KeyError) as exc:
        raise ServesimError(f"plot {args.kind}: {exc}") from None
    if args.title:
        fig.suptitle(args.title)
        fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    print(f"servesim plot --kind {args.kind} -> {out}")
    return 0


def _run_label(path: str) -> str:
    p = Path(path)
    return p.name if p.is_dir() else p.parent.name or p.stem
