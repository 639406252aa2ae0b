"""The prefill-to-decode hand-off seam (P/D disaggregation).

A hand-off policy is registered in ``HANDOFFS`` and built as ``cls(params, ctx)`` like every
policy, and sees views only. When a request finishes its prefill on a replica of a
``prefill`` pool (its first token is out, so TTFT ends there), the engine calls
``on_prefilled(src, request)`` (a replica view and a request view); the policy decides when
and where its KV goes, through this base class's named operations: ``move_out`` (detach the
request, KV kept on the source) and ``send`` (reserve on the destination, copy, attach).
``on_request_done(replica, request)`` tells it that a replica freed KV. The mechanics::

    src replica --detach (KV kept on src)--> parked / in flight --copy over link--> dst running
                                             (dst KV reserved first)            src KV freed

The copy is the cluster's ``TransferService`` stop-and-copy (``sim/engine/transfer.py``): bytes /
bandwidth (+ latency) on the source replica's outbound link of the policy's kind, whose
bandwidth is shared by concurrent copies; ``visible_fraction`` < 1 models copies overlapped
with the prefill layer by layer (only that share of the copy delays the request).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sim.engine.replica import Replica
from sim.engine.request import Request
from sim.engine.seams import BuildContext, PolicyBase
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.schema import param


@dataclass
class LinkOverrides:
    """Overrides of the catalog link a hand-off copies KV over; a policy's parameter block
    inherits these and adds its own ``link`` (a ``hardware.links`` name) with its default."""

    link_gbps: float | None = param(None, gt=0, doc="override the link's bandwidth, GB/s per direction")
    link_latency_s: float | None = param(None, ge=0, doc="override the link's latency")


def link_spec(params: Any) -> tuple[Any, float | None]:
    """The link kind and bandwidth override a policy's ``params`` name (``link``, ``link_gbps``,
    ``link_latency_s``); an unknown link name is a ConfigError."""
    from hardware.links import get_link

    try:
        spec = get_link(params.link)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), "cluster.handoff.link") from None
    if params.link_latency_s is not None:
        spec = dataclasses.replace(spec, latency_s=params.link_latency_s)
    return spec, params.link_gbps


class HandoffBase(PolicyBase):
    """Shared helpers (fit checks, targets, links) and the hand-over operations: move a request
    out of its replica, reserve its KV on a destination, and the transfer service's stop-and-copy.
    Policies subclass it and work on views; the engine objects stay in here."""

    source_roles: tuple[str, ...] = ("prefill",)

    def __init__(self, params: Any, ctx: BuildContext):
        super().__init__(params, ctx)
        self.cluster = ctx.cluster._c
        self.env = self.cluster.env
        self.transfer = self.cluster.transfer
        self._link_spec, self._link_gbps = link_spec(params)
        self.in_flight: dict[int, tuple[Request, Replica]] = {}
        self.inflight_blocks: defaultdict[int, int] = defaultdict(int)
        self.num_transfers = 0
        self.transfer_bytes = 0.0

    # ------------------------------------------------------------------ what policies decide
    def on_prefilled(self, src: ReplicaView, req: RequestView) -> bool:
        """Called at the end of ``req``'s prefill on ``src``; True if the request leaves ``src``."""
        raise NotImplementedError

    def on_request_done(self, replica: ReplicaView, req: RequestView) -> None:
        """``replica`` finished or rejected ``req`` and freed its KV."""

    def after_copy(self, dst: ReplicaView) -> None:
        """A copy to ``dst`` finished (policies may hand over more)."""

    # ------------------------------------------------------------------ engine entry points
    def prefilled(self, src: Replica, req: Request) -> bool:
        """The engine's call at the end of a prefill (views handed to ``on_prefilled``)."""
        return self.on_prefilled(src.view, req.view)

    def request_done(self, replica: Replica, req: Request) -> None:
        """The engine's call when a replica finished or rejected a request."""
        self.on_request_done(replica.view, req.view)

    def held_requests(self) -> list[RequestView]:
        """Requests the policy holds itself (e.g. parked until a destination pulls them)."""
        return []

    def live_requests(self) -> list[Request]:
        """Requests held by the hand-off (parked or being copied), for end-of-run accounting."""
        return [v._r for v in self.held_requests()] + [req for req, _dst in self.in_flight.values()]

    # ------------------------------------------------------------------ views and questions
    def _pool_replicas(self, role: str) -> list[ReplicaView]:
        return [r.view for p in self.cluster.pools if p.role == role for r in p.replicas if r.lifecycle == "active"]

    @property
    def decode_replicas(self) -> list[ReplicaView]:
        """Active replicas of the decode pools."""
        return self._pool_replicas("decode")

    @property
    def mixed_replicas(self) -> list[ReplicaView]:
        """Active replicas of the mixed pools."""
        return self._pool_replicas("mixed")

    def link(self, src: ReplicaView) -> Any:
        """The outbound link of ``src`` this policy copies over (the transfer service's)."""
        return self.transfer.link(src.id, self._link_spec, self._link_gbps)

    def kv_bytes(self, src: ReplicaView, req: RequestView) -> float:
        """Bytes of KV ``req`` holds (its computed tokens)."""
        return self.transfer.kv_bytes(src._rep, req._r)

    def fits(self, dst: ReplicaView, req: RequestView) -> bool:
        """Whether ``dst`` can take ``req``'s KV plus the next token now."""
        return dst.kv.blocks_for(req.num_computed_tokens + 1) <= dst.kv.num_free_blocks

    def least_memory_target(self, req: RequestView, targets: list[ReplicaView]) -> ReplicaView | None:
        """The target with the least scheduled memory (KV in use plus KV on its way) that can
        take ``req`` now (Splitwise's token-machine rule), or None."""
        best, best_mem = None, None
        for dst in targets:
            if not self.fits(dst, req):
                continue
            mem = dst.kv.num_used_blocks + self.inflight_blocks[dst.id]
            if best is None or mem < best_mem:
                best, best_mem = dst, mem
        return best

    # ------------------------------------------------------------------ operations
    def move_out(self, src: ReplicaView, req: RequestView) -> Any:
        """Take ``req`` off ``src`` (its KV stays there until the copy is done); returns the handle
        ``send`` needs."""
        return src._rep.detach(req._r)

    def send(self, req: RequestView, src: ReplicaView, handle: Any, dst: ReplicaView,
             visible_fraction: float = 1.0) -> None:
        """Reserve ``req``'s KV on ``dst`` and start copying it there from ``src``."""
        r, s_rep, d_rep = req._r, src._rep, dst._rep
        if not d_rep.reserve_kv(r, 1):
            raise RuntimeError("send() called without a successful fits() check")
        self.inflight_blocks[dst.id] += d_rep.kv.held_blocks(r)
        self.in_flight[r.id] = (r, d_rep)
        self.transfer.send_kv(r, s_rep, handle, d_rep, self.link(src), visible_fraction,
                              on_done=lambda q, d: self._copied(q, s_rep, d))

    def _copied(self, req: Request, src: Replica, dst: Replica) -> None:
        self.num_transfers += 1
        self.transfer_bytes += self.transfer.kv_bytes(src, req)
        del self.in_flight[req.id]
        self.inflight_blocks[dst.id] -= dst.kv.held_blocks(req)
        self.after_copy(dst.view)

    # ------------------------------------------------------------------ replicas joining and leaving
    def add_target(self, replica: Replica) -> None:
        """A replica became active at run time (the targets lists are live: this only lets the
        policy act on it at once)."""
        self.on_target_added(replica.view)

    def remove_target(self, replica: Replica) -> None:
        """A replica is draining: it is no longer active, so no target list shows it; copies
        under way still land."""

    def on_target_added(self, replica: ReplicaView) -> None:
        """Policies may start using a new target at once (e.g. pull parked requests)."""
