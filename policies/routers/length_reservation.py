"""A reservation baseline: long requests go to a dedicated pool (as compared in PecSched).

Requests whose prompt exceeds ``long_input_tokens`` are routed, least outstanding first, to
the replicas of the pool named ``long_pool``; all others to the remaining replicas. PecSched
sets the threshold at the trace's p95 input length; compute it with ``servesim trace stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class LengthReservationParams:
    """Where long requests go and what counts as long."""

    long_input_tokens: int = param(ge=1, doc="prompts longer than this are 'long'")
    long_pool: str = param("long", doc="name of the pool reserved for long requests")


@ROUTERS.register("length_reservation")
class LengthReservationRouter(RouterBase):
    """Long prompts to the reserved pool, short prompts to the rest; least outstanding within."""

    Params = LengthReservationParams

    def __init__(self, params: LengthReservationParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._split: tuple[list[ReplicaView], list[ReplicaView]] | None = None

    def _pools(self, replicas: Sequence[ReplicaView]) -> tuple[list[ReplicaView], list[ReplicaView]]:
        if self._split is None:
            long = [r for r in replicas if r.pool == self.params.long_pool]
            short = [r for r in replicas if r.pool != self.params.long_pool]
            if not long or not short:
                raise ConfigError(f"length_reservation needs a pool named {self.params.long_pool!r} and another pool",
                                  "cluster.router.long_pool")
            self._split = (long, short)
        return self._split

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        long, short = self._pools(replicas)
        group = long if req.input_tokens > self.params.long_input_tokens else short
        return min(group, key=lambda r: r.num_outstanding)

    @classmethod
    def example_config(cls) -> dict:
        """Three replicas plus one in a 'long' pool for prompts over 400 tokens."""
        from sim.tools.gates import pool

        return {"cluster.router.long_input_tokens": 400, "cluster.pools[0].num_replicas": 3,
                "cluster.pools[1]": pool("long", 1)}
