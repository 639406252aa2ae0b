"""The ``trace`` workload: replay a trace file open loop, streaming, with transforms.

::

    workload:
      name: trace
      path: traces/data/azure_llm_2023_conv.csv
      format: auto                 # azure | burstgpt | mooncake | lengths | csv | jsonl
      on_error: skip               # or raise (default): malformed rows -> TraceError(file:line)
      transforms:
        - {name: window, start_s: 600, duration_s: 600}
        - {name: clip_lengths, max_context_tokens: 8192}

Length-only files need an ``arrival:`` process; on any other file ``arrival:`` replaces the
trace's own timestamps. ``rate_scale`` is applied before the transforms and
``max_requests`` after them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.engine.request import Request
from sim.errors import ConfigError, TraceError
from sim.registry import WORKLOADS
from sim.schema import param
from sim.workload import Workload
from traces.arrivals import ArrivalSpec
from traces.formats import FORMATS, LENGTH_ONLY, check_format, detect_format, resolve_path
from traces.rows import OnError, ReadContext, guarded
from traces.stream import numbered, to_requests
from traces.transforms import MaxRequests, MaxRequestsParams, Pipeline, RateScale, RateScaleParams, TransformSpec


@dataclass
class TraceParams:
    """A trace file replayed open loop."""

    path: str = param(doc="trace file (relative to the working directory or the repository)")
    format: str = param("auto", doc="auto, azure, burstgpt, mooncake, lengths, csv or jsonl")
    max_requests: int | None = param(None, ge=1, doc="stop after this many requests (after transforms)")
    rate_scale: float = param(1.0, gt=0, doc="multiply the arrival rate (before transforms)")
    on_error: OnError = param("raise", doc="malformed rows: raise (TraceError file:line) or skip and count")
    include_failed: bool = param(False, doc="BurstGPT: keep failed requests (0 response tokens)")
    arrival: ArrivalSpec | None = param(None, doc="arrival process; required for length-only files")
    transforms: list[TransformSpec] = param(default_factory=list, doc="stream transforms, in order")

    def validate(self) -> None:
        check_format(self.format)


@WORKLOADS.register("trace")
class TraceWorkload(Workload):
    """Replay a trace file's arrivals and lengths, streaming from disk."""

    Params = TraceParams

    def __init__(self, params: TraceParams):
        self.params = params
        self.path = resolve_path(params.path)
        if not self.path.is_file():
            raise ConfigError(f"trace file not found: {params.path}", "workload.path")
        try:
            self.format = detect_format(self.path) if params.format == "auto" else params.format
        except TraceError as exc:
            raise ConfigError(str(exc), "workload.format") from None
        if self.format in LENGTH_ONLY and params.arrival is None:
            raise ConfigError(
                f"{params.path} holds lengths only: set an arrival process, "
                "e.g. arrival: {name: poisson, rate_rps: 2}", "workload.arrival")
        specs = list(params.transforms)
        self.pipeline = Pipeline(specs)
        self._pre = RateScale(RateScaleParams(params.rate_scale)) if params.rate_scale != 1.0 else None
        self._post = MaxRequests(MaxRequestsParams(params.max_requests)) if params.max_requests else None
        self.counts: Counter = Counter()
        self._ctx: ReadContext | None = None

    def requests(self, rng: np.random.Generator) -> Iterator[Request]:
        p = self.params
        self.counts = Counter(num_rows_skipped=0, num_input_raised_to_1=0, num_output_raised_to_1=0)
        if self.format == "burstgpt":
            self.counts["num_failed"] = 0
        self._ctx = ctx = ReadContext(str(self.path), p.on_error, p.include_failed, self.counts)
        arrival_rng, transform_rng = rng.spawn(2)
        arrivals = p.arrival.build().iter_times(arrival_rng) if p.arrival is not None else None
        stream = to_requests(guarded(FORMATS[self.format](ctx), ctx.path), self.counts, arrivals)
        if self._pre is not None:
            stream = self._pre.apply(stream, transform_rng)
        stream = self.pipeline.apply(stream, transform_rng)
        if self._post is not None:
            stream = self._post.apply(stream, transform_rng)
        return self._not_empty(numbered(stream, self.counts))

    def _not_empty(self, stream: Iterator[Request]) -> Iterator[Request]:
        """The stream, or a TraceError when it yields nothing: a header-only file (or one whose
        rows were all skipped or filtered) would otherwise be a vacuous 0-request run."""
        n = 0
        for n, req in enumerate(stream, start=1):  # noqa: B007 - n counts the requests
            yield req
        if n == 0:
            skipped = self.counts.get("num_rows_skipped", 0)
            why = f"all {skipped} rows were skipped as malformed" if skipped else "no data rows (header only?)"
            if not skipped and self._ctx is not None and self._ctx.counts.get("num_failed"):
                why = "every row is a failed request (include_failed: true keeps them)"
            raise TraceError(str(self.path), 1, f"the trace yields no requests: {why}")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workload_format": self.format}
        for key, value in {**self.counts, **self.pipeline.counts()}.items():
            out[f"workload_{key}"] = value
        if self._ctx is not None and self._ctx.first_error:
            out["workload_first_skipped_row"] = self._ctx.first_error
        return out

