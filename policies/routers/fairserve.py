"""FairServe's front end: application-aware throttling, only when overloaded and only at the
start of an interaction (Khan et al., 2024; from the abstract, so the rule's details are
this simulator's choices, exposed as parameters).

An interaction is a request's ``job`` (agentic multi-call job), else its ``session``, else
the request alone. For each arriving request::

    its interaction already started (an earlier call was let in)  -> never throttled
    else, if the pool is overloaded and the user's recent usage
         > throttle_factor x the mean recent usage of active users  -> rejected (throttled)
    else                                                          -> the interaction starts

Overloaded: the oldest request waiting for its first iteration on some replica has waited
more than ``overload_wait_s``. Usage: each arriving request adds its size in "typical calls
of its app", (w_p x input + w_q x L_out[a]) / (w_p x L_in[a] + w_q x L_out[a]) with the
app's typical lengths from the ``fairserve`` schedulers' state (1 per call when unknown),
decayed exponentially with time constant ``usage_tau_s``; users active = seen within
3 x tau. ``interaction_aware: false`` throttles any call (the per-request rate limiting the
paper argues against: interactions then break mid-way). Requests go to the replica with the
fewest pending prefill tokens; the schedulers of each pool share one counter state (as
with the ``vtc`` router).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from policies.schedulers.vtc import ANON, ROUTER_KEY, pool_state_key
from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class FairServeRouterParams:
    """Overload signal, usage window and throttling threshold."""

    overload_wait_s: float = param(5.0, gt=0, doc="overloaded: a request waited longer than this for its first step")
    usage_tau_s: float = param(60.0, gt=0, doc="time constant of the decayed per-user usage")
    throttle_factor: float = param(2.0, gt=0, doc="throttle users above this multiple of the mean active usage")
    interaction_aware: bool = param(True, doc="throttle only first calls of interactions (false: any call)")
    input_price: float = param(1.0, ge=0, doc="w_p of the usage sizes")
    output_price: float = param(2.0, ge=0, doc="w_q of the usage sizes")


@ROUTERS.register("fairserve")
class FairServeRouter(RouterBase):
    """Throttles new interactions of over-share users while overloaded; least pending tokens."""

    Params = FairServeRouterParams

    def __init__(self, params: FairServeRouterParams, ctx: BuildContext):
        super().__init__(params, ctx)
        ctx.shared[ROUTER_KEY] = True  # the vtc / fairserve schedulers share one state per pool
        self.started: set = set()                    # interactions let in
        self.usage: dict[str, tuple[float, float]] = {}  # user -> (decayed usage, at time)
        self.num_throttled = 0
        self.num_throttled_later_calls = 0

    @staticmethod
    def interaction(req: RequestView):
        if req.job is not None:
            return ("job", req.job)
        if req.session is not None:
            return ("session", req.session)
        return ("request", req.id)

    def _size(self, req: RequestView, replicas: Sequence[ReplicaView]) -> float:
        """The request in typical calls of its app (1 when no app lengths are known)."""
        state = self.ctx.shared.get(pool_state_key(replicas[0].pool)) if replicas else None
        typical = getattr(state, "typical", None)
        if typical is None:
            return 1.0
        t_in, t_out = typical(req.app)
        p = self.params
        return (p.input_price * req.input_tokens + p.output_price * t_out) / (p.input_price * t_in
                                                                               + p.output_price * t_out)

    def _decayed(self, user: str, now: float) -> float:
        u, t = self.usage.get(user, (0.0, now))
        return u * math.exp(-(now - t) / self.params.usage_tau_s)

    def overloaded(self, replicas: Sequence[ReplicaView]) -> bool:
        """Whether some replica has a request waiting longer than ``overload_wait_s``."""
        limit = self.params.overload_wait_s
        return any(r.num_waiting and r.oldest_wait_s > limit for r in replicas)

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None:
        p = self.params
        now = self.ctx.cluster.now_s if self.ctx.cluster is not None else req.arrival_s
        user = req.client if req.client is not None else ANON
        key = self.interaction(req)
        later_call = key in self.started
        if not (later_call and p.interaction_aware) and self.overloaded(replicas):
            horizon = 3 * p.usage_tau_s
            active = [self._decayed(u, now) for u, (_x, t) in self.usage.items() if now - t <= horizon]
            mean = sum(active) / len(active) if active else 0.0
            if active and self._decayed(user, now) > p.throttle_factor * mean:
                self.num_throttled += 1
                self.num_throttled_later_calls += later_call
                return None
        self.started.add(key)
        self.usage[user] = (self._decayed(user, now) + self._size(req, replicas), now)
        return min(replicas, key=lambda r: (r.pending_prefill_tokens, r.num_outstanding, r.id))

    @classmethod
    def example_config(cls) -> dict:
        """Three FairServe replicas overloaded by one heavy user; throttling after 0.5 s waits."""
        from policies.schedulers.fairserve import FairServeScheduler
        from sim.tools.gates import pool

        data = FairServeScheduler.example_config()
        data["workload"]["rate_rps"] = 120.0
        data["cluster"]["router"] = {"name": "fairserve", "overload_wait_s": 0.5, "usage_tau_s": 5.0}
        data["cluster"]["pools"] = [pool("main", 3, "fairserve", 800)]
        return data
