"""One look for every figure: a colour per policy, a line style per percentile, SLO lines,
confidence bands over seeds, log axes where latency spans decades, and captions that state
model, GPU, trace and SLO.

Colours are fixed per policy name across figures (known policies have their own; any other
label gets a palette colour from a stable hash of its name), so vllm_v1 is the same blue in
every figure of a paper draft.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")
# policies compared most often keep one colour everywhere
POLICY_COLORS = {"vllm": "#7f7f7f", "vllm_v1": "#1f77b4", "sarathi": "#d62728", "orca": "#8c564b",
                 "splitfuse": "#9467bd", "distserve": "#2ca02c", "splitwise": "#ff7f0e", "pecsched": "#e377c2",
                 "fcfs": "#7f7f7f", "round_robin": "#7f7f7f", "least_outstanding": "#1f77b4"}
PERCENTILE_STYLES = {50: "--", 90: "-.", 95: ":", 99: "-"}
SLO_STYLE = {"color": "black", "lw": 0.9, "ls": ":", "alpha": 0.8}
LOG_SPAN = 30.0  # a latency axis spanning more than this ratio is drawn in log scale


def color(label: Any) -> str:
    """The colour of a policy label, the same in every figure."""
    key = str(label)
    if key in POLICY_COLORS:
        return POLICY_COLORS[key]
    return PALETTE[zlib.crc32(key.encode()) % len(PALETTE)]


def percentile_style(q: int) -> str:
    """Line style of a percentile (p50 dashed, p99 solid)."""
    return PERCENTILE_STYLES.get(q, "-")


def maybe_log(ax: Any, values: np.ndarray | pd.Series) -> None:
    """Log scale on y when the positive values span more than ``LOG_SPAN``."""
    vals = np.asarray(values, dtype=float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals) >= 2 and vals.max() / vals.min() > LOG_SPAN:
        ax.set_yscale("log")


def slo_line(ax: Any, value: float | None, label: str) -> None:
    """A horizontal SLO (or attainment target) line, labelled at the right."""
    if value is None or not np.isfinite(value):
        return
    ax.axhline(value, **SLO_STYLE)
    ax.annotate(label, xy=(1.0, value), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                fontsize=7, color="black")


def band(ax: Any, x: pd.Series, mean: pd.Series, half_width: pd.Series | None, line_color: str) -> None:
    """A shaded 95% confidence band around ``mean`` (nothing with one seed)."""
    if half_width is None or not np.isfinite(np.asarray(half_width, dtype=float)).any():
        return
    ax.fill_between(x, mean - half_width, mean + half_width, color=line_color, alpha=0.15, lw=0)


def caption_from_config(config: dict[str, Any]) -> str:
    """"Llama-3-8B on 4x H100-SXM (TP1), trace azure_llm_2023_conv.csv, SLO TTFT 0.5 s / TPOT 0.05 s"."""
    parts = []
    pools = (config.get("cluster") or {}).get("pools") or []
    if pools:
        described = []
        for pool in pools:
            hw = pool.get("hardware") or {}
            cost = pool.get("cost_model") or {}
            cost_name = cost.get("name") if isinstance(cost, dict) else cost
            text = (f"{hw.get('model', '?')} on {pool.get('num_replicas', 1)}x {hw.get('device', '?')} "
                    f"(TP{hw.get('tp', 1)})")
            if cost_name and cost_name != "analytic":
                text += f", {cost_name} cost model"
            described.append(text)
        parts.append("; ".join(described))
    workload = config.get("workload") or {}
    if workload.get("path"):
        parts.append(f"trace {Path(str(workload['path'])).name}")
    elif workload.get("name"):
        parts.append(f"{workload['name']} workload")
    slo = config.get("slo") or {}
    limits = [f"{k.removesuffix('_s').upper()} {v:g} s" for k, v in slo.items()
              if k in ("ttft_s", "tpot_s", "e2e_s") and v is not None]
    if limits:
        parts.append("SLO " + " / ".join(limits))
    return ", ".join(parts)


def caption_for(path: str | Path) -> str:
    """The caption of a run folder (its config.yaml) or a sweep folder (its first point's)."""
    import yaml

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    candidates = [folder / "config.yaml", *sorted((folder / "points").glob("*/config.yaml"))[:1]]
    for cfg in candidates:
        if cfg.is_file():
            return caption_from_config(yaml.safe_load(cfg.read_text()) or {})
    return ""


def add_caption(fig: Any, text: str) -> None:
    """The caption under the figure."""
    if text:
        fig.text(0.01, 0.005, text, fontsize=7, ha="left", va="bottom", wrap=True)
        fig.subplots_adjust(bottom=fig.subplotpars.bottom + 0.28 / fig.get_figheight())
