"""Writing a run to disk: resolved config, per-request rows, per-visit rows, summary, optional steps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config import dump_config


def has_parquet() -> bool:
    """Whether pandas can write parquet here (pyarrow installed)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_frame(df: pd.DataFrame, path_stem: Path) -> Path:
    """Write ``df`` as parquet (CSV if pyarrow is absent); returns the file written."""
    if has_parquet():
        path = path_stem.with_suffix(".parquet")
        df.to_parquet(path, index=False)
    else:
        path = path_stem.with_suffix(".csv")
        df.to_csv(path, index=False)
    return path


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a frame written by ``write_frame`` (parquet or CSV by suffix)."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def json_safe(value: Any) -> Any:
    """NaN and infinities become null so summary.json is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_run(result: Any, out_dir: str | Path) -> dict[str, Path]:
    """Write config.yaml, requests.parquet|csv, visits.parquet|csv, summary.json (and steps, trace.json
    with ``output.trace_events``, and the controllers' actions when the run has any controller) into
    ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"config": out / "config.yaml", "summary": out / "summary.json"}
    files["config"].write_text(dump_config(result.config))
    files["requests"] = write_frame(result.requests, out / "requests")
    if getattr(result, "visits", None) is not None:
        files["visits"] = write_frame(result.visits, out / "visits")
    files["summary"].write_text(json.dumps(json_safe(result.summary), indent=2, sort_keys=True) + "\n")
    if result.steps is not None:
        files["steps"] = write_frame(result.steps, out / "steps")
    if result.config.output.trace_events:
        from sim.tools.trace_events import write_trace_events

        files["trace"] = write_trace_events(result, out / "trace.json", result.config.output.trace_events_max)
    actions = getattr(result, "actions", None)
    if actions is not None and (len(actions) or result.config.cluster.controllers):
        files["actions"] = write_frame(actions, out / "actions")
    return files


SUMMARY_ROWS = (
    ("requests (completed / rejected)", lambda s: f"{s['num_requests']} ({s['num_completed']} / {s['num_rejected']})"),
    ("simulated duration", lambda s: f"{s['simulated_duration_s']:.1f} s"),
    ("TTFT mean / p50 / p99", lambda s: _ms3(s, "ttft")),
    ("TPOT mean / p50 / p99", lambda s: _ms3(s, "tpot")),
    ("ITL mean / p50 / p99", lambda s: _ms3(s, "itl")),
    ("E2E mean / p50 / p99", lambda s: _ms3(s, "e2e", scale=1.0, unit="s")),
    ("throughput in / out", lambda s: f"{s['throughput_input_tps']:.0f} / {s['throughput_output_tps']:.0f} tok/s"),
    ("goodput (SLO attainment)", lambda s: f"{s['goodput_rps']:.2f} req/s ({_pct(s['slo_attainment'])}) over the run"),
    ("  in the steady window", lambda s: _steady(s)),
    ("preemptions", lambda s: f"{s['num_preemptions']}"),
    ("prefix hit rate", lambda s: _pct(s["prefix_hit_rate"])),
    ("mean batch size", lambda s: f"{s['mean_batch_size']:.1f}"),
    ("wall time", lambda s: f"{s['wall_s']:.2f} s"),
    ("held-out error of this regime", lambda s: _band(s)),
)


def _steady(s: dict) -> str:
    good = s.get("goodput_steady_rps")
    if good is None or good != good:
        return "n/a (too few requests)"
    return (f"{good:.2f} req/s ({_pct(s['slo_attainment_steady'])}) of {s['offered_steady_rps']:.2f} req/s "
            f"offered, arrivals {s['steady_window_start_s']:.0f}-{s['steady_window_end_s']:.0f} s")


def _band(s: dict) -> str:
    """Median |error| of the corpus's held-out points nearest this run's regime (issue 17)."""
    if s.get("heldout_error_median_abs") is None:
        return str(s.get("heldout_error_regime", "n/a"))
    return (f"median {_pct(s['heldout_error_median_abs'])}, {_pct(s['heldout_error_within_20'])} within 20% "
            f"(n={s['heldout_error_n']}, regime {s['heldout_error_regime']}; servesim calibrate)")


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _ms3(s: dict, key: str, scale: float = 1000.0, unit: str = "ms") -> str:
    vals = [s.get(f"{key}_mean_s"), s.get(f"{key}_p50_s"), s.get(f"{key}_p99_s")]
    return " / ".join("n/a" if v is None or math.isnan(v) else f"{v * scale:.1f}" for v in vals) + f" {unit}"


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable table of the headline metrics."""
    width = max(len(name) for name, _ in SUMMARY_ROWS)
    lines = [f"  {name:<{width}}  {fmt(summary)}" for name, fmt in SUMMARY_ROWS]
    return "\n".join(lines + [f"  note: {note}" for note in summary_notes(summary)])


# input the workload changed or dropped, counted in describe(): shown so that none is silent
ADJUSTMENTS = (
    ("workload_num_input_raised_to_1", "rows with 0 input tokens raised to 1"),
    ("workload_num_output_raised_to_1", "rows with 0 output tokens raised to 1"),
    ("workload_num_rows_skipped", "malformed rows skipped (on_error: skip)"),
)


def summary_notes(summary: dict[str, Any]) -> list[str]:
    """One line per input adjustment a run made, and the cut of a run stopped at max_time_s."""
    notes = [f"{summary[key]} {what}" for key, what in ADJUSTMENTS if summary.get(key)]
    if summary.get("truncated"):
        notes.append(f"stopped at engine.max_time_s: of {summary['num_workload_requests']} requests, "
                     f"{summary['num_unfinished']} unfinished and {summary['num_not_arrived']} not arrived")
    return notes
