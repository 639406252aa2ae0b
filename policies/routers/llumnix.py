"""Llumnix's dispatch: each request to the freest instance by virtual usage (Sun et al., OSDI'24).

Freeness F = (M - sum of virtual usage) / batch size, from ``policies.llumnix_freeness``: running
requests count their KV blocks, queued requests their whole demand, an instance running a
high-priority request a headroom more. The request goes to the instance with the largest F
(ties: the lowest replica index), as Llumnix's ``load`` dispatch policy sends to the instance
of least ``remaining_steps`` load (AlibabaPAI/llumnix v0.1.0, ``dispatch_scheduler.py``).

Defaults:

- ``queued: all``: Llumnix's code counts every queued request's blocks when dispatching
  (``DispatchAndScalingLoadComputation``); ``head`` counts only the head of line (Algorithm 1
  of the paper, and the code's migration load).
- Priority headroom (the paper's execution priority) is off unless ``high_priority_max`` names
  the high priorities (requests with priority <= it; lower is more urgent). Its size is not a
  constant of the paper or the code: ``priority_headroom_fraction`` of the instance's blocks
  (0.5, unknown), so an instance running a high-priority request takes about half the others'
  load and decodes it faster.
- The router sees the instances' state at the moment of each arrival (the paper's global
  scheduler polls every 50 ms; the staleness is not modelled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from policies.llumnix_freeness import freeness, freeness_bounds, kv_capacity
from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.registry import ROUTERS
from sim.schema import param

_INF = math.inf
_NEG_INF = -math.inf


@dataclass
class LlumnixRouterParams:
    """How virtual usage counts queued requests and high priorities."""

    queued: str = param("all", doc="queued requests counted in virtual usage: 'all' (the code's dispatch load) or "
                                   "'head' (head of line only, the paper's Algorithm 1)")
    high_priority_max: int | None = param(None, doc="priorities <= this are high and get headroom (null: no headroom)")
    priority_headroom_fraction: float = param(0.5, ge=0, le=1, doc="headroom of an instance running a "
                                              "high-priority request, as a share of its KV blocks (unknown: 0.5)")

    def validate(self) -> None:
        if self.queued not in ("all", "head"):
            raise ConfigError(f"must be 'all' or 'head', not {self.queued!r}", "queued")


@ROUTERS.register("llumnix")
class LlumnixRouter(RouterBase):
    """The instance of greatest freeness (virtual usage per batch slot)."""

    Params = LlumnixRouterParams

    def __init__(self, params: LlumnixRouterParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._capacity: dict[int, int] = {}  # replica id -> M (fixed per replica)
        # replica id -> (stretch stamp, until, lo, hi): an instance's freeness bounds, kept while its
        # decode stretch goes on unchanged and its KV's upper bound stays as it was read (the queued
        # terms and the lower bound stay with the stamp: ``ReplicaView.kv_stamp``, ``kv_hi_until``)
        self._certs: dict[int, tuple] = {}

    def headroom_blocks(self, rep: ReplicaView) -> float:
        p = self.params
        if p.high_priority_max is None:
            return 0.0
        return p.priority_headroom_fraction * rep.kv.num_blocks

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        p = self.params
        queued, high, caps, certs = p.queued, p.high_priority_max, self._capacity, self._certs
        # bounds first (no instance's KV brought up to now): only an instance whose upper bound
        # reaches the largest lower bound can have the largest F; those get their exact F, in order
        bounds = []
        floor = None
        head_only = queued == "head"
        for rep in replicas:
            cap = caps.get(rep.id)
            if cap is None:
                cap = caps[rep.id] = kv_capacity(rep)
            if high is None:  # ``freeness_bounds`` without headroom, inlined (every instance, every arrival)
                headroom = 0.0
                cert = certs.get(rep.id)
                if rep.lifecycle == "draining":
                    lo = hi = _NEG_INF
                elif cert is not None and rep.kv_stamp_holds(cert[0], cert[1]):
                    lo, hi = cert[2], cert[3]  # kept: the same bounds as read now (see ``__init__``)
                else:
                    terms = rep.kv_demand_bounds(head_only)
                    if terms is None:  # holding no request: +inf
                        lo = hi = _INF
                    else:
                        num_running, count, blocks, used_lo, used_hi = terms
                        batch = num_running + count
                        lo, hi = (cap - float(used_hi + blocks)) / batch, (cap - float(used_lo + blocks)) / batch
                        stamp = rep.kv_stamp()
                        if stamp is not None:
                            certs[rep.id] = (stamp, rep.kv_hi_until(stamp, used_hi), lo, hi)
            else:
                headroom = self.headroom_blocks(rep)
                lo, hi = freeness_bounds(rep, queued, headroom, high, cap)
            bounds.append((rep, lo, hi, headroom, cap))
            if floor is None or lo > floor:
                floor = lo
        best, best_f = replicas[0], None
        for rep, lo, hi, headroom, cap in bounds:
            if hi < floor:
                continue  # F <= hi < some instance's F: not the freest
            f = lo if lo == hi else freeness(rep, queued, headroom, high, cap)
            if best_f is None or f > best_f:
                best, best_f = rep, f
        return best

    @classmethod
    def example_config(cls) -> dict:
        """Four replicas with small KV caches (1,000 blocks), so queues and preemptions differ by router."""
        return {"cluster.pools[0].kv.num_blocks": 1000}
