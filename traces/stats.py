"""``servesim trace stats FILE``: what a trace looks like before you simulate it.

Prints rows, span, mean rate, inter-arrival CV, peak rate (most arrivals in one second),
input/output length percentiles and the share of input tokens an unlimited prefix cache
would serve (``prefix_hit_fraction``; null when the trace has no prefix ids). ``--json``
prints the same as one JSON object. Run as ``python -m traces.stats FILE``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import ServesimError
from traces.formats import FORMAT_NAMES, read_rows, resolve_format, resolve_path
from traces.prefix import prefix_hit_tokens
from traces.rows import ReadContext

PERCENTILES = (50, 90, 99)


def _percentiles(values: np.ndarray) -> dict[str, int | None]:
    if values.size == 0:
        return {f"p{q}": None for q in PERCENTILES} | {"max": None, "mean": None}
    # Linear interpolation, rounded half up (2734.5 -> 2735), as the trace README reports them.
    out: dict[str, Any] = {f"p{q}": math.floor(float(np.percentile(values, q)) + 0.5) for q in PERCENTILES}
    out["max"] = int(values.max())
    out["mean"] = round(float(values.mean()), 1)
    return out


def trace_stats(path: str | Path, format: str = "auto", on_error: str = "raise",
                include_failed: bool = False) -> dict[str, Any]:
    """Statistics of one trace file (one streaming pass; arrays of three numbers per row)."""
    path = resolve_path(str(path))
    fmt = resolve_format(path, format)
    ctx = ReadContext(str(path), on_error, include_failed)
    times, n_in, n_out = array("d"), array("q"), array("q")
    has_time, has_prefix = True, False

    def rows_with_prefix():
        nonlocal has_time, has_prefix
        for row in read_rows(ctx, fmt):
            if row.arrival_s is None:
                has_time = False
            else:
                times.append(row.arrival_s)
            n_in.append(row.input_tokens)
            n_out.append(row.output_tokens)
            extra = row.extra or {}
            ids = extra.get("prefix_hashes") or ()
            has_prefix = has_prefix or bool(ids)
            yield row.input_tokens, ids, extra.get("prefix_block_tokens", 0)

    hits, total = prefix_hit_tokens(rows_with_prefix())
    t = np.frombuffer(times, dtype=np.float64) if has_time else np.empty(0)
    stats: dict[str, Any] = {"file": str(path), "format": fmt, "rows": len(n_in)}
    if t.size >= 2:
        span = float(t[-1] - t[0])
        gaps = np.diff(t)
        mean_gap = float(gaps.mean())
        stats["span_s"] = round(span, 3)
        stats["mean_rate_rps"] = round(len(t) / span, 4) if span > 0 else None
        stats["interarrival_cv"] = round(float(gaps.std()) / mean_gap, 4) if mean_gap > 0 else None
        per_second = np.bincount(np.floor(t - t[0]).astype(np.int64))
        stats["peak_rate_rps"] = int(per_second.max())
        stats["distinct_timestamps"] = int(np.unique(t).size)
    else:
        stats.update(span_s=None, mean_rate_rps=None, interarrival_cv=None, peak_rate_rps=None)
    stats["input_tokens"] = _percentiles(np.frombuffer(n_in, dtype=np.int64))
    stats["output_tokens"] = _percentiles(np.frombuffer(n_out, dtype=np.int64))
    stats["prefix_hit_fraction"] = round(hits / total, 4) if total and has_prefix else None
    for key in ("num_rows_skipped", "num_failed"):
        if ctx.counts.get(key):
            stats[key] = ctx.counts[key]
    return stats


def format_text(stats: dict[str, Any]) -> str:
    """The human-readable report."""
    def num(v: Any, unit: str = "") -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.3f}{unit}" if not math.isnan(v) else "-"
        return f"{v:,}{unit}"

    def pct(d: dict[str, Any]) -> str:
        return " / ".join(num(d[k]) for k in ("p50", "p90", "p99", "max")) + f"  (mean {num(d['mean'])})"

    lines = [
        f"file                 {stats['file']}",
        f"format               {stats['format']}",
        f"rows                 {num(stats['rows'])}",
        f"span                 {num(stats['span_s'], ' s')}",
        f"mean rate            {num(stats['mean_rate_rps'], ' req/s')}",
        f"inter-arrival CV     {num(stats['interarrival_cv'])}",
        f"peak rate            {num(stats['peak_rate_rps'], ' req in 1 s')}",
        f"input  p50/p90/p99/max  {pct(stats['input_tokens'])}",
        f"output p50/p90/p99/max  {pct(stats['output_tokens'])}",
        f"prefix hit fraction  {num(stats['prefix_hit_fraction'])} (unlimited cache, share of input tokens)",
    ]
    for key in ("num_rows_skipped", "num_failed"):
        if key in stats:
            lines.append(f"{key:<20} {num(stats[key])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``servesim trace stats``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="servesim trace stats", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="trace file")
    parser.add_argument("--format", default="auto", choices=FORMAT_NAMES, help="file format (default: detect)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--skip-errors", action="store_true", help="skip and count malformed rows")
    parser.add_argument("--include-failed", action="store_true", help="BurstGPT: keep failed requests")
    args = parser.parse_args(argv)
    try:
        stats = trace_stats(args.file, args.format, "skip" if args.skip_errors else "raise", args.include_failed)
    except (ServesimError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(stats, indent=2) if args.json else format_text(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
