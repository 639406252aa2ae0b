"""CI gate: compare a run's summary (or a sweep's table) with a committed baseline.

A baseline file (YAML or JSON) holds the expected metrics and how far each may move::

    # rewrite with: servesim check RUN --baseline FILE --update
    rtol: 0.01                     # default band: |now - then| <= atol + rtol * |then|
    atol: 1.0e-09
    tolerances:                    # per-metric bands (either key may be left out)
      ttft_p99_s: {rtol: 0.05}
      num_preemptions: {atol: 2}
    metrics:
      goodput_rps: 12.5
      ttft_p99_s: 0.181

For a sweep table, metric names are ``p<point>.<metric>`` (``p3.goodput_rps``) and a per-metric
tolerance may name the bare metric (``goodput_rps``) to apply to every point.
``servesim check`` prints what moved and exits 1 when any metric leaves its band.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.errors import ServesimError

# headline metrics gated by default: deterministic for a seeded run
DEFAULT_METRICS = (
    "num_requests", "num_completed", "num_rejected", "num_preemptions",
    "ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "tpot_mean_s", "tpot_p50_s", "tpot_p99_s",
    "itl_p99_s", "e2e_mean_s", "e2e_p50_s", "e2e_p99_s", "queueing_mean_s",
    "throughput_input_tps", "throughput_output_tps", "goodput_rps", "slo_attainment",
    "mean_batch_size", "prefix_hit_rate", "simulated_duration_s",
    # policy-specific, gated when the run reports them
    "spec_acceptance_rate", "spec_mean_proposed_tokens", "spec_mean_emitted_per_step", "num_migrations",
)
DEFAULT_RTOL = 0.01
DEFAULT_ATOL = 1e-9


class CheckError(ServesimError):
    """The run, table or baseline cannot be read."""


@dataclass
class Row:
    """One compared metric."""

    name: str
    baseline: float | None
    current: float | None
    rtol: float
    atol: float

    @property
    def status(self) -> str:
        """``same``, ``moved`` (inside the band), ``OUT`` (outside) or ``MISSING``."""
        b, c = self.baseline, self.current
        if _isnan(b) and _isnan(c):
            return "same"
        if c is None and b is not None:
            return "MISSING"
        if _isnan(b) or _isnan(c):
            return "OUT"
        if c == b:
            return "same"
        return "moved" if abs(c - b) <= self.atol + self.rtol * abs(b) else "OUT"


def _isnan(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def load_metrics(path: str | Path) -> dict[str, float | None]:
    """Numeric metrics of a run folder, a summary.json, or a sweep table (parquet/CSV/folder)."""
    path = Path(path)
    if path.is_dir():
        if (path / "summary.json").is_file():
            path = path / "summary.json"
        else:
            from sim.tools.sweep import SweepError, table_path

            try:
                path = table_path(path)
            except SweepError:
                raise CheckError(f"{path}: neither a run folder (summary.json) nor a sweep folder") from None
    if not path.is_file():
        raise CheckError(f"{path}: not found")
    if path.suffix == ".json":
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(summary, dict):
            raise CheckError(f"{path}: expected a JSON object of metrics, got {type(summary).__name__}")
        return {k: _number(v) for k, v in summary.items() if _is_metric(v)}
    if path.suffix in (".parquet", ".csv"):
        from sim.tools.output import read_frame

        df = read_frame(path)
        if "point" not in df.columns:
            raise CheckError(f"{path}: not a sweep table (no 'point' column)")
        out: dict[str, float | None] = {}
        for row in df.sort_values("point").to_dict("records"):
            for key, value in row.items():
                if key not in ("point", "seed") and _is_metric(value):
                    out[f"p{int(row['point'])}.{key}"] = _number(value)
        return out
    raise CheckError(f"{path}: expected a run folder, summary.json, or a .parquet/.csv table")


def _is_metric(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (hasattr(value, "dtype") and value.dtype.kind in "iuf")


def _number(value: Any) -> float | None:
    """A plain int or float; NaN and None become None."""
    if value is None:
        return None
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return int(value)
    v = float(value)
    return None if math.isnan(v) else v


def load_baseline(path: str | Path, allow_empty: bool = False) -> dict[str, Any]:
    """Read a baseline file (YAML or JSON): at least one metric (a gate of nothing passes
    vacuously; ``allow_empty`` for ``--update``, which fills it), every value and band a number."""
    path = Path(path)
    try:
        text = path.read_text()
        # JSON read as JSON: YAML 1.1 would take a JSON number such as 1e-09 for a string
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise CheckError(f"{path}: cannot read baseline: {exc.strerror}") from None
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise CheckError(f"{path}: a baseline needs a 'metrics:' mapping")
    if not data["metrics"] and not allow_empty:
        raise CheckError(f"{path}: 'metrics:' is empty, so the gate would check nothing; "
                         "fill it with servesim check RUN --baseline FILE --update")
    for name, value in data["metrics"].items():
        if value is not None and not _is_number(value):
            raise CheckError(f"{path}: metrics.{name}: expected a number or null, got {value!r}")
    for key in ("rtol", "atol"):
        if key in data and not _is_number(data[key]):
            raise CheckError(f"{path}: {key}: expected a number, got {data[key]!r}")
    tolerances = data.get("tolerances") or {}
    if not isinstance(tolerances, dict):
        raise CheckError(f"{path}: tolerances: expected a mapping, got {tolerances!r}")
    for name, band in tolerances.items():
        if not isinstance(band, dict):
            raise CheckError(f"{path}: tolerances.{name}: expected a mapping like {{rtol: 0.05}}, got {band!r}")
        for key, value in band.items():
            if key not in ("rtol", "atol") or not _is_number(value):
                raise CheckError(f"{path}: tolerances.{name}.{key}: expected rtol or atol with a number, "
                                 f"got {value!r}")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _band(name: str, baseline: dict[str, Any], rtol: float | None) -> tuple[float, float]:
    tols = baseline.get("tolerances") or {}
    bare = name.split(".", 1)[1] if name.startswith("p") and "." in name else name
    own = tols.get(name) or tols.get(bare) or {}
    default_rtol = rtol if rtol is not None else float(baseline.get("rtol", DEFAULT_RTOL))
    return float(own.get("rtol", default_rtol)), float(own.get("atol", baseline.get("atol", DEFAULT_ATOL)))


def compare(current: dict[str, float | None], baseline: dict[str, Any], rtol: float | None = None) -> list[Row]:
    """One row per baseline metric: its baseline and current values and its band."""
    rows = []
    for name, then in baseline["metrics"].items():
        r, a = _band(name, baseline, rtol)
        rows.append(Row(name, _number(then), current.get(name), r, a))
    return rows


def format_rows(rows: list[Row], show_all: bool = False) -> str:
    """A table of the metrics that moved (all of them with ``show_all``)."""
    shown = [r for r in rows if show_all or r.status != "same"]
    if not shown:
        return ""
    width = max(len("metric"), *(len(r.name) for r in shown))
    lines = [f"  {'metric':<{width}}  {'baseline':>12}  {'current':>12}  {'change':>9}  {'band':>9}  status"]
    for r in shown:
        lines.append(f"  {r.name:<{width}}  {_fmt(r.baseline):>12}  {_fmt(r.current):>12}  {_change(r):>9}  "
                     f"{_fmt_band(r):>9}  {r.status}")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if _isnan(v) else f"{v:.6g}"


def _change(r: Row) -> str:
    if _isnan(r.baseline) or _isnan(r.current):
        return ""
    if r.baseline == 0:
        return "" if r.current == 0 else f"{r.current - r.baseline:+.3g}"
    return f"{100 * (r.current - r.baseline) / abs(r.baseline):+.2f}%"


def _fmt_band(r: Row) -> str:
    return f"±{100 * r.rtol:g}%" if r.rtol else f"±{r.atol:g}"


HEAD = "# servesim check baseline: rewrite with `servesim check RUN --baseline THIS_FILE --update`\n"


def write_baseline(path: str | Path, current: dict[str, float | None], old: dict[str, Any] | None,
                   source: str, head: str = HEAD) -> dict[str, Any]:
    """Rewrite ``path`` with ``current`` values, keeping the old file's metric list and bands."""
    if old is not None:
        names = list(old["metrics"])
    elif any("." in k and k.startswith("p") for k in current):
        names = [k for k in current if k.split(".", 1)[1] in DEFAULT_METRICS]
    else:
        names = [k for k in DEFAULT_METRICS if k in current]
    data: dict[str, Any] = {
        "source": source,
        "rtol": (old or {}).get("rtol", DEFAULT_RTOL),
        "atol": (old or {}).get("atol", DEFAULT_ATOL),
        "tolerances": (old or {}).get("tolerances") or {},
        "metrics": {k: current.get(k) for k in names},
    }
    text = json.dumps(data, indent=2) + "\n" if Path(path).suffix == ".json" else \
        head + yaml.safe_dump(data, sort_keys=False)
    Path(path).write_text(text)
    return data


