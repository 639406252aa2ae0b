"""A run as a Chrome / Perfetto trace-event file (``output.trace_events: true`` -> trace.json).

Open it at https://ui.perfetto.dev (or chrome://tracing). One process per replica (named by
replica id and pool) with:

- track "iterations": one complete event ("X") per iteration, named by its composition
  (``prefill+decode``, ``prefill``, ``decode``), with batch size, prefill and decode tokens
  and KV blocks used as arguments;
- counters ("C"): KV blocks used, waiting and running requests, at each iteration start;
- track "moves": a complete event for each KV hand-off copy (prefill visit end -> first token
  on the decode side is not implied; its length is the request's ``transfer_s``) and an
  instant event ("i") where a request was migrated away, naming the request.

Timestamps are simulated microseconds. Size is bounded: when the iterations exceed
``max_events``, every n-th iteration is kept per replica (n the smallest that fits) and the
file's ``metadata`` says so (``sampled_every``), so a million-request run still opens.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

US = 1e6  # trace timestamps are microseconds


def _kind(prefill: int, decode: int) -> str:
    if prefill and decode:
        return "prefill+decode"
    return "prefill" if prefill else "decode"


def _replica_names(result: Any) -> dict[int, str]:
    names: dict[int, str] = {}
    visits = result.visits
    if visits is not None and len(visits):
        for rep, pool in visits[["replica", "pool"]].drop_duplicates("replica").itertuples(index=False):
            names[int(rep)] = str(pool)
    return names


def _iteration_events(steps: pd.DataFrame, every: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if every > 1:
        steps = steps[steps.groupby("replica").cumcount() % every == 0]
    cols = ("replica", "start_s", "step_s", "batch_size", "prefill_tokens", "decode_tokens", "kv_blocks_used",
            "num_waiting", "num_running")
    for rep, start, dur, batch, pre, dec, kv, waiting, running in steps[list(cols)].itertuples(index=False):
        pid, ts = int(rep), float(start) * US
        events.append({"ph": "X", "pid": pid, "tid": 0, "ts": ts, "dur": float(dur) * US,
                       "name": _kind(int(pre), int(dec)),
                       "args": {"batch_size": int(batch), "prefill_tokens": int(pre), "decode_tokens": int(dec),
                                "kv_blocks_used": int(kv)}})
        events.append({"ph": "C", "pid": pid, "ts": ts, "name": "kv_blocks_used", "args": {"blocks": int(kv)}})
        events.append({"ph": "C", "pid": pid, "ts": ts, "name": "requests",
                       "args": {"waiting": int(waiting), "running": int(running)}})
    return events


def _move_events(result: Any) -> list[dict[str, Any]]:
    visits = result.visits
    if visits is None or not len(visits):
        return []
    events: list[dict[str, Any]] = []
    transfer = result.requests.set_index("id")["transfer_s"] if "transfer_s" in result.requests else None
    for req, rep, end, left in visits[["request", "replica", "end_s", "left"]].itertuples(index=False):
        if left == "handed_off" and transfer is not None:
            dur = float(transfer.get(req, math.nan))
            if dur == dur and dur > 0:
                events.append({"ph": "X", "pid": int(rep), "tid": 1, "ts": float(end) * US, "dur": dur * US,
                               "name": f"KV hand-off r{int(req)}", "args": {"request": int(req)}})
        elif left == "migrated":
            events.append({"ph": "i", "s": "t", "pid": int(rep), "tid": 1, "ts": float(end) * US,
                           "name": f"migrated r{int(req)}", "args": {"request": int(req)}})
    return events


def trace_events(result: Any, max_events: int = 200_000) -> dict[str, Any]:
    """The trace-event document of ``result`` (needs its iteration rows: ``result.steps``)."""
    if result.steps is None:
        raise ValueError("trace events need the iteration rows: set output.trace_events (or output.record_steps)")
    steps = result.steps
    per_iteration = 3  # an iteration event and two counters
    every = max(1, math.ceil(len(steps) * per_iteration / max(1, max_events)))
    names = _replica_names(result)
    events: list[dict[str, Any]] = []
    for rep in sorted(set(int(r) for r in steps["replica"].unique()) | set(names)):
        label = f"replica {rep}" + (f" ({names[rep]})" if rep in names else "")
        events.append({"ph": "M", "pid": rep, "name": "process_name", "args": {"name": label}})
        events.append({"ph": "M", "pid": rep, "tid": 0, "name": "thread_name", "args": {"name": "iterations"}})
        events.append({"ph": "M", "pid": rep, "tid": 1, "name": "thread_name", "args": {"name": "moves"}})
    events += _iteration_events(steps, every)
    events += _move_events(result)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "metadata": {"source": "servesim", "time_unit": "simulated microseconds", "sampled_every": every,
                         "num_iterations": int(len(steps))}}


def write_trace_events(result: Any, path: str | Path, max_events: int = 200_000) -> Path:
    """Write ``trace_events(result)`` as JSON to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(trace_events(result, max_events), separators=(",", ":")))
    return path
