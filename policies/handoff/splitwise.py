"""Splitwise's push-based KV hand-off (Patel et al., ISCA'24).

When a prompt finishes on a prompt machine, the request goes to the token machine with the
least scheduled memory (KV in use plus KV on its way) that can hold it. When no token
machine can, the prompt machine is borrowed into the mixed pool: the request decodes where
it is. The KV copy is overlapped with the prompt computation layer by layer, so only
``1 - overlap_fraction`` of it delays the request; the paper overlaps all but the last
layers' copy (the exact share is not given: a parameter, default 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@HANDOFFS.register("splitwise")
class SplitwiseHandoff(HandoffBase):
    """Push to the token machine with the least scheduled memory, else decode in place."""

    Params = SplitwiseHandoffParams

    def __init__(self, params: SplitwiseHandoffParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.num_decoded_in_place = 0

    @property
    def targets(self) -> list[ReplicaView]:
        """Token machines (mixed replicas when there is no decode pool)."""
        return self.decode_replicas or self.mixed_replicas

    def on_prefilled(self, src: ReplicaView, req: RequestView) -> bool:
        best = self.least_memory_target(req, self.targets)
        if best is None:
            self.num_decoded_in_place += 1  # the prompt machine joins the mixed pool for it
            return False
        handle = self.move_out(src, req)
        self.send(req, src, handle, best, visible_fraction=1.0 - self.params.overlap_fraction)
        return True

    @classmethod
    def example_config(cls) -> dict:
        """1 prompt + 2 token machines running the splitwise scheduler behind the splitwise router."""
        return {"cluster.router": "splitwise", "cluster.pools[0].scheduler.name": "splitwise",
                "cluster.pools[1].scheduler.name": "splitwise"}
