"""The prefill-to-decode hand-off seam (P/D disaggregation).

A hand-off policy is registered in ``HANDOFFS`` and built as ``cls(params, cluster)``. When a
request finishes its prefill on a replica of a ``prefill`` pool (its first token is out, so
TTFT ends there), the replica calls ``on_prefilled(src, request)``; the policy decides when
and where its KV goes. ``on_request_done(replica, request)`` tells it that a replica freed
KV. This base class holds the mechanics every policy shares::

    src replica --detach (KV kept on src)--> parked / in flight --copy over link--> dst running
                                             (dst KV reserved first)            src KV freed

The copy takes bytes / bandwidth (+ latency) on the source replica's outbound link, whose
bandwidth is shared by concurrent copies; ``visible_fraction`` < 1 models copies overlapped
with the prefill layer by layer (only that share of the copy delays the request).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.engine.replica import Replica
from sim.engine.request import Request
from sim.errors import ConfigError
from sim.schema import param


@dataclass
class LinkOverrides:
    """Overrides of the catalog link a hand-off copies KV over; a policy's parameter block
    inherits these and adds its own ``link`` (a ``hardware.links`` name) with its default."""

    link_gbps: float | None = param(None, gt=0, doc="override the link's bandwidth, GB/s per direction")
    link_latency_s: float | None = param(None, ge=0, doc="override the link's latency")


def link_factory(params: Any) -> Callable[[Replica], Any]:
    """A function building one shared outbound link per source replica from ``params``
    (``link``, ``link_gbps``, ``link_latency_s``); an unknown link name is a ConfigError."""
    from hardware.links import SharedLink, get_link

    try:
        spec = get_link(params.link)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), "cluster.handoff.link") from None
    if params.link_latency_s is not None:
        spec = dataclasses.replace(spec, latency_s=params.link_latency_s)

    def make(src: Replica) -> Any:
        return SharedLink(spec, gbps=params.link_gbps)

    return make


class HandoffBase:
    """Shared mechanics: detaching, reserving, copying and attaching requests."""

    def __init__(self, params: Any, cluster: Any, make_link: Callable[[Replica], Any] | None = None):
        self.params = params
        self.cluster = cluster
        self.env = cluster.env
        self.decode_replicas = [r for p in cluster.pools if p.role == "decode" for r in p.replicas]
        self.mixed_replicas = [r for p in cluster.pools if p.role == "mixed" for r in p.replicas]
        self._links: dict[int, Any] = {}
        self._make_link = make_link if make_link is not None else link_factory(params)
        self.in_flight: dict[int, tuple[Request, Replica]] = {}
        self.inflight_blocks = {r.id: 0 for r in cluster.replicas}
        self.num_transfers = 0
        self.transfer_bytes = 0.0

    def on_prefilled(self, src: Replica, req: Request) -> bool:
        """Called at the end of ``req``'s prefill on ``src``; True if the request leaves ``src``."""
        raise NotImplementedError

    def on_request_done(self, replica: Replica, req: Request) -> None:
        """``replica`` finished or rejected ``req`` and freed its KV."""

    def live_requests(self) -> list[Request]:
        """Requests held by the hand-off (parked or being copied), for end-of-run accounting."""
        return [req for req, _dst in self.in_flight.values()]

    # ------------------------------------------------------------------ mechanics
    def link(self, src: Replica) -> Any:
        """The outbound link of ``src`` (created on first use)."""
        link = self._links.get(src.id)
        if link is None:
            link = self._links[src.id] = self._make_link(src)
        return link

    def kv_bytes(self, src: Replica, req: Request) -> float:
        """Bytes of KV ``req`` holds (its computed tokens)."""
        return req.num_computed_tokens * src.kv.bytes_per_block / src.kv.block_size

    def fits(self, dst: Replica, req: Request) -> bool:
        """Whether ``dst`` can take ``req``'s KV plus the next token now."""
        dst.sync()
        return dst.kv.blocks_for(req.num_computed_tokens + 1) <= dst.kv.num_available

    def least_memory_target(self, req: Request, targets: list[Replica]) -> Replica | None:
        """The target with the least scheduled memory (KV in use plus KV on its way) that can
        take ``req`` now (Splitwise's token-machine rule), or None."""
        best, best_mem = None, None
        for dst in targets:
            if not self.fits(dst, req):
                continue
            mem = dst.kv.num_used + self.inflight_blocks[dst.id]
            if best is None or mem < best_mem:
                best, best_mem = dst, mem
        return best

    def send(self, req: Request, src: Replica, handle: Any, dst: Replica, visible_fraction: float = 1.0) -> None:
        """Reserve ``req``'s KV on ``dst`` and start copying it there from ``src``."""
        ok = dst.reserve_kv(req, 1)
        if not ok:
            raise RuntimeError("send() called without a successful fits() check")
        self.inflight_blocks[dst.id] += dst.kv.held_blocks(req)
        self.in_flight[req.id] = (req, dst)
        self.env.process(self._copy(req, src, handle, dst, visible_fraction))

    def _copy(self, req: Request, src: Replica, handle: Any, dst: Replica, visible_fraction: float):
        num_bytes = self.kv_bytes(src, req)
        start = self.env.now
        yield self.link(src).transfer(self.env, num_bytes * visible_fraction)
        req.transfer_s += self.env.now - start
        self.num_transfers += 1
        self.transfer_bytes += num_bytes
        src.kv.free_detached(handle)
        src.wake()
        del self.in_flight[req.id]
        self.inflight_blocks[dst.id] -= dst.kv.held_blocks(req)
        dst.attach_running(req)
        self.after_copy(dst)

    def after_copy(self, dst: Replica) -> None:
        """A copy to ``dst`` finished (policies may hand over more)."""

    # ------------------------------------------------------------------ replicas joining and leaving
    def add_target(self, replica: Replica) -> None:
        """A replica became active at run time: a decode or mixed one becomes a target (the
        ``targets`` lists of the policies are these lists)."""
        self.inflight_blocks.setdefault(replica.id, 0)
        group = {"decode": self.decode_replicas, "mixed": self.mixed_replicas}.get(replica.role)
        if group is not None and replica not in group:
            group.append(replica)
        self.on_target_added(replica)

    def remove_target(self, replica: Replica) -> None:
        """A replica is draining: no more KV is sent to it (copies under way still land)."""
        for group in (self.decode_replicas, self.mixed_replicas):
            if replica in group:
                group.remove(replica)

    def on_target_added(self, replica: Replica) -> None:
        """Policies may start using a new target at once (e.g. pull parked requests)."""
