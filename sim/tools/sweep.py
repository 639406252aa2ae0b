"""Sweeps: one base config, many points, run on a process pool or on Ray, resumable.

A sweep file names a base config and the values to vary by dotted key::

    name: smoke
    base: ../../configs/quickstart.yaml      # a path (relative to this file) or a mapping
    set: {workload.max_requests: 500}        # fixed overrides applied to the base
    grid:                                    # cartesian product, last key fastest
      workload.rate_scale: [1, 2, 4]
      cluster.pools[0].scheduler.name: [vllm_v1, sarathi]
    zip:                                     # paired lists of equal length
      cluster.pools[0].num_replicas: [1, 2]
      cluster.pools[0].hardware.device: [H100-SXM, A100-80GB]
    points:                                  # explicit list of override mappings
      - {slo.ttft_s: 0.5}
    seeds: 3                                 # a count (0, 1, 2) or a list; innermost
    labels: {workload.rate_scale: rate_scale}  # column names for swept keys

Points are every grid combination x every zip row x every explicit point x every seed.
Every point's config is validated before the first one runs.

The results folder::

    DIR/sweep.json        what the folder belongs to (fingerprint of base + points)
    DIR/results.jsonl     one JSON row per finished point, appended and fsynced
    DIR/results.parquet   the combined table (CSV without pyarrow), rewritten from the
                          journal after every point, rows sorted by point index
    DIR/points/p0007/     config.yaml, requests, summary.json as ``servesim run`` writes
    DIR/.lock             held (flock) while a sweep runs into DIR: a second sweep into the
                          same folder is refused instead of running every point again

Table columns: ``point``, the swept columns, ``seed``, ``status``, ``error``, ``dir``, then
the summary metrics and ``offered_rps`` (arrivals per second over the arrival span) sorted
by name (``wall_s`` is left out so tables are reproducible).
A rerun of the same sweep into the same folder skips finished points and retries failed ones.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from sim.tools.sweep_file import (  # noqa: F401  (re-exported: the sweep API lives in sim.tools.sweep)
    JOURNAL,
    MANIFEST,
    RESERVED_COLUMNS,
    SECTIONS,
    TABLE_STEM,
    UNREPRODUCIBLE,
    Sweep,
    SweepError,
    SweepPoint,
    load_sweep,
)

# ---------------------------------------------------------------------------- running


def run_point(config: dict, cwd: str | None = None) -> tuple[str, Any]:
    """Simulate one point: ("ok", Result) or ("failed", (one-line error, traceback))."""
    if cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)  # Ray workers may start elsewhere; relative trace paths follow the driver
    from sim.api import simulate

    try:
        return "ok", simulate(config)
    except Exception as exc:  # noqa: BLE001 - a failed point is recorded and the sweep goes on
        return "failed", (f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _local_backend(items: list[tuple[int, dict]], workers: int) -> Iterator[tuple[int, tuple[str, Any]]]:
    """Yield (point index, outcome) as points finish on a process pool (in-process if 1 worker)."""
    cwd = os.getcwd()
    if workers <= 1 or len(items) <= 1:
        for index, config in items:
            yield index, run_point(config, cwd)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: safe under notebooks and threads; workers import the project once each
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(run_point, config, cwd): index for index, config in items}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray_backend(items: list[tuple[int, dict]], workers: int,
                 address: str | None) -> Iterator[tuple[int, tuple[str, Any]]]:
    """Yield (point index, outcome) as Ray tasks finish, on a local or an existing cluster."""
    try:
        import ray
    except ImportError:
        raise SweepError("the ray backend needs Ray: pip install 'servesim[ray]'") from None
    import logging

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = max(workers, 1)
        ray.init(**kwargs)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_point)
        cwd = os.getcwd()
        pending = {task.remote(config, cwd): index for index, config in items}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                yield pending.pop(ref), ray.get(ref)
    finally:
        if started:
            ray.shutdown()


BACKENDS = ("local", "ray")


def run_sweep(
    sweep: Sweep | str | Path | dict,
    out: str | Path,
    *,
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    overwrite: bool = False,
    progress: bool | TextIO = True,
) -> pd.DataFrame:
    """Run (or resume) a sweep into ``out``; returns the combined table sorted by point."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if backend not in BACKENDS:
        raise SweepError(f"unknown backend {backend!r} (choices: {', '.join(BACKENDS)})")
    out = Path(out)
    with _locked(out):
        _claim_folder(sweep, out, overwrite)
        return _run_points(sweep, out, workers, backend, ray_address, progress)


