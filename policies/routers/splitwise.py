"""Splitwise's prompt-machine choice with borrowing (Patel et al., ISCA'24).

A new request goes to the prompt machine (``prefill`` pool replica) with the fewest pending
prompt tokens, provided that machine's queue is empty or its pending tokens plus this
prompt stay within ``max_pending_tokens``. When no prompt machine qualifies, a token
machine (``decode`` pool) is borrowed into the mixed pool: the request runs its prefill and
decode there. A borrowed machine counts as mixed while it holds requests that arrived
through borrowing, and goes back to its pool when it is idle. Pair it with the
``splitwise`` hand-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class SplitwiseRouterParams:
    """Splitwise's prompt-machine admission limit."""

    max_pending_tokens: int = param(8192, ge=1, doc="a busy prompt machine takes a prompt only under this")


@ROUTERS.register("splitwise")
class SplitwiseRouter(RouterBase):
    """Fewest pending tokens among prompt machines; borrow a token machine when all are full."""

    Params = SplitwiseRouterParams

    def __init__(self, params: SplitwiseRouterParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.num_borrowed_prompts = 0

    def token_machines(self) -> list[ReplicaView]:
        """The token machines (decode pool) that may be borrowed."""
        cluster = self.ctx.cluster
        if cluster is None:
            return []
        return [r for p in cluster.pools if p.role == "decode" for r in p.replicas if r.accepts_work]

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        limit = self.params.max_pending_tokens
        best, best_pending = None, None
        for rep in replicas:
            pending = rep.pending_prefill_tokens
            if rep.waiting and pending + req.input_tokens > limit:
                continue
            if best is None or pending < best_pending:
                best, best_pending = rep, pending
        if best is not None:
            return best
        machines = self.token_machines()
        if machines:  # borrow: the least loaded token machine runs it end to end
            self.num_borrowed_prompts += 1
            return min(machines, key=lambda r: (r.kv.num_used_blocks, r.num_outstanding))
        return min(replicas, key=lambda r: r.pending_prefill_tokens)
