"""Splitwise's push-based KV hand-off (Patel et al., ISCA'24).

``mode: default``: when a prompt finishes on a prompt machine, the request goes to the token
machine with the least scheduled memory (KV in use plus KV on its way) that can hold it.
When no token machine can, the prompt machine is borrowed into the mixed pool: the request
decodes where it is.

``mode: reference`` (with the ``splitwise`` router in ``mode: reference``): the token machine
was picked at arrival; the KV goes there whenever it differs from the machine that ran the
prompt, including from a borrowed token machine (so token-pool replicas hand off too). If
that machine cannot hold the KV now, the least-memory rule above applies.

The KV copy is overlapped with the prompt computation layer by layer, so only
``1 - overlap_fraction`` of it delays the request; the paper overlaps all but the last
layers' copy (the exact share is not given: a parameter, default 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.routers.splitwise import SplitwiseState
from sim.engine.handoff import HandoffBase, LinkOverrides
from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView
from sim.registry import HANDOFFS
from sim.schema import param


@dataclass
class SplitwiseHandoffParams(LinkOverrides):
    """Splitwise's KV link and copy overlap."""

    overlap_fraction: float = param(0.9, ge=0, lt=1, doc="share of the KV copy hidden behind the prompt's layers")
    link: str = param("ib-ndr", doc="link the KV is copied over (Splitwise: InfiniBand between machines)")
    mode: Literal["default", "reference"] = param("default", doc="reference: ship to the machine picked at arrival")


@HANDOFFS.register("splitwise")
class SplitwiseHandoff(HandoffBase):
    """Push to the token machine with the least scheduled memory, else decode in place."""

    Params = SplitwiseHandoffParams

    def __init__(self, params: SplitwiseHandoffParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.num_decoded_in_place = 0
        self.state = ctx.shared_state("splitwise", SplitwiseState)
        if params.mode == "reference":
            self.source_roles = ("prefill", "decode")

    @property
    def targets(self) -> list[ReplicaView]:
        """Token machines (mixed replicas when there is no decode pool)."""
        return self.decode_replicas or self.mixed_replicas

    def _release(self, req: RequestView) -> int | None:
        """Forget the token machine picked at arrival for ``req``; its replica id, if any."""
        choice = self.state.token_for.pop(req.id, None)
        if choice is None:
            return None
        self.state.reserved[choice[0]] -= choice[1]
        return choice[0]

    def on_prefilled(self, src: ReplicaView, req: RequestView) -> bool:
        if self.params.mode == "reference":
            chosen = self._release(req)
            if chosen == src.id:
                self.num_decoded_in_place += 1
                return False
            dst = self._active_machine(chosen)
            if dst is not None and self.fits(dst, req):
                return self._push(src, req, dst)
        elif src.role != "prefill":
            return False
        best = self.least_memory_target(req, self.targets)
        if best is None or best.id == src.id:
            self.num_decoded_in_place += 1  # the prompt machine joins the mixed pool for it
            return False
        return self._push(src, req, best)

    def _active_machine(self, replica_id: int | None) -> ReplicaView | None:
        """The active decode or prefill replica with this id (the token machine picked at arrival), or None."""
        try:
            rep = self.ctx.cluster.replica(replica_id)
        except KeyError:
            return None
        return rep if rep.lifecycle == "active" and rep.role in ("decode", "prefill") else None

    def _push(self, src: ReplicaView, req: RequestView, dst: ReplicaView) -> bool:
        handle = self.move_out(src, req)
        self.send(req, src, handle, dst, visible_fraction=1.0 - self.params.overlap_fraction)
        return True

    def on_request_done(self, replica: ReplicaView, req: RequestView) -> None:
        self._release(req)  # rejected before its prompt ended: drop the reservation

    @classmethod
    def example_config(cls) -> dict:
        """1 prompt + 2 token machines running the splitwise scheduler behind the splitwise router."""
        return {"cluster.router": "splitwise", "cluster.pools[0].scheduler.name": "splitwise",
                "cluster.pools[1].scheduler.name": "splitwise"}