def _run_points(sweep: Sweep, out: Path, workers: int, backend: str, ray_address: str | None,
                progress: bool | TextIO) -> pd.DataFrame:
    """Run the points not yet ok in the claimed (and locked) folder ``out``."""
    rows = read_journal(out / JOURNAL)
    todo = [p for p in sweep.points if rows.get(p.index, {}).get("status") != "ok"]
    bar = Progress(len(sweep.points), len(sweep.points) - len(todo), progress)
    by_index = {p.index: p for p in sweep.points}
    items = [(p.index, sweep.config_dict(p)) for p in todo]
    if backend == "ray":
        results = _ray_backend(items, workers, ray_address)
    else:
        results = _local_backend(items, workers)
    try:
        for index, outcome in results:
            row = _finish_point(sweep, by_index[index], outcome, out)
            append_journal(out / JOURNAL, row)
            rows[index] = json.loads(json.dumps(row))
            write_table(sweep, rows, out)
            bar.update(row["status"] != "ok")
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # shuts the pool or Ray down when interrupted
        bar.close()
    return write_table(sweep, rows, out)


LOCK = ".lock"


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on results folder ``out`` (an flock, so a killed sweep leaves none)."""
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} exists and is not a folder")
    if out.is_dir() and not (out / MANIFEST).is_file() and any(p.name != LOCK for p in out.iterdir()):
        raise SweepError(f"{out} exists and is not a sweep results folder (no {MANIFEST}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"{out} is in use by another sweep running now; wait for it or choose another --out") \
                from None
        yield
    finally:
        os.close(fd)


def _claim_folder(sweep: Sweep, out: Path, overwrite: bool) -> None:
    """Make ``out`` this sweep's folder; refuse a folder holding anything else."""
    manifest_path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} exists and is not a folder")
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("fingerprint") != sweep.fingerprint():
            if not overwrite:
                raise SweepError(
                    f"{out} holds the results of a different sweep ({old.get('name', '?')!r}, "
                    f"{old.get('num_points', '?')} points); choose another --out or pass --overwrite to replace it")
            for child in out.iterdir():  # everything but the lock this sweep holds
                if child.name != LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    elif out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        raise SweepError(f"{out} exists and is not a sweep results folder (no {MANIFEST}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if not manifest_path.is_file():
        _write_atomic(manifest_path, json.dumps(sweep.manifest(), indent=2, default=repr) + "\n")


def _finish_point(sweep: Sweep, point: SweepPoint, outcome: tuple[str, Any], out: Path) -> dict[str, Any]:
    """Write the point's folder and return its table row."""
    from sim.tools.output import write_run

    status, payload = outcome
    folder = out / "points" / point.name
    row: dict[str, Any] = {"point": point.index}
    for key in sweep.keys:
        row[sweep.label(key)] = _cell(point.values.get(key))
    row.update(seed=point.seed, status=status, error=None, dir=f"points/{point.name}")
    if status == "ok":
        write_run(payload, folder)
        from sim.tools.capacity import offered_rps

        row["offered_rps"] = offered_rps(payload.requests)
        for key, value in payload.summary.items():
            if key not in UNREPRODUCIBLE and key not in row:
                row[key] = _cell(value)
    else:
        message, trace = payload
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "error.txt").write_text(trace)
        row["error"] = message
    return row


