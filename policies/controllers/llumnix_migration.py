"""Llumnix's migration: pair the least free instances with the freest and live-migrate a request
between each pair (Sun et al., OSDI'24; AlibabaPAI/llumnix v0.1.0).

Every ``period_s`` (50 ms, the code's ``POLLING_INTERVAL`` with ``PAIR_MIGRATION_FREQUENCY`` 1),
per pool, from each instance's freeness F (``policies.llumnix_freeness``, the head of line
counting its whole demand and a draining instance -inf)::

    sources       F < migrate_out_threshold (3), least free first; draining ones always
    destinations  active, F > migrate_out_threshold, freest first
    pair          the i-th source with the i-th destination ('defrag_constrained', the code's
                  pairing with virtual usage on); 'balanced' also skips a pair unless the
                  destination stays above the threshold with the request and the pair's gap
                  in F shrinks without flipping (the code's pairing without virtual usage)
    request       on the source, a decoding request not migrating now: the lowest priority,
                  then the shortest sequence ('SR', the code's default), that fits the destination
    action        Migrate(request, destination, live=True): multi-stage pre-copy by the transfer
                  service (stages copy what the last one wrote while the request decodes; the
                  last stage, <= 16 blocks, stops it; aborted after 3 stages)

An instance takes part in one migration at a time (Llumnix's ``MAX_MIGRATION_CONCURRENCY`` 1, the
transfer service's ``max_migrations_per_replica``): busy instances are left out of the pairing.
The B of F counts the instance's batch; an instance with nothing on it is infinitely free.
Queued (not yet prefilled) requests are not migrated: the transfer service moves decoding ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policies.llumnix_freeness import freeness, freeness_bounds, kv_capacity, usage_terms
from sim.engine.seams import Action, BuildContext, ControllerBase, Migrate
from sim.engine.views import ClusterView, ReplicaView, RequestView
from sim.errors import ConfigError
from sim.registry import CONTROLLERS
from sim.schema import param

_INF = math.inf
_NEG_INF = -math.inf


@dataclass
class LlumnixMigrationParams:
    """Period, threshold, pairing and request choice of Llumnix's migration."""

    pools: list[str] = param(default_factory=list, doc="pools to balance (empty: every mixed or decode pool)")
    period_s: float = param(0.05, gt=0, doc="seconds between pairings (Llumnix: 50 ms)")
    migrate_out_threshold: float = param(3.0, doc="instances with freeness below this migrate out (Llumnix: 3)")
    pairing: str = param("defrag_constrained", doc="'defrag_constrained' (pair in order) or 'balanced' "
                                                   "(only pairs that narrow the gap)")
    request_order: str = param("SR", doc="which request leaves: 'SR' shortest running, 'LR' longest, "
                                         "'LCR' last admitted (lowest priority first in each)")
    queued: str = param("head", doc="queued requests in virtual usage: 'head' (paper) or 'all'")
    live: bool = param(True, doc="live pre-copy (true) or stop and copy")
    high_priority_max: int | None = param(None, doc="priorities <= this are high and get headroom (null: none)")
    priority_headroom_fraction: float = param(0.5, ge=0, le=1, doc="headroom as a share of KV blocks (unknown: 0.5)")

    def validate(self) -> None:
        if self.pairing not in ("defrag_constrained", "balanced"):
            raise ConfigError(f"must be 'defrag_constrained' or 'balanced', not {self.pairing!r}", "pairing")
        if self.request_order not in ("SR", "LR", "LCR"):
            raise ConfigError(f"must be 'SR', 'LR' or 'LCR', not {self.request_order!r}", "request_order")
        if self.queued not in ("all", "head"):
            raise ConfigError(f"must be 'all' or 'head', not {self.queued!r}", "queued")


