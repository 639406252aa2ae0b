"""PecSched's cluster router and the gang bookkeeping it shares with its scheduler.

PecSched (preemptive, efficient cluster scheduling for long and short requests) splits
requests at ``long_input_tokens`` (the paper: the trace's p95 input length; pass the number.
``servesim trace stats FILE --json`` prints p90/p99; the p95 of a trace file is
``numpy.percentile(lengths, 95)``, as experiments/pecsched_azure.py computes it).

Short requests go, in this order, to::

    (a) an idle replica: no long work, nothing to prefill  -> the shortest local queue
    (b) a replica decoding a long request, with spare room  -> colocate (capped tokens/GPU)
    (c) a replica busy with a long prefill (lead or helper)  -> its scheduler cuts the
        prefill at the next layer boundary, runs the short prefill, then resumes
    (d) otherwise the replica with the fewest queued prompt tokens

Long requests go to the replica with the fewest queued prompt tokens, avoiding replicas
that decode another long request. When the lead starts a long prefill its scheduler claims
helpers (``PecSchedState.claim``): as many replicas as the prompt needs
(``sp_tokens_per_replica`` each, at most ``sp_max_replicas``), free ones on the lead's node
first, then the least queued; they run the prefill sequence-parallel as a gang (see
policies/sequence_parallel.py) and are released when the iteration ends. Short decodes
leave for a small decode pool through the ``pecsched`` hand-off; long decodes stay on the
lead and are never preempted. Details the paper leaves open are parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class PecSchedParams:
    """PecSched's long/short split, colocation cap, node size and sequence parallelism."""

    long_input_tokens: int = param(ge=1, doc="prompts longer than this are long (the paper: the trace's p95)")
    max_short_tokens_per_gpu: int = param(256, ge=1, doc="colocation cap: short prefill tokens per step per GPU")
    replicas_per_node: int = param(4, ge=1, doc="replicas sharing a node (same-node helpers come first)")
    sp_tokens_per_replica: int = param(65536, ge=1, doc="a long prompt takes one replica per this many tokens")
    sp_max_replicas: int | None = param(None, ge=1, doc="most replicas in one gang (default: replicas_per_node)")
    sp_link_intra: str = param("nvlink3", doc="link between replicas of a node (hardware.links)")
    sp_link_inter: str = param("ib-hdr", doc="link between nodes (hardware.links)")
    sp_comm_overlap: float = param(1.0, ge=0, le=1, doc="share of ring communication hidden behind compute")
    sp_gather_kv: bool = param(True, doc="copy the helpers' KV slices to the lead after the prefill")


class PecSchedState:
    """Long/short classification and gang claims, shared by the router and the schedulers."""

    def __init__(self, params: PecSchedParams, replicas: Sequence[ReplicaView]):
        from hardware.links import get_link

        self.params = params
        self.replicas = list(replicas)
        self.node = {r.id: i // params.replicas_per_node for i, r in enumerate(self.replicas)}
        try:
            self.link_intra = get_link(params.sp_link_intra)
            self.link_inter = get_link(params.sp_link_inter)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]), "cluster.router.sp_link_intra") from None
        self.claims: dict[int, int] = {}  # replica id -> id of the gang lead that claimed it
        self.num_gangs = 0
        self.max_gang = params.sp_max_replicas or params.replicas_per_node

    def is_long(self, req: RequestView) -> bool:
        """True for prompts above the threshold."""
        return req.input_tokens > self.params.long_input_tokens

    def has_long_decode(self, rep: ReplicaView) -> bool:
        """Whether ``rep`` decodes a long request (never preempted, so never a helper)."""
        return any(r.is_decoding and self.is_long(r) for r in rep.running)

    def has_long_work(self, rep: ReplicaView) -> bool:
        """Whether ``rep`` holds any long request or belongs to a gang."""
        if rep.id in self.claims or rep.has_paused:
            return True
        return any(self.is_long(r) for r in rep.waiting) or any(self.is_long(r) for r in rep.running)

    def is_helper(self, rep: ReplicaView) -> bool:
        """Whether ``rep`` is claimed by another replica's gang."""
        lead = self.claims.get(rep.id)
        return lead is not None and lead != rep.id

    def gang_size(self, req: RequestView) -> int:
        """Replicas a long prompt needs."""
        return max(1, min(self.max_gang, math.ceil(req.input_tokens / self.params.sp_tokens_per_replica)))

    def claim(self, lead: ReplicaView, req: RequestView) -> list[ReplicaView]:
        """Claim ``lead`` and up to gang_size - 1 free helpers for ``req``'s prefill."""
        need = self.gang_size(req) - 1
        node = self.node.get(lead.id)
        free = [r for r in self.replicas if r.id != lead.id and r.id not in self.claims and not r.has_paused
                and not r.in_gang and not self.has_long_decode(r)]
        free.sort(key=lambda r: (self.node.get(r.id) != node, r.pending_prefill_tokens, r.id))
        helpers = free[:need]
        self.claims[lead.id] = lead.id
        for h in helpers:
            self.claims[h.id] = lead.id
        self.num_gangs += 1
        return helpers

    def release(self, lead: ReplicaView, helpers: Sequence[ReplicaView]) -> None:
        """Free a gang's replicas and wake those waiting to start a long prefill."""
        self.claims.pop(lead.id, None)
        for h in helpers:
            self.claims.pop(h.id, None)
        for rep in self.replicas:
            if rep.waiting and any(self.is_long(r) for r in rep.waiting):
                rep.request_schedule()

    def link_for(self, lead: ReplicaView, helpers: Sequence[ReplicaView]):
        """The link a gang's ring runs over: intra-node if all share the lead's node."""
        node = self.node.get(lead.id)
        return self.link_inter if any(self.node.get(h.id) != node for h in helpers) else self.link_intra


