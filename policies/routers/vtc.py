"""VTC across replicas: one set of client counters per pool, and dispatch by them.

The VTC paper (Sheng et al., OSDI'24) schedules one server; with several replicas the
fairness state has to be global or a heavy client is served fairly on each replica but not
overall. This router makes the ``vtc`` schedulers of every pool share one ``VTCState``
(counters, queued counts, in-flight charges; see policies/schedulers/vtc.py), so a client's
service anywhere in the pool raises the one counter that orders its admissions everywhere.

Dispatch (a choice of this simulator; the paper has no multi-replica dispatcher): send a
request of client u to the replica where the least queued prompt work would be admitted
before it under VTC, i.e. the fewest prompt tokens queued by clients whose counter is at
most c_u (``vtc_order: true``); ties, or ``vtc_order: false``, by the fewest pending prefill
tokens, then outstanding requests, then lowest id. With replicas running other schedulers
it acts as the least-pending-tokens router.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.schedulers.vtc import ANON, ROUTER_KEY, VTCState, pool_state_key
from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class VTCRouterParams:
    """Whether dispatch looks at the counters, or only balances pending tokens."""

    vtc_order: bool = param(True, doc="count only prompt work queued by clients at or below this client's counter")


@ROUTERS.register("vtc")
class VTCRouter(RouterBase):
    """Shares VTC counters across each pool's replicas; dispatches by work ahead in VTC order."""

    Params = VTCRouterParams

    def __init__(self, params: VTCRouterParams, ctx: BuildContext):
        super().__init__(params, ctx)
        ctx.shared[ROUTER_KEY] = True  # the vtc schedulers then bind one state per pool

    def _ahead(self, state: VTCState | None, rep: ReplicaView, client: str, mine: float) -> int:
        if state is None:
            return 0
        per = state.queued_tokens.get(rep.id)
        if not per:
            return 0
        counters = state.counters
        return sum(t for k, t in per.items() if t and counters.get(k, 0.0) <= mine)

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        if not self.params.vtc_order:
            return _least_pending(replicas)
        client = req.client if req.client is not None else ANON
        shared = self.ctx.shared
        states: dict[str, VTCState | None] = {}
        mine: dict[str, float] = {}
        for r in replicas:
            if r.pool not in states:
                state = states[r.pool] = shared.get(pool_state_key(r.pool))
                # counters matter only while something is queued (then settle them: exact)
                if state is not None and any(state.queued.values()):
                    state.settle()
                    state.fresh_for = req.id
                    mine[r.pool] = state.lifted(client)

        if not mine:  # nothing queued anywhere: every ``ahead`` is 0
            return _least_pending(replicas)

        def key(r: ReplicaView) -> tuple:
            c = mine.get(r.pool)
            ahead = 0 if c is None else self._ahead(states[r.pool], r, client, c)
            return (ahead, r.pending_prefill_tokens, r.num_outstanding, r.id)

        return min(replicas, key=key)

    @classmethod
    def example_config(cls) -> dict:
        """Four VTC replicas behind the router, eight clients, one sending half the requests."""
        from sim.tools.gates import pool, router_default

        data = router_default("vtc")
        data["cluster"]["pools"] = [pool("main", 4, "vtc")]
        data["workload"]["transforms"] = [
            {"name": "assign_clients", "num_clients": 8, "weights": [7, 1, 1, 1, 1, 1, 1, 1]}]
        return data


def _least_pending(replicas: Sequence[ReplicaView]) -> ReplicaView:
    """``min(replicas, key=lambda r: (r.pending_prefill_tokens, r.num_outstanding, r.id))`` in one
    pass that reads ``num_outstanding`` only on a tie of pending tokens (ids are unique)."""
    best = replicas[0]
    best_pending, best_out = best.pending_prefill_tokens, None
    for r in replicas[1:]:
        pending = r.pending_prefill_tokens
        if pending < best_pending:
            best, best_pending, best_out = r, pending, None
        elif pending == best_pending:
            if best_out is None:
                best_out = best.num_outstanding
            out = r.num_outstanding
            if out < best_out or (out == best_out and r.id < best.id):
                best, best_out = r, out
    return best
