"""Transforms that add multi-tenant load on top of a trace: a heavy client (``heavy_hitter``)
and grouped interactions (``group_interactions``).

Registered in ``traces.transforms.TRANSFORMS`` like every transform (``traces/transforms.py`` says how
they compose); kept apart so that a run imports the transforms it names only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.engine.request import Request
from sim.schema import param
from traces.transforms import TRANSFORMS, Stream, Transform


@dataclass
class HeavyHitterParams:
    """Add a heavy client on top of the trace: ``rate_multiple`` x one client's rate, or bursts."""

    client: str = param("heavy", doc="name of the added client")
    rate_multiple: float = param(4.0, gt=0, doc="its rate as a multiple of one of num_other_clients' rate")
    num_other_clients: int = param(8, ge=1, doc="clients sharing the trace's own rate")
    burst_on_s: float | None = param(None, gt=0, doc="bursting: it sends only during on-periods of this length")
    burst_off_s: float = param(0.0, ge=0, doc="bursting: silent periods between on-periods")
    start_s: float = param(0.0, ge=0, doc="it starts sending at this time")


@TRANSFORMS.register("heavy_hitter")
class HeavyHitter(Transform):
    """Interleaves a heavy client's requests with the trace (which is left as it is).

    Its arrivals are Poisson at rate_multiple x (the trace's rate / num_other_clients) while it
    sends: each trace request spawns Poisson(rate_multiple / num_other_clients) copies (its
    lengths, the heavy client's name) at uniform times since the previous arrival, so the
    added load follows the trace's own rate. With bursts the rate during on-periods is raised
    so the mean stays the same. Counts ``num_heavy_hitter``."""

    Params = HeavyHitterParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        mean = p.rate_multiple / p.num_other_clients
        period = None
        if p.burst_on_s is not None:
            period = p.burst_on_s + p.burst_off_s
            mean *= period / p.burst_on_s
        self.counts["num_heavy_hitter"] = 0
        prev = None
        for req in stream:
            t = req.arrival_s
            lo = t if prev is None else prev
            prev = t
            k = int(rng.poisson(mean))
            if k:
                times = np.sort(rng.uniform(lo, t, k)) if t > lo else np.full(k, t)
                for at_s in times.tolist():
                    if at_s < p.start_s or (period is not None and (at_s - p.start_s) % period >= p.burst_on_s):
                        continue
                    self.counts["num_heavy_hitter"] += 1
                    yield Request(req.id, at_s, req.input_tokens, req.output_tokens, client=p.client,
                                  app=req.app)
            yield req


@dataclass
class GroupInteractionsParams:
    """Group each client's consecutive requests into multi-call interactions (sets ``session``)."""

    calls: int = param(3, ge=1, doc="calls per interaction (the last one of a client may have fewer)")
    max_gap_s: float | None = param(None, gt=0, doc="a longer gap between a client's calls starts a new interaction")


@TRANSFORMS.register("group_interactions")
class GroupInteractions(Transform):
    """Sets ``session`` so that every ``calls`` consecutive requests of a client form one
    interaction (open loop: the calls keep the trace's arrival times). Counts ``num_interactions``."""

    Params = GroupInteractionsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        current: dict[str | None, list] = {}  # client -> [session id, calls so far, last arrival]
        self.counts["num_interactions"] = 0
        for req in stream:
            cur = current.get(req.client)
            if cur is None or cur[1] >= p.calls or (p.max_gap_s is not None and req.arrival_s - cur[2] > p.max_gap_s):
                cur = current[req.client] = [self.counts["num_interactions"], 0, req.arrival_s]
                self.counts["num_interactions"] += 1
            req.session = cur[0]
            cur[1] += 1
            cur[2] = req.arrival_s
            yield req
