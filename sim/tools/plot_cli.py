"""``servesim plot``: the command line over sim.tools.plots, and ``draw``, which turns table files
or folders into a figure of a kind (also used by ``servesim report``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from sim.tools import plot_style as style_
from sim.tools.plots import (
    KINDS,
    plot_cdf,
    plot_goodput,
    plot_latency,
    plot_latency_goodput,
    plot_pareto,
    plot_timeseries,
    read_table,
)

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
    p.add_argument("--slo", default="", help="SLO lines, e.g. ttft=0.5,tpot=0.05 (default: the runs' config)")
    p.add_argument("--attainment", type=float, default=0.9, help="attainment target line on goodput figures")
    p.add_argument("--no-caption", action="store_true", help="no caption (model, GPU, trace, SLO) under the figure")
    p.set_defaults(handler=cmd_plot)


def _slo_of(args: argparse.Namespace) -> dict[str, float]:
    """SLO lines: --slo, else the first table's config (``slo:``)."""
    if args.slo:
        from sim.tools.capacity import parse_slo

        return {k: v for k, v in parse_slo(args.slo).items() if v is not None}
    import yaml

    folder = Path(args.tables[0])
    folder = folder if folder.is_dir() else folder.parent
    for cfg in [folder / "config.yaml", *sorted((folder / "points").glob("*/config.yaml"))[:1]]:
        if cfg.is_file():
            slo = (yaml.safe_load(cfg.read_text()) or {}).get("slo") or {}
            return {k: float(v) for k, v in slo.items() if v is not None and k.endswith("_s")}
    return {}


def _run_tables(paths: list[str], kind: str) -> list[str]:
    """Refuse sweep folders where a run's table is needed, naming what to pass instead."""
    for t in paths:
        p = Path(t)
        if p.is_dir() and (p / "sweep.json").is_file():
            raise FileNotFoundError(f"{t} is a sweep folder; {kind} needs run folders, e.g. {t}/points/p0000")
    return paths


def draw(kind: str, tables: list[str], x: str | None = None, hue: str | None = None,
         slo: dict[str, float] | None = None, attainment: float | None = 0.9, caption: str = "") -> Any:
    """The figure of ``kind`` from table files or folders (what ``servesim plot`` and reports draw)."""
    if kind == "cdf":
        frames = {_run_label(t): read_table(t, "requests") for t in _run_tables(tables, "cdf")}
        return plot_cdf(frames, slo=slo, caption=caption)
    if kind == "timeseries":
        run = _run_tables(tables, "timeseries")[0]
        try:
            steps = read_table(run, "steps")
        except FileNotFoundError:
            raise FileNotFoundError(f"{run} has no steps table: rerun it with output.record_steps: true") from None
        return plot_timeseries(steps, caption=caption)
    table = pd.concat([read_table(t) for t in tables], ignore_index=True)
    if kind == "pareto":
        return plot_pareto(table, hue=hue, caption=caption)
    if kind == "latency":
        return plot_latency(table, x=x, hue=hue, slo=slo, caption=caption)
    if kind == "goodput":
        return plot_goodput(table, x=x, hue=hue, attainment=attainment, caption=caption)
    return plot_latency_goodput(table, x=x, hue=hue, slo=slo, attainment=attainment, caption=caption)


def cmd_plot(args: argparse.Namespace) -> int:
    """Handler of ``servesim plot``."""
    import matplotlib

    matplotlib.use("Agg")
    from sim.errors import ServesimError

    caption = "" if args.no_caption else style_.caption_for(args.tables[0])
    try:
        fig = draw(args.kind, args.tables, x=args.x, hue=args.hue, slo=_slo_of(args), attainment=args.attainment,
                   caption=caption)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ServesimError(f"plot {args.kind}: {exc}") from None
    if args.title:
        fig.suptitle(args.title)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    print(f"servesim plot --kind {args.kind} -> {out}")
    return 0


def _run_label(path: str) -> str:
    p = Path(path)
    return p.name if p.is_dir() else p.parent.name or p.stem
