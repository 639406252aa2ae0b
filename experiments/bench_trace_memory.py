"""Streaming benchmark: a 10 M-row Azure-2024-format trace replayed in bounded memory.

Writes a synthetic file with the Azure 2024 layout (timestamps with a UTC offset) into a
temporary folder, streams it through the ``trace`` workload (reader, transforms, ids) and
prints rows, wall time and peak RSS. Peak RSS stays near the interpreter's baseline: the
file is never held in memory. Not part of the test suite::

    python experiments/bench_trace_memory.py            # 10 M rows (~0.5 GB of disk)
    python experiments/bench_trace_memory.py --rows 1000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.config import WorkloadSpec  # noqa: E402

_CHUNK = 200_000


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_azure_2024(path: Path, num_rows: int, seed: int = 0) -> None:
    """A trace with the Azure 2024 columns: ~28 req/s Poisson, lognormal lengths."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 5, 10, tzinfo=UTC)
    t = 0.0
    with open(path, "w") as fh:
        fh.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for first in range(0, num_rows, _CHUNK):
            n = min(_CHUNK, num_rows - first)
            times = t + np.cumsum(rng.exponential(1 / 28.0, size=n))
            t = float(times[-1])
            n_in = np.maximum(1, rng.lognormal(7.0, 1.0, size=n).astype(np.int64))
            n_out = rng.integers(0, 800, size=n)
            lines = []
            minute_key, minute_text = -1, ""
            for s, a, b in zip(times.tolist(), n_in.tolist(), n_out.tolist(), strict=True):
                minute = int(s // 60)
                if minute != minute_key:
                    minute_key = minute
                    minute_text = (start + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M")
                lines.append(f"{minute_text}:{s - 60 * minute:09.6f}+00:00,{a},{b}\n")
            fh.write("".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Generate, stream, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to generate")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "azure_2024_synthetic.csv"
        t0 = time.perf_counter()
        write_azure_2024(path, args.rows)
        print(f"generated {args.rows:,} rows ({path.stat().st_size / 2**20:,.0f} MiB) "
              f"in {time.perf_counter() - t0:.1f} s; peak RSS so far {peak_rss_mib():,.0f} MiB")
        spec = {"name": "trace", "path": str(path), "format": "auto",
                "transforms": [{"name": "clip_lengths", "max_context_tokens": 8192}]}
        workload = WorkloadSpec.from_config(spec, "workload").build()
        before = peak_rss_mib()
        t0 = time.perf_counter()
        rows, last = 0, None
        for req in workload.requests(np.random.default_rng(0)):
            rows += 1
            last = req
        wall = time.perf_counter() - t0
        print(f"streamed {rows:,} requests in {wall:.1f} s ({rows / wall:,.0f} rows/s); "
              f"last arrival {last.arrival_s:,.0f} s; describe: {workload.describe()}")
        print(f"peak RSS: {peak_rss_mib():,.0f} MiB (before streaming {before:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
