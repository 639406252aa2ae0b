"""Prefix-affinity routing, balanced against load (SGLang's cache-aware router).

If the cluster is imbalanced (outstanding requests differ by more than ``balance_abs_threshold``
and the busiest has more than ``balance_rel_threshold`` x the idlest), route to the least
loaded replica. Otherwise route to the replica holding the longest cached prefix of the
prompt when that covers at least ``cache_threshold`` of it, else to the least loaded one
(SGLang picks the replica with the smallest cache tree there; we use load, as our replicas
do not expose tree sizes). Ties go to the lowest index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param

_OUTSTANDING = attrgetter("num_outstanding")


@dataclass
class PrefixAffinityParams:
    """Defaults of SGLang's cache-aware router."""

    cache_threshold: float = param(0.5, ge=0, le=1, doc="least cached share of the prompt to follow the cache")
    balance_abs_threshold: int = param(32, ge=0, doc="outstanding-request gap that counts as imbalance")
    balance_rel_threshold: float = param(1.0001, ge=1, doc="busiest/idlest ratio that counts as imbalance")


@ROUTERS.register("prefix_affinity")
class PrefixAffinityRouter(RouterBase):
    """Longest cached prefix wins unless the load is out of balance."""

    Params = PrefixAffinityParams

    def __init__(self, params: PrefixAffinityParams, ctx: BuildContext):
        super().__init__(params, ctx)

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        p = self.params
        loads = list(map(_OUTSTANDING, replicas))
        lo, hi = min(loads), max(loads)
        least = replicas[loads.index(lo)]
        if hi - lo > p.balance_abs_threshold and hi > lo * p.balance_rel_threshold:
            return least
        if not req.prefix_hashes:
            return least
        best, best_tokens = None, 0
        for rep in replicas:
            tokens = rep.kv.cached_prefix_tokens(req)
            if tokens > best_tokens:
                best, best_tokens = rep, tokens
        if best is not None and best_tokens >= p.cache_threshold * req.input_tokens:
            return best
        return least