def _cell(value: Any) -> Any:
    """A table cell: scalars as they are, mappings and lists as JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=repr)
    return value


def read_journal(path: Path) -> dict[int, dict[str, Any]]:
    """Rows of a results journal by point (the last row of a point wins; a torn line is skipped)."""
    rows: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the tail of a killed write
        if isinstance(row, dict) and isinstance(row.get("point"), int):
            rows[row["point"]] = row
    return rows


def append_journal(path: Path, row: dict[str, Any]) -> None:
    """Append one row and fsync, so a kill loses no finished point."""
    data = json.dumps(row, sort_keys=True) + "\n"
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")  # a torn last line stays on its own line
        f.write(data.encode())
        f.flush()
        os.fsync(f.fileno())


def table_frame(sweep: Sweep, rows: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """The combined table of ``rows``: fixed column order, sorted by point index."""
    fixed = ["point"] + [sweep.label(k) for k in sweep.keys] + ["seed", "status", "error", "dir"]
    ordered = [rows[i] for i in sorted(rows)]
    metrics = sorted({k for r in ordered for k in r} - set(fixed))
    df = pd.DataFrame.from_records(ordered, columns=fixed + metrics) if ordered else pd.DataFrame(columns=fixed)
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and v != v)}
            if len(kinds) > 1:
                df[col] = [None if v is None else json.dumps(v) if not isinstance(v, str) else v for v in df[col]]
    return df.reset_index(drop=True)


def write_table(sweep: Sweep, rows: dict[int, dict[str, Any]], out: Path) -> pd.DataFrame:
    """Rewrite the combined table atomically; returns it."""
    from sim.tools.output import write_frame

    df = table_frame(sweep, rows)
    tmp = out / f".{TABLE_STEM}.tmp"
    written = write_frame(df, tmp)
    os.replace(written, out / (TABLE_STEM + written.suffix))
    return df


def table_path(out: str | Path) -> Path:
    """The combined table file of a results folder (parquet, else CSV)."""
    out = Path(out)
    for suffix in (".parquet", ".csv"):
        if (out / (TABLE_STEM + suffix)).is_file():
            return out / (TABLE_STEM + suffix)
    raise SweepError(f"no combined table in {out}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- progress


class Progress:
    """The sweep's progress: a tqdm bar of points done (terminal only, see sim.tools.progress),
    with the failures counted beside it; a resumed sweep says how many points it skips."""

    def __init__(self, total: int, done: int, stream: bool | TextIO = True):
        from sim.tools.progress import bar

        self.failed = 0
        out = sys.stderr if stream is True else (stream or None)
        if out is not None and done:
            out.write(f"sweep: resuming, {done} of {total} points already done\n")
        self.bar = bar("sweep", total=total, initial=done, unit="point", enabled=stream)

    def update(self, failed: bool) -> None:
        """Count one finished point."""
        self.failed += int(failed)
        if self.failed:
            self.bar.set_postfix_str(f"{self.failed} failed", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        """End the bar."""
        self.bar.close()


# ---------------------------------------------------------------------------- CLI


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim sweep``."""
    p = sub.add_parser("sweep", help="run a sweep file on a process pool or Ray; resumable")
    p.add_argument("sweep", help="sweep YAML file (base config + grid/zip/points + seeds)")
    p.add_argument("--out", default=None, help="results folder (default runs/<sweep name>)")
    p.add_argument("--workers", type=int, default=None, help="parallel points (default: CPU count)")
    p.add_argument("--backend", choices=BACKENDS, default="local", help="local process pool or Ray")
    p.add_argument("--ray-address", default=None, help="existing Ray cluster (default: start a local one)")
    p.add_argument("--overwrite", action="store_true", help="replace a folder holding a different sweep")
    p.add_argument("--dry-run", action="store_true", help="validate and list the points, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(handler=cmd_sweep)


SHOWN_METRICS = ("offered_rps", "goodput_rps", "slo_attainment", "ttft_p99_s", "tpot_p99_s")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Handler of ``servesim sweep``."""
    sweep = load_sweep(args.sweep)
    if args.dry_run:
        print(f"{args.sweep}: {len(sweep.points)} points, swept {', '.join(sweep.keys) or 'nothing'}")
        for p in sweep.points:
            print(f"  {p.name}  " + "  ".join(f"{sweep.label(k)}={p.values.get(k)!r}" for k in sweep.keys)
                  + f"  seed={p.seed}")
        return 0
    out = Path(args.out) if args.out else Path("runs") / sweep.name
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    table = run_sweep(sweep, out, workers=workers, backend=args.backend, ray_address=args.ray_address,
                      overwrite=args.overwrite, progress=not args.quiet)
    failed = int((table["status"] != "ok").sum())
    if not args.quiet:
        print(f"servesim sweep {args.sweep} -> {out}/  ({len(table)} points, {failed} failed)")
        shown = ["point"] + [sweep.label(k) for k in sweep.keys] + ["seed", "status"]
        shown += [m for m in SHOWN_METRICS if m in table.columns]
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 60,
                               "display.float_format", "{:.4g}".format):
            print(table[shown].to_string(index=False))
        print(f"  table: {table_path(out)}")
        for _, row in table[table["status"] != "ok"].iterrows():
            print(f"  point {row['point']} failed: {row['error']}", file=sys.stderr)
    return 1 if failed else 0