@CONTROLLERS.register("llumnix_migration")
class LlumnixMigration(ControllerBase):
    """Every 50 ms, live-migrate one request from each overloaded instance to a free one."""

    Params = LlumnixMigrationParams

    def __init__(self, params: LlumnixMigrationParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.check_pool_names(params.pools, ctx)
        self.num_pairs = 0
        self._capacity: dict[int, int] = {}  # replica id -> M (fixed per replica)
        self._certs: dict[int, tuple] = {}  # replica id -> (stretch stamp, source after, destination)

    def _f(self, rep: ReplicaView) -> float:
        p = self.params
        return freeness(rep, p.queued, self._headroom(rep), p.high_priority_max)

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        pools = self.params.pools or [p.name for p in cluster.pools if p.role in ("mixed", "decode")]
        actions: list[Action] = []
        limit = cluster.max_migrations_per_replica
        p = self.params
        f = self._f if p.high_priority_max is not None else None  # else no headroom: freeness itself
        busy = cluster.migrations_by_replica if limit is not None else None
        for name in pools:
            reps = [r for r in cluster.pool(name).replicas
                    if r.lifecycle in ("active", "draining") and (busy is None or busy.get(r.id, 0) < limit)]
            if len(reps) < 2 or not self._may_pair(reps, now_s):
                continue
            free = self._ranked(reps) if f is None else [(f(r), r) for r in reps]
            actions.extend(self._pair(cluster, free))
        return actions

    def _may_pair(self, reps: list[ReplicaView], now_s: float) -> bool:
        """False when the freeness bounds prove ``_pair`` finds no source or no destination
        among ``reps`` (most ticks): then no instance's KV needs bringing up to now.

        Each instance's verdicts (source by its lower bound, destination by its upper) are kept
        with the stamp of its decode stretch (``ReplicaView.kv_stamp``, ``kv_hi_until``): while
        the stretch goes on unchanged its destination verdict stays and it turns a source exactly
        after the time its hi passes the largest one that leaves it none, so an instance is read
        again only when its stretch changed (a tick then decides exactly as reading every one)."""
        p = self.params
        if p.high_priority_max is not None:
            return self._may_pair_headroom(reps)
        # ``freeness_bounds`` without headroom, inlined (every instance at every tick)
        thr, head_only, caps, certs = p.migrate_out_threshold, p.queued == "head", self._capacity, self._certs
        src = dst = False
        for r in reps:
            if r.lifecycle != "active":  # draining: F = -inf, a source if it runs anything
                if not src and r.num_running:
                    if dst:
                        return True
                    src = True
                continue
            cert = certs.get(r.id)
            if cert is not None and r.kv_stamp_holds(cert[0]):
                if not src and now_s > cert[1]:
                    if dst:
                        return True
                    src = True
                if not dst and cert[2]:
                    if src:
                        return True
                    dst = True
                continue
            terms = r.kv_demand_bounds(head_only)
            if terms is None:  # F = +inf: a destination
                if not dst:
                    if src:
                        return True
                    dst = True
                continue
            num_running, count, blocks, lo, hi = terms
            cap = float(caps.get(r.id) or self._cap(r))
            batch = num_running + count
            is_dst = (cap - float(lo + blocks)) / batch > thr
            stamp = r.kv_stamp() if num_running and math.isfinite(thr) else None
            if stamp is not None:
                # the largest hi that leaves it no source, by the same arithmetic (monotone in hi;
                # a finite threshold: each loop ends within a step or two of the estimate)
                top = math.floor(cap - blocks - thr * batch)
                while (cap - float(top + blocks)) / batch < thr:
                    top -= 1
                while not (cap - float(top + 1 + blocks)) / batch < thr:
                    top += 1
                # a source now stays one (hi only grows with the stamp)
                certs[r.id] = (stamp, r.kv_hi_until(stamp, top) if hi <= top else _NEG_INF, is_dst)
            if not src and num_running and (cap - float(hi + blocks)) / batch < thr:
                if dst:
                    return True
                src = True
            if not dst and is_dst:
                if src:
                    return True
                dst = True
        return False

    def _ranked(self, reps: list[ReplicaView]) -> list[tuple[float, ReplicaView]]:
        """(F, instance) for the instances ``_pair`` can pair, F exact: the same pairs as from
        every instance's F, with fewer instances brought up to now (no headroom).

        Why: ``_pair`` pairs the k = min(sources, destinations) least free sources with the k
        freest destinations. From the bounds (lo <= F <= hi; lo == hi: F itself, as the router
        takes it) an instance's side is known unless a bound straddles the threshold (then F is
        read); a source whose lo exceeds the k-th smallest hi among sources has k sources
        strictly less free, so it is not among the k (likewise a destination whose hi is below
        the k-th largest lo), and F is read only for the others. The side with k members stays
        whole, so ``_pair``'s zip still stops at k."""
        p = self.params
        thr, head_only, queued, caps = p.migrate_out_threshold, p.queued == "head", p.queued, self._capacity
        srcs, dsts = [], []
        for r in reps:
            cap = caps.get(r.id) or self._cap(r)
            active = r.lifecycle == "active"
            terms = r.kv_demand_bounds(head_only) if active else None
            if not active:
                lo = hi = _NEG_INF
            elif terms is None:
                lo = hi = _INF
            else:
                num_running, count, blocks, used_lo, used_hi = terms
                batch = num_running + count
                lo, hi = (cap - float(used_hi + blocks)) / batch, (cap - float(used_lo + blocks)) / batch
            running = r.num_running
            if lo != hi and ((running and lo < thr <= hi) or (active and lo <= thr < hi)):
                lo = hi = freeness(r, queued, 0.0, None, cap)  # its side is not known from the bounds
            if running and hi < thr:
                srcs.append((lo, hi, r, cap))
            elif active and lo > thr:
                dsts.append((lo, hi, r, cap))
        k = min(len(srcs), len(dsts))
        if not k:
            return []
        src_cut = sorted(x[1] for x in srcs)[k - 1]
        dst_cut = sorted((x[0] for x in dsts), reverse=True)[k - 1]
        return [(lo if lo == hi else freeness(r, queued, 0.0, None, cap), r)
                for lo, hi, r, cap in srcs + dsts if (lo <= src_cut if hi < thr else hi >= dst_cut)]

    def _may_pair_headroom(self, reps: list[ReplicaView]) -> bool:
        """``_may_pair`` with a priority headroom, through ``freeness_bounds``."""
        p = self.params
        thr, high, queued = p.migrate_out_threshold, p.high_priority_max, p.queued
        caps = self._capacity
        src = dst = False
        for r in reps:
            if src and r.lifecycle != "active":
                continue  # can be neither a destination nor tell more
            lo, hi = freeness_bounds(r, queued, self._headroom(r), high, caps.get(r.id) or self._cap(r))
            if not src and lo < thr and r.num_running:
                if dst:
                    return True
                src = True
            if not dst and hi > thr and r.lifecycle == "active":
                if src:
                    return True
                dst = True
        return False

    def _headroom(self, rep: ReplicaView) -> float:
        """The headroom blocks of ``rep`` in its freeness (0 without high priorities)."""
        p = self.params
        return p.priority_headroom_fraction * rep.kv.num_blocks if p.high_priority_max is not None else 0.0

    def _cap(self, rep: ReplicaView) -> int:
        """M of ``rep``, kept (fixed per replica)."""
        cap = self._capacity[rep.id] = kv_capacity(rep)
        return cap

    def _pair(self, cluster: ClusterView, free: list[tuple[float, ReplicaView]]) -> list[Action]:
        p = self.params
        thr = p.migrate_out_threshold
        srcs = [x for x in free if x[0] < thr and x[1].num_running]
        if not srcs:
            return []  # no pair: nothing to sort (most ticks, at light or at saturating load)
        dsts = [x for x in free if x[0] > thr and x[1].lifecycle == "active"]
        if not dsts:
            return []
        srcs.sort(key=lambda x: (x[0], x[1].id))
        dsts.sort(key=lambda x: (-x[0], x[1].id))
        actions: list[Action] = []
        for (f_src, src), (f_dst, dst) in zip(srcs, dsts, strict=False):
            req = self._choose(cluster, src, dst)
            if req is None:
                continue
            if p.pairing == "balanced" and not self._narrows(src, dst, f_src, f_dst, req):
                continue
            self.num_pairs += 1
            actions.append(Migrate(req.id, dst.id, live=p.live))
        return actions

    def _choose(self, cluster: ClusterView, src: ReplicaView, dst: ReplicaView) -> RequestView | None:
        """The request to move from ``src``: decoding, not migrating, fitting ``dst`` now."""
        order = self.params.request_order
        src.sync()  # its requests' token counts, exact mid-stretch (KV views bring only the KV up to now)
        room = dst.kv.num_free_blocks
        best, best_key = None, None
        for i, r in enumerate(src.running):
            if not r.is_decoding or cluster.is_migrating(r.id) or dst.kv.blocks_for(r.context_tokens + 1) > room:
                continue
            size = r.context_tokens
            # lowest priority first (a larger number is less urgent), then the order's own key
            key = (-r.priority, size if order == "SR" else -size if order == "LR" else -i, r.id)
            if best_key is None or key < best_key:
                best, best_key = r, key
        return best

    def _narrows(self, src: ReplicaView, dst: ReplicaView, f_src: float, f_dst: float, req: RequestView) -> bool:
        """Llumnix's balanced pairing: dst stays above the threshold and the gap shrinks, not flips."""
        blocks = src.kv.blocks_for(req.context_tokens)
        cap_d, use_d, b_d = self._terms(dst)
        f_dst_after = (cap_d - use_d - blocks) / (b_d + 1)
        if f_dst_after < self.params.migrate_out_threshold:
            return False
        if math.isinf(f_dst):
            return True
        if math.isinf(f_src):  # draining: always empty it
            return True
        cap_s, use_s, b_s = self._terms(src)
        f_src_after = (cap_s - use_s + blocks) / (b_s - 1) if b_s > 1 else math.inf
        return 0 < f_dst_after - f_src_after < f_dst - f_src

    def _terms(self, rep: ReplicaView) -> tuple[float, float, int]:
        p = self.params
        return usage_terms(rep, p.queued, self._headroom(rep), p.high_priority_max)

    @classmethod
    def example_config(cls) -> dict:
        """Llumnix's router and migration on four replicas with small KV caches (1,000 blocks) that
        fill up unevenly; KV copied over a 50 GB/s link."""
        return {
            "workload.num_requests": 500, "workload.rate_rps": 15.0,
            "workload.input_tokens_max": 2048, "workload.output_tokens_max": 512,
            "cluster.router": {"name": "llumnix"},
            "cluster.transfer": {"link": "ib-ndr"},
            "cluster.pools[0].num_replicas": 4,
            "cluster.pools[0].cost_model": {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2.0e-05,
                                            "kv_bytes_per_token": 131072.0},
            "cluster.pools[0].kv.num_blocks": 1000,
            "cluster.controllers": [{"name": "llumnix_migration"}],
        }
