"""DistServe's pull-based KV hand-off (Zhong et al., OSDI'24).

A request whose prefill finished stays on its prefill replica, holding its KV there, in one
FCFS queue. A decode replica pulls the head request only when the KV of requests already
heading its way is under ``waiting_blocks_threshold`` of its blocks and the request's KV fits;
among those it is the one with the fewest requests in progress and in flight (DistServe's
least-loaded rule). Then the KV is copied over the prefill replica's outbound link and the
prefill replica frees it. Pulls are retried whenever a decode replica frees KV or a copy ends.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from sim.engine.handoff import HandoffBase, LinkOverrides
from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView
from sim.registry import HANDOFFS
from sim.schema import param


@dataclass
class DistServeParams(LinkOverrides):
    """DistServe's decode admission threshold and the KV link."""

    waiting_blocks_threshold: float = param(0.05, ge=0, le=1, doc="pull only while in-flight KV < this share of blocks")
    link: str = param("nvlink4", doc="link the KV is copied over (hardware.links catalog; DistServe: NVLink)")


@HANDOFFS.register("distserve")
class DistServeHandoff(HandoffBase):
    """Pull-based hand-off: decode replicas take prefilled requests when they have room."""

    Params = DistServeParams

    def __init__(self, params: DistServeParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.parked: deque[tuple[RequestView, ReplicaView, Any]] = deque()
        self._inflight_count: defaultdict[int, int] = defaultdict(int)

    @property
    def targets(self) -> list[ReplicaView]:
        """Decode replicas (mixed ones when there is no decode pool)."""
        return self.decode_replicas or self.mixed_replicas

    def on_prefilled(self, src: ReplicaView, req: RequestView) -> bool:
        handle = self.move_out(src, req)
        self.parked.append((req, src, handle))
        self.pull()
        return True

    def on_request_done(self, replica: ReplicaView, req: RequestView) -> None:
        if self.parked and replica.role != "prefill":
            self.pull()

    def after_copy(self, dst: ReplicaView) -> None:
        self._inflight_count[dst.id] -= 1
        if self.parked:
            self.pull()

    def held_requests(self) -> list[RequestView]:
        return [req for req, _src, _h in self.parked]

    def on_target_added(self, replica: ReplicaView) -> None:
        if self.parked:
            self.pull()

    def pull(self) -> None:
        """Hand parked requests, in order, to decode replicas that can take them."""
        threshold = self.params.waiting_blocks_threshold
        while self.parked:
            req, src, handle = self.parked[0]
            best, best_load = None, None
            for dst in self.targets:
                if self.inflight_blocks[dst.id] > threshold * dst.kv.num_blocks:
                    continue
                if not self.fits(dst, req):
                    continue
                load = dst.num_outstanding + self._inflight_count[dst.id]
                if best is None or load < best_load:
                    best, best_load = dst, load
            if best is None:
                return
            self.parked.popleft()
            self._inflight_count[best.id] += 1
            self.send(req, src, handle, best)