@ROUTERS.register("pecsched")
class PecSchedRouter(RouterBase):
    """Short requests: idle, colocate, preempt, shortest queue; long: fewest queued tokens."""

    Params = PecSchedParams

    def __init__(self, params: PecSchedParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._state: PecSchedState | None = None
        if ctx.cluster is not None:  # shared with the pecsched schedulers and hand-off
            self._state = ctx.shared_state("pecsched", lambda: PecSchedState(params, ctx.cluster.entry_replicas))
        self.counts = {"idle": 0, "colocate": 0, "preempt": 0, "queue": 0, "long": 0}

    @property
    def state(self) -> PecSchedState | None:
        return self._state

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        state = self._state
        if state is None:  # used without a cluster (unit tests): bind lazily to these replicas
            state = self._state = PecSchedState(self.params, replicas)
        if state.is_long(req):
            self.counts["long"] += 1
            return min(replicas, key=lambda r: (state.has_long_decode(r), state.is_helper(r),
                                                r.pending_prefill_tokens, r.id))
        idle = [r for r in replicas if not state.has_long_work(r)]
        if idle:
            best = min(idle, key=lambda r: (r.pending_prefill_tokens, r.num_waiting, r.id))
            if best.pending_prefill_tokens == 0:
                self.counts["idle"] += 1
                return best
        cap = self.params.max_short_tokens_per_gpu
        colocate = [r for r in replicas if r.id not in state.claims and not r.has_paused
                    and state.has_long_decode(r)
                    and r.pending_prefill_tokens + req.input_tokens <= cap * r.num_gpus]
        if colocate:
            self.counts["colocate"] += 1
            return min(colocate, key=lambda r: (r.pending_prefill_tokens, r.id))
        busy = [r for r in replicas if r.id in state.claims or r.has_paused]
        if busy:
            self.counts["preempt"] += 1
            return min(busy, key=lambda r: (self._short_tokens(r), r.id))
        self.counts["queue"] += 1
        return min(replicas, key=lambda r: (r.pending_prefill_tokens, r.num_waiting, r.id))

    def _short_tokens(self, rep: ReplicaView) -> int:
        """Short prompt tokens queued at ``rep`` (what a preempting short waits behind)."""
        return sum(r.input_tokens for r in rep.waiting if not self._state.is_long(r))

    @classmethod
    def example_config(cls) -> dict:
        """PecSched's router, scheduler and hand-off together: three replicas and a one-replica short-decode pool.

        Prompts over 600 tokens are long, run as gangs of up to 2 replicas and are cut at layer
        boundaries by short ones.
        """
        from sim.tools.gates import pool, synthetic

        return {
            "workload": synthetic(600, 60.0, input_tokens_max=3000),
            "cluster": {
                "router": {"name": "pecsched", "long_input_tokens": 600, "replicas_per_node": 2,
                           "sp_tokens_per_replica": 1000},
                "handoff": {"name": "pecsched"},
                "pools": [pool("main", 3, "pecsched"), pool("shortdecode", 1, role="decode")],
            },
        }