def check(run_or_table: str | Path, baseline_path: str | Path, *, rtol: float | None = None,
          update: bool = False, show_all: bool = False, out: Any = None, head: str = HEAD) -> int:
    """Compare and print; 0 when every metric is in its band (or after ``update``), else 1.

    ``head`` is the comment line a YAML baseline written by ``update`` starts with.
    """
    out = out if out is not None else sys.stdout
    current = load_metrics(run_or_table)
    old = load_baseline(baseline_path, allow_empty=update) if Path(baseline_path).is_file() else None
    if update:
        if old is not None and not old["metrics"]:
            old = None  # an empty baseline: start from the default metric list
        _refuse_vacuous_update(current, run_or_table)
        before = compare(current, old, rtol) if old is not None else []
        write_baseline(baseline_path, current, old, str(run_or_table), head)
        changed = [r for r in before if r.status != "same"]
        print(f"servesim check: wrote {baseline_path} ({'new' if old is None else f'{len(changed)} changed'})",
              file=out)
        if changed:
            print(format_rows(changed), file=out)
        return 0
    if old is None:
        raise CheckError(f"{baseline_path}: no such baseline (create it with --update)")
    rows = compare(current, old, rtol)
    bad = [r for r in rows if r.status in ("OUT", "MISSING")]
    moved = [r for r in rows if r.status == "moved"]
    verdict = "FAIL" if bad else "ok"
    print(f"servesim check {run_or_table} vs {baseline_path}: {verdict} "
          f"({len(rows)} metrics, {len(moved)} moved within band, {len(bad)} out of band)", file=out)
    table = format_rows(rows, show_all)
    if table:
        print(table, file=out)
    if bad:
        print(f"  to accept the new values: servesim check {run_or_table} --baseline {baseline_path} --update",
              file=out)
    return 1 if bad else 0


def _refuse_vacuous_update(current: dict[str, float | None], source: str | Path) -> None:
    """A baseline recorded from a run in which nothing completed would gate nothing real."""
    completed = [v for k, v in current.items() if k == "num_completed" or k.endswith(".num_completed")]
    if not completed:
        raise CheckError(f"{source}: has no num_completed metric; refusing to record it as a baseline")
    if not any(completed):
        raise CheckError(f"{source}: no request completed; refusing to record it as a baseline "
                         "(fix the run, or check why every request was rejected or cut)")


# ---------------------------------------------------------------------------- CLI


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim check``."""
    p = sub.add_parser("check", help="CI gate: compare a run or sweep table with a baseline")
    p.add_argument("run", help="run folder, summary.json, sweep folder or table (.parquet/.csv)")
    p.add_argument("--baseline", required=True, help="baseline YAML or JSON file")
    p.add_argument("--rtol", type=float, default=None, help="default relative band (overrides the file's)")
    p.add_argument("--update", action="store_true", help="rewrite the baseline with the current values")
    p.add_argument("--all", action="store_true", help="list every metric, not only those that moved")
    p.set_defaults(handler=lambda a: check(a.run, a.baseline, rtol=a.rtol, update=a.update, show_all=a.all))
