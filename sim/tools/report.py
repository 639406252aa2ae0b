"""``servesim report RUN_OR_SWEEP --out DIR``: a self-contained Markdown and HTML report.

For a run folder: the resolved config, the summary table, TTFT / TPOT / E2E CDFs and, when the
run recorded its iterations (``output.record_steps``), queue length, batch size and KV blocks
over time. For a sweep folder: the base config (its first point's, resolved), the table of
every point, latency and goodput / attainment against request rate per policy, and the CDFs
of each policy's points at the middle swept rate. Figures are PNG files beside
``report.md`` and ``report.html``; both files reference them by relative path, so the folder
can be copied into a paper draft or a design review as it is.
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from sim.tools import plot_style
from sim.tools.output import format_summary, read_frame
from sim.tools.plots import guess_hue, plot_cdf, plot_goodput, plot_latency, plot_timeseries, read_table, swept_columns

TABLE_COLUMNS = ("offered_rps", "goodput_steady_rps", "slo_attainment_steady", "goodput_rps", "slo_attainment",
                 "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p99_s", "num_preemptions")


class ReportError(Exception):
    """The folder is not a run or a sweep."""


def _kind(folder: Path) -> str:
    if (folder / "sweep.json").is_file():
        return "sweep"
    if (folder / "summary.json").is_file():
        return "run"
    raise ReportError(f"{folder} is neither a run folder (summary.json) nor a sweep folder (sweep.json)")


def _save(fig: Any, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return name


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.4g}"
    return str(v)


def _run_sections(folder: Path, out: Path, caption: str) -> list[tuple[str, str, list[str]]]:
    summary = json.loads((folder / "summary.json").read_text())
    sections = [("Summary", format_summary(summary), [])]
    requests = read_table(folder, "requests")
    slo = _slo(folder / "config.yaml")
    figures = [_save(plot_cdf({folder.name: requests}, slo=slo, caption=caption), out, "cdf.png")]
    try:
        steps = read_table(folder, "steps")
        figures.append(_save(plot_timeseries(steps, caption=caption), out, "timeseries.png"))
        note = "Latency CDFs, and queue length, batch size and KV blocks in use over time."
    except FileNotFoundError:
        note = "Latency CDFs. (No time series: the run did not record steps; set output.record_steps: true.)"
    sections.append(("Figures", note, figures))
    return sections


def _slo(config_path: Path) -> dict[str, float]:
    import yaml

    if not config_path.is_file():
        return {}
    slo = (yaml.safe_load(config_path.read_text()) or {}).get("slo") or {}
    return {k: float(v) for k, v in slo.items() if v is not None and k.endswith("_s")}


def _sweep_sections(folder: Path, out: Path, caption: str) -> list[tuple[str, str, list[str]]]:
    table = read_table(folder)
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    swept = swept_columns(table)
    shown = [c for c in ["point", *swept, "seed"] if c in ok.columns] + [c for c in TABLE_COLUMNS if c in ok.columns]
    failed = int((table["status"] != "ok").sum()) if "status" in table.columns else 0
    note = f"{len(table)} points, {failed} failed." + (" Failed points are left out of the figures." if failed else "")
    sections = [("Points", note + "\n\n" + _md_table(ok[shown]), [])]
    first = next(iter(sorted((folder / "points").glob("*/config.yaml"))), None)
    slo = _slo(first) if first is not None else {}
    figures = [_save(plot_latency(table, slo=slo, caption=caption), out, "latency.png"),
               _save(plot_goodput(table, caption=caption), out, "goodput.png")]
    hue = guess_hue(table)
    numeric = [c for c in swept if c != hue and pd.api.types.is_numeric_dtype(ok[c])]
    if numeric and "dir" in ok.columns:
        rate_col = numeric[0]
        values = sorted(ok[rate_col].unique())
        middle = values[len(values) // 2]
        rows = ok[ok[rate_col] == middle]
        frames = {}
        for row in rows.itertuples(index=False):
            label = str(getattr(row, hue)) if hue else f"point {row.point}"
            point_dir = folder / str(row.dir) if not Path(str(row.dir)).is_absolute() else Path(str(row.dir))
            if label not in frames and (point_dir / "requests.parquet").exists():
                frames[label] = read_frame(point_dir / "requests.parquet")
        if frames:
            figures.append(_save(plot_cdf(frames, slo=slo, caption=f"{caption}; {rate_col} = {middle:g}"),
                                 out, "cdf.png"))
    sections.append(("Figures", "Latency percentiles and goodput / SLO attainment against request rate "
                                "(steady window), and latency CDFs at the middle swept rate.", figures))
    return sections


def write_report(folder: str | Path, out: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and their figures for a run or sweep folder into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    folder, out = Path(folder), Path(out)
    kind = _kind(folder)
    out.mkdir(parents=True, exist_ok=True)
    caption = plot_style.caption_for(folder)
    config_file = folder / "config.yaml" if kind == "run" else next(iter(sorted((folder / "points").glob(
        "*/config.yaml"))), None)
    config_text = config_file.read_text() if config_file is not None and config_file.is_file() else "(no config)"
    sections = _run_sections(folder, out, caption) if kind == "run" else _sweep_sections(folder, out, caption)
    sections.insert(0, ("Configuration", "The resolved config" + (" (the sweep's first point)" if kind == "sweep"
                                                                  else "") + ":\n\n```yaml\n" + config_text + "```",
                        []))
    title = f"servesim {kind} report: {folder.name}"
    md = [f"# {title}", "", caption, ""]
    for head, body, figures in sections:
        md += [f"## {head}", "", body if head != "Summary" else "```\n" + body + "\n```", ""]
        md += [f"![{name}]({name})" for name in figures] + ([""] if figures else [])
    files = {"markdown": out / "report.md", "html": out / "report.html"}
    files["markdown"].write_text("\n".join(md))
    files["html"].write_text(_html(title, caption, sections))
    return files


def _html(title: str, caption: str, sections: list[tuple[str, str, list[str]]]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{background:#f4f4f4;"
             "padding:1em;overflow-x:auto}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(caption)}</p>"]
    for head, body, figures in sections:
        parts.append(f"<h2>{html.escape(head)}</h2>")
        parts.append(_html_body(body))
        parts += [f"<img src='{html.escape(name)}' alt='{html.escape(name)}'>" for name in figures]
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_body(body: str) -> str:
    """The few Markdown forms report bodies use: fenced code, pipe tables, paragraphs."""
    out, lines, i = [], body.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not set(lines[i]) <= set("|-"):
                    rows.append([html.escape(c.strip()) for c in lines[i].strip("|").split("|")])
                i += 1
            head, *rest = rows
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest) + "</table>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
            i += 1
        else:
            i += 1
    return "\n".join(out)


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim report``."""
    p = sub.add_parser("report", help="a Markdown + HTML report of a run or sweep folder, with its figures")
    p.add_argument("folder", help="run folder (servesim run --out) or sweep folder (servesim sweep --out)")
    p.add_argument("--out", required=True, help="folder for report.md, report.html and the figures")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Handler of ``servesim report``."""
    from sim.errors import ServesimError

    try:
        files = write_report(args.folder, args.out)
    except (ReportError, FileNotFoundError, ValueError) as exc:
        raise ServesimError(f"report: {exc}") from None
    print(f"servesim report {args.folder} -> {files['markdown']} and {files['html'].name}")
    return 0
