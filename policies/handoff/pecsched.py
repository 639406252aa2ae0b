"""PecSched's hand-off: short decodes move to a small decode pool, long decodes stay put.

Acts on ``mixed`` (and ``prefill``) replicas. When a short request's prefill ends, its KV is
pushed to the decode-pool replica with the least KV in use (plus KV on its way) that can
hold it; when none can, it decodes where it is. A long request always decodes on the
replica that ran its prefill (PecSched never preempts or moves long decodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.engine.handoff import HandoffBase, LinkOverrides
from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView
from sim.registry import HANDOFFS
from sim.schema import param


@dataclass
class PecSchedHandoffParams(LinkOverrides):
    """The link to the short-decode pool and the long threshold."""

    link: str = param("nvlink3", doc="link the KV is copied over (hardware.links catalog)")
    long_input_tokens: int | None = param(None, ge=1,
                                          doc="long threshold (null: the pecsched router's; without it all are short)")


@HANDOFFS.register("pecsched")
class PecSchedHandoff(HandoffBase):
    """Push short requests' KV to the least-used decode replica; keep long ones in place."""

    Params = PecSchedHandoffParams
    source_roles = ("mixed", "prefill")

    def __init__(self, params: PecSchedHandoffParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.num_decoded_in_place = 0

    @property
    def router_state(self):
        """The pecsched router's shared state (its long threshold), if it runs."""
        return self.ctx.shared.get("pecsched")

    def is_long(self, req: RequestView) -> bool:
        """True for a long request (its decode never moves)."""
        if self.params.long_input_tokens is not None:
            return req.input_tokens > self.params.long_input_tokens
        return self.router_state is not None and self.router_state.is_long(req)

    def on_prefilled(self, src: ReplicaView, req: RequestView) -> bool:
        if src.role == "decode" or self.is_long(req):
            return False
        best = self.least_memory_target(req, self.decode_replicas)
        if best is None:
            self.num_decoded_in_place += 1
            return False
        handle = self.move_out(src, req)
        self.send(req, src, handle, best)
        return True

    @classmethod
    def example_config(cls) -> dict:
        """PecSched's router, scheduler and hand-off together (the pecsched router's scenario)."""
        from policies.routers.pecsched import PecSchedRouter

        return PecSchedRouter.example_config()
