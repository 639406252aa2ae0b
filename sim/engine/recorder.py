"""Flat records of a run: one row per request, one per replica visit, optional rows per
iteration, ITL histogram.

Rows are appended to compact typed columns (``array``), not kept as Python objects, so a
million-request run stays small. ``requests_frame()``, ``visits_frame()`` and ``steps_frame()``
turn them into pandas DataFrames; plots and notebooks read frames, never simulator objects.

A *visit* is one stay of a request on one replica: the reason it came, start_s, end_s and how
it left (``finished``, ``rejected``, ``handed_off``, ``migrated``, or ``unfinished`` at the end)::

    came by:  router (prefill pool: prefill, else serve)   hand-off: decode   migration: migrated
    visit 1   |-- prefill on A --| handed_off
    visit 2                          (KV copy)  |-- decode on B --| migrated
    visit 3                                                  (stop) |-- migrated on C --| finished

A P/D request has a ``prefill`` visit then a ``decode`` visit; the request row keeps its last
replica (``replica``) and its first (``first_replica``).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where the frames are built, after the run
    import pandas as pd

from sim.engine.itl import ItlHistogram
from sim.engine.request import Request, State

_NAN = float("nan")

_FLOAT_COLS = ("arrival_s", "first_scheduled_s", "first_token_s", "finish_s", "itl_max_s",
               "transfer_s", "deadline_s", "ttft_slo_s", "tpot_slo_s", "cold_start_s")
_INT_COLS = ("id", "input_tokens", "output_tokens", "num_output_tokens", "replica", "first_replica",
             "num_preemptions", "num_swaps", "num_cached_tokens", "num_migrations", "priority",
             "session", "job")
_OBJ_COLS = ("state", "pool", "reject_reason", "client", "app", "slo_class", "model")


_STATE_NAMES = {State.FINISHED: "finished", State.REJECTED: "rejected"}
ROW_BUFFER = 4096  # request rows buffered as tuples before they move into the columns

# why a request came to a replica, and how it left (stored as small codes, framed as categories)
VISIT_REASONS = ("prefill", "serve", "decode", "migrated")
VISIT_ENDS = ("finished", "rejected", "handed_off", "migrated", "unfinished")
_REASON_CODE = {name: i for i, name in enumerate(VISIT_REASONS)}
_END_CODE = {name: i for i, name in enumerate(VISIT_ENDS)}


class Recorder:
    """Collects request rows, iteration rows and inter-token gaps during a run."""

    def __init__(self, record_steps: bool = False, record_token_times: bool = False):
        self.record_token_times = record_token_times
        self._floats = {c: array("d") for c in _FLOAT_COLS}
        self._ints = {c: array("q") for c in _INT_COLS}
        self._objs: dict[str, list] = {c: [] for c in _OBJ_COLS}
        self._rows_f: list[tuple] = []  # request rows not yet in the columns: floats, ints, objects
        self._rows_i: list[tuple] = []
        self._rows_o: list[tuple] = []
        self.token_times: dict[int, list[float]] = {}
        self.itl = ItlHistogram()
        self.itl_one = self.itl.add
        self.itl_weighted = self.itl.add_weighted  # (gap, weight): one gap seen by ``weight`` requests
        self._itl_singles = self.itl._singles
        self._steps: dict[str, Any] | None = None
        if record_steps:
            self._steps = {"replica": array("q"), "start_s": array("d"), "step_s": array("d"),
                          "batch_size": array("q"), "prefill_tokens": array("q"),
                          "decode_tokens": array("q"), "kv_blocks_used": array("q"),
                          "num_waiting": array("q"), "num_running": array("q")}
        self.num_done = 0
        # visit columns; an open visit is (replica, pool, reason code, start_s) by request id
        self._v_request, self._v_replica, self._v_start, self._v_end = array("q"), array("q"), array("d"), array("d")
        self._v_reason, self._v_left = array("b"), array("b")
        self._v_pool: list[str] = []
        self._open: dict[int, tuple[int, str, int, float]] = {}

    @property
    def steps(self) -> dict[str, Any] | None:
        """Per-iteration columns, or None when not recorded.

        Every replica reads this once per iteration (and once per fast-forwarded stretch) to
        decide whether to call ``on_step``: that read is also the ITL buffer's checkpoint, so a
        stepping run holds at most ``itl.flush_at`` + one iteration's gaps while ``itl_one``
        stays a bare ``array.append`` per token.
        """
        if len(self._itl_singles) >= self.itl.flush_at:
            self.itl.checkpoint()
        return self._steps

    # ------------------------------------------------------------------ hooks
    def itl_many(self, gaps: Sequence[float], weight: int) -> None:
        """Record ``weight`` copies of each gap in ``gaps``."""
        self.itl.add_many(gaps, weight)

    def on_done(self, r: Request) -> None:
        """Append the row of a finished or rejected request (buffered as tuples, moved into the
        typed columns ``ROW_BUFFER`` rows at a time, and before anything reads them)."""
        self.num_done += 1
        self.itl.checkpoint()
        self._rows_f.append((
            r.arrival_s, _NAN if r.first_scheduled_s is None else r.first_scheduled_s,
            _NAN if r.first_token_s is None else r.first_token_s, _NAN if r.finish_s is None else r.finish_s,
            r.itl_max_s, r.transfer_s, _NAN if r.deadline_s is None else r.deadline_s,
            _NAN if r.ttft_slo_s is None else r.ttft_slo_s, _NAN if r.tpot_slo_s is None else r.tpot_slo_s,
            r.cold_start_s))
        self._rows_i.append((
            r.id, r.input_tokens, r.output_tokens, r.num_output_tokens, -1 if r.replica is None else r.replica,
            -1 if r.first_replica is None else r.first_replica, r.num_preemptions, r.num_swaps,
            r.num_cached_tokens, r.num_migrations, r.priority, -1 if r.session is None else r.session,
            -1 if r.job is None else r.job))
        rows = self._rows_o
        rows.append((_STATE_NAMES.get(r.state, "unfinished"), r.pool, r.reject_reason, r.client, r.app,
                     r.slo_class, r.model))
        if len(rows) >= ROW_BUFFER:
            self._flush_rows()
        if r.token_times is not None:
            self.token_times[r.id] = r.token_times

    def _flush_rows(self) -> None:
        """Move the buffered request rows into the typed columns (``_FLOAT_COLS``, ``_INT_COLS``,
        ``_OBJ_COLS`` order): numbers through one numpy array per kind (the same float64 / int64
        values ``array.append`` would store)."""
        if not self._rows_o:
            return
        for rows, names, cols, dtype in ((self._rows_f, _FLOAT_COLS, self._floats, np.float64),
                                         (self._rows_i, _INT_COLS, self._ints, np.int64)):
            block = np.array(rows, dtype=dtype).T.copy()
            for j, c in enumerate(names):
                cols[c].frombytes(block[j].tobytes())
            rows.clear()
        objs = self._objs
        for c, values in zip(_OBJ_COLS, zip(*self._rows_o, strict=True), strict=True):
            objs[c].extend(values)
        self._rows_o.clear()

    def request_columns(self) -> tuple[dict[str, array], dict[str, array], dict[str, list]]:
        """The request columns (floats, ints, objects by name), every row done so far in them."""
        self._flush_rows()
        return self._floats, self._ints, self._objs

    def visit_open(self, r: Request, replica: Any, reason: str) -> None:
        """``r`` arrives on ``replica`` now, for ``reason`` (one of ``VISIT_REASONS``)."""
        if r.first_replica is None:
            r.first_replica = replica.id
        self._open[r.id] = (replica.id, replica.pool, _REASON_CODE[reason], replica.env.now)

    def visit_close(self, r: Request, left: str, end_s: float) -> None:
        """``r`` leaves the replica it is on at ``end_s``, as ``left`` (one of ``VISIT_ENDS``)."""
        visit = self._open.pop(r.id, None)
        if visit is not None:
            self._append_visit(r.id, visit, _END_CODE[left], end_s)

    def close_visits(self, end_s: float) -> None:
        """End of run: every visit still open ends at ``end_s`` as ``unfinished``."""
        code = _END_CODE["unfinished"]
        for rid, visit in sorted(self._open.items()):
            self._append_visit(rid, visit, code, end_s)
        self._open.clear()

    def _append_visit(self, rid: int, visit: tuple[int, str, int, float], left: int, end_s: float) -> None:
        replica, pool, reason, start_s = visit
        self._v_request.append(rid)
        self._v_replica.append(replica)
        self._v_pool.append(pool)
        self._v_reason.append(reason)
        self._v_start.append(start_s)
        self._v_end.append(end_s)
        self._v_left.append(left)

    def on_step(self, replica: Any, start_s: float, step_s: float, batch_size: int,
                prefill_tokens: int, decode_tokens: int) -> None:
        """Append one iteration row."""
        s = self._steps
        s["replica"].append(replica.id)
        s["start_s"].append(start_s)
        s["step_s"].append(step_s)
        s["batch_size"].append(batch_size)
        s["prefill_tokens"].append(prefill_tokens)
        s["decode_tokens"].append(decode_tokens)
        s["kv_blocks_used"].append(replica.kv.num_used)
        s["num_waiting"].append(replica.num_waiting)
        s["num_running"].append(replica.num_running)

    def on_planned_step(self, replica: Any, start_s: float, step_s: float, batch_size: int) -> None:
        """Append the row of a decode step of a stretch, applied after its end and before the
        stretch's last step: then nothing waited and the whole batch ran (an arrival or a
        request joining ends a stretch after its step in progress)."""
        self.on_step(replica, start_s, step_s, batch_size, 0, batch_size)
        s = self._steps
        s["num_waiting"][-1] = 0
        s["num_running"][-1] = batch_size

    def on_stretch(self, replica: Any, start_s: float, ends: np.ndarray, batch_size: int,
                   kv_used: np.ndarray, waiting_before: int = 0) -> None:
        """Append the rows of a fast-forwarded stretch, as if stepped one by one; ``waiting_before``
        requests waited through it (a blocked queue: sim/engine/blocked_stretch.py)."""
        starts = np.concatenate(([start_s], ends[:-1]))
        steps = ends - starts
        waiting_at_end = replica.num_waiting  # arrivals end a stretch, so only its last step sees any
        s = self._steps
        for k in range(len(ends)):
            self.on_step(replica, float(starts[k]), float(steps[k]), batch_size, 0, batch_size)
            s["kv_blocks_used"][-1] = int(kv_used[k])
            s["num_waiting"][-1] = waiting_at_end if k == len(ends) - 1 else waiting_before
            s["num_running"][-1] = batch_size if k < len(ends) - 1 else replica.num_running

    # ------------------------------------------------------------------ frames
    def requests_frame(self) -> pd.DataFrame:
        """One row per request, sorted by id, with derived latencies (vLLM definitions)."""
        import pandas as pd

        self._flush_rows()
        data: dict[str, Any] = {}
        for c in _INT_COLS:
            data[c] = np.frombuffer(self._ints[c], dtype=np.int64).copy()
        for c in _FLOAT_COLS:
            data[c] = np.frombuffer(self._floats[c], dtype=np.float64).copy()
        for c in _OBJ_COLS:
            data[c] = self._objs[c]
        df = pd.DataFrame(data)
        df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
        df["e2e_s"] = df["finish_s"] - df["arrival_s"]
        df["queueing_s"] = df["first_scheduled_s"] - df["arrival_s"]
        denom = (df["num_output_tokens"] - 1).where(df["num_output_tokens"] > 1)
        df["tpot_s"] = (df["finish_s"] - df["first_token_s"]) / denom
        df.loc[df["state"] != "finished", ["e2e_s", "tpot_s"]] = _NAN
        return df.sort_values("id", kind="stable").reset_index(drop=True)

    def visits_frame(self) -> pd.DataFrame:
        """One row per (request, replica it was on), sorted by request then start time."""
        import pandas as pd

        df = pd.DataFrame({
            "request": np.frombuffer(self._v_request, dtype=np.int64).copy(),
            "replica": np.frombuffer(self._v_replica, dtype=np.int64).copy(),
            "pool": self._v_pool,
            "reason": pd.Categorical.from_codes(np.frombuffer(self._v_reason, dtype=np.int8).copy(), VISIT_REASONS),
            "start_s": np.frombuffer(self._v_start, dtype=np.float64).copy(),
            "end_s": np.frombuffer(self._v_end, dtype=np.float64).copy(),
            "left": pd.Categorical.from_codes(np.frombuffer(self._v_left, dtype=np.int8).copy(), VISIT_ENDS),
        })
        return df.sort_values(["request", "start_s"], kind="stable").reset_index(drop=True)

    def steps_frame(self) -> pd.DataFrame | None:
        """One row per replica iteration, or None when not recorded."""
        import pandas as pd

        if self._steps is None:
            return None
        df = pd.DataFrame({k: np.frombuffer(v, dtype=np.int64 if v.typecode == "q" else np.float64).copy()
                           for k, v in self._steps.items()})
        return df.sort_values(["start_s", "replica"], kind="stable").reset_index(drop=True)
