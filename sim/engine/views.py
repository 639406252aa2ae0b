"""Read-only views of requests, replicas, pools and the cluster: what policies see.

Policies never hold engine objects. A router gets a ``RequestView`` and ``ReplicaView`` s, a
scheduler a ``ReplicaOps`` (a replica view plus the named operations that change its state),
a controller a ``ClusterView``. Views are live (they read the engine's current state, exact
mid fast-forward stretch) and cost one object per request or replica, made once::

    engine object            view (policies)                  who gets it
    Request   ------------>  RequestView  (req.view)           every policy
    Replica   ------------>  ReplicaView  (rep.view)           routers, hand-offs, controllers
              ------------>  ReplicaOps   (rep.ops)            its own scheduler
    Pool      ------------>  PoolView                          build context, controllers
    Cluster   ------------>  ClusterView                       build context, controllers

A request view hides the true output length: ``view.output_tokens`` raises ``OracleError``.
A policy whose parameter block says ``oracle: true`` reads it with ``ctx.output_tokens(view)``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sim.engine.states import State
from sim.errors import ServesimError

if TYPE_CHECKING:
    from sim.engine.cluster import Cluster, Pool
    from sim.engine.replica import Replica
    from sim.engine.request import Request


class OracleError(ServesimError):
    """A policy read a request's true output length without ``oracle: true``."""


def _live(name: str, doc: str) -> property:
    """A read-only property that reads ``self._<target>.<name>`` (a C-level getter)."""
    return property(attrgetter(name), doc=doc)


# ---------------------------------------------------------------------------- requests

_REQUEST_FIELDS = {
    "id": "request id (0..N-1 in arrival order)",
    "arrival_s": "arrival time",
    "input_tokens": "prompt tokens",
    "num_output_tokens": "tokens generated so far",
    "num_computed_tokens": "tokens whose KV exists (prompt + generated)",
    "num_cached_tokens": "prompt tokens served from the prefix cache",
    "remaining_prefill_tokens": "prompt (and, after recompute, generated) tokens still to compute",
    "context_tokens": "prompt + generated tokens",
    "state": "life-cycle state (sim.engine.request.State)",
    "client": "client (tenant) name, if the trace has one",
    "app": "application name, if any",
    "session": "session id, if any",
    "slo_class": "SLO class name, if any",
    "priority": "priority (lower first)",
    "prefix_hashes": "chain of prompt-prefix ids (prefix caching)",
    "prefix_block_tokens": "tokens per prefix id",
    "ttft_slo_s": "the request's own TTFT limit, if any",
    "tpot_slo_s": "the request's own TPOT limit, if any",
    "deadline_s": "absolute end-to-end deadline, if any",
    "job": "agentic job id, if any",
    "model": "the model it names (None: its pool's)",
    "cold_start_s": "arrival until a replica could run its model (multi-model pools)",
    "num_preemptions": "times preempted",
    "num_migrations": "times moved between replicas after admission",
    "first_scheduled_s": "first time it was scheduled",
    "first_token_s": "time of its first token",
    "last_token_s": "time of its latest token",
    "replica": "id of the replica it is on",
    "pool": "name of the pool it is on",
    "kv_blocks": "private KV blocks held",
}


_DECODE = State.DECODE


class RequestView:
    """One request as policies see it: trace fields and progress, never the true output length."""

    __slots__ = ("_r",)

    def __init__(self, request: Request):
        self._r = request

    @property
    def output_tokens(self) -> int:
        raise OracleError(
            f"request {self._r.id}: the true output length is hidden from policies; a policy whose "
            "config says 'oracle: true' reads it with ctx.output_tokens(request)")

    @property
    def is_decoding(self) -> bool:
        """True while the request generates tokens (its prefill is done)."""
        return self._r.state == _DECODE

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestView) and other._r is self._r

    def __hash__(self) -> int:
        return id(self._r)

    def __repr__(self) -> str:
        r = self._r
        return f"RequestView(id={r.id}, in={r.input_tokens}, out={r.num_output_tokens}, {r.state.name})"


for _name, _doc in _REQUEST_FIELDS.items():
    setattr(RequestView, _name, _live(f"_r.{_name}", _doc))


class QueueView(Sequence):
    """A read-only, live sequence of request views over one of a replica's queues."""

    __slots__ = ("_seq",)

    def __init__(self, seq: Sequence[Request]):
        self._seq = seq

    def __len__(self) -> int:
        return len(self._seq)

    def __bool__(self) -> bool:
        return bool(self._seq)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [r.view for r in list(self._seq)[i]]
        return self._seq[i].view

    def __iter__(self) -> Iterator[RequestView]:
        for r in self._seq:
            yield r.view

    def __repr__(self) -> str:
        return f"QueueView({list(self)!r})"


# ---------------------------------------------------------------------------- KV

class KVView:
    """What a policy may know of a replica's KV cache: sizes, use and prefix hits."""

    __slots__ = ("_rep",)

    def __init__(self, replica: Replica):
        self._rep = replica

    @property
    def block_size(self) -> int:
        return self._rep.kv.block_size

    @property
    def num_blocks(self) -> int:
        """Device blocks in all."""
        return self._rep.kv.num_blocks

    @property
    def num_used_blocks(self) -> int:
        """Blocks referenced by live requests (exact mid-stretch: the stretch's KV is brought up to
        now, its token counts are not; ``ReplicaView.sync`` before reading its requests)."""
        rep = self._rep
        if rep._st_reqs is not None:  # a stretch in progress (no stretch: nothing to bring up)
            rep.sync_kv()
        return rep.kv.num_used

    def used_blocks_bounds(self) -> tuple[int, int]:
        """(lo, hi) with lo <= ``num_used_blocks`` <= hi now, without bringing a stretch in
        progress up to now where a bound is cheap (lo == hi when exact; ``Replica.kv_used_bounds``):
        for a policy that only compares a load with a threshold, reading ``num_used_blocks`` where
        the bounds do not decide."""
        rep = self._rep
        if rep._st_reqs is None:  # no stretch in progress: exact as it stands
            used = rep.kv.num_used
            return used, used
        return rep.kv_used_bounds()

    @property
    def num_free_blocks(self) -> int:
        """Blocks an allocation could obtain now (free + evictable; exact mid-stretch, as above)."""
        rep = self._rep
        if rep._st_reqs is not None:
            rep.sync_kv()
        return rep.kv.num_available

    @property
    def usage(self) -> float:
        """Share of device blocks in use."""
        return self.num_used_blocks / self._rep.kv.num_blocks

    @property
    def watermark_blocks(self) -> int:
        """Blocks kept free when admitting prefills."""
        return self._rep.kv.watermark_blocks

    @property
    def bytes_per_block(self) -> float:
        return self._rep.kv.bytes_per_block

    @property
    def max_tokens(self) -> int:
        """Tokens the whole cache holds."""
        return self._rep.max_tokens

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens."""
        return self._rep.kv.blocks_for(num_tokens)

    def blocks_needed(self, req: RequestView, num_new_tokens: int, lookahead: int = 0) -> int:
        """Blocks ``req`` must obtain to compute ``num_new_tokens`` more (plus ``lookahead`` slots)."""
        return self._rep.kv.blocks_needed(req._r, num_new_tokens, lookahead)

    def cached_prefix_tokens(self, req: RequestView) -> int:
        """Prompt tokens of ``req`` this replica's prefix cache holds now (exact mid-stretch, as above)."""
        rep = self._rep
        if rep._st_reqs is not None:  # a stretch in progress (no stretch: nothing to bring up)
            rep.sync_kv()
        return rep.kv.cached_prefix_tokens(req._r)

    def never_fits(self, req: RequestView, reserve_blocks: int = 0) -> bool:
        """True if ``req``'s prompt could not be admitted even with every block free."""
        return self._rep.kv.never_fits(req._r, reserve_blocks)

    @property
    def policy_api(self) -> Any:
        """The KV manager's own operations for the scheduler paired with it (its ``policy_api``,
        e.g. CacheOPT's reservations, taking request views), or None if it has none."""
        return getattr(self._rep.kv, "policy_api", None)


# ---------------------------------------------------------------------------- replicas

_REPLICA_FIELDS = {
    "id": "stable replica id",
    "pool": "pool name",
    "role": "pool role: mixed, prefill, decode, attention or expert",
    "lifecycle": "starting, active, draining or removed",
    "start_s": "when it was built (its GPUs are billed from here)",
    "ready_s": "when it became active (None while starting)",
    "num_outstanding": "requests assigned here and not yet done",
    "num_steps": "iterations run so far",
    "num_layers": "layers of the served model (layer cuts)",
    "cost_model": "the pool's cost model (pricing only)",
    "num_cuts": "iterations cut at a layer boundary",
}


class ReplicaView:
    """One replica as routers, hand-offs and controllers see it (read-only, live)."""

    __slots__ = ("_rep", "kv", "waiting", "running", "swapped")

    def __init__(self, replica: Replica):
        self._rep = replica
        self.kv = KVView(replica)
        self.waiting = QueueView(replica.waiting)
        self.running = _RunningView(replica)
        self.swapped = QueueView(replica.swapped)

    @property
    def num_waiting(self) -> int:
        """Requests queued here (waiting or swapped out)."""
        rep = self._rep
        return len(rep.waiting) + len(rep.swapped)

    @property
    def num_running(self) -> int:
        return len(self._rep.running)

    @property
    def num_gpus(self) -> int:
        return getattr(self._rep.cost_model, "num_gpus", 1)

    @property
    def device(self) -> str:
        """Catalog name of the device (or MIG slice)."""
        return self._rep.hardware.device if self._rep.hardware is not None else "?"

    @property
    def model(self) -> str:
        return self._rep.hardware.model if self._rep.hardware is not None else "?"

    @property
    def pending_prefill_tokens(self) -> int:
        """Prompt tokens queued or mid-prefill here that still need computing (kept incrementally;
        a mixed stretch in progress is synced first: ``MixedStretchMixin.pending_prefill_now``)."""
        rep = self._rep
        return rep.num_pending_prefill_tokens if rep._mx is None else rep.pending_prefill_now()

    def kv_demand_bounds(self, head_only: bool) -> tuple[int, int, int, int, int] | None:
        """(running, queued counted, queued blocks, lo, hi) in one read, or None while the replica
        holds no request (its KV not read): the terms of a load that counts queued demand in KV
        blocks (Llumnix's virtual usage). ``head_only``: the queue's head alone (swapped requests
        first, as they resume first), its context's blocks; else every queued request, the prompt
        tokens still to compute as blocks (``pending_prefill_tokens``) plus each swapped request's
        blocks. lo <= ``kv.num_used_blocks`` <= hi as ``KVView.used_blocks_bounds`` gives them
        (a stretch in progress not brought up to now where a bound is cheap)."""
        rep = self._rep
        kv = rep.kv
        swapped = rep.swapped
        num_running = len(rep.running)
        if head_only:
            if swapped:
                count, blocks = 1, kv.blocks_for(swapped[0].context_tokens)
            elif rep.waiting:
                head = rep.waiting[0]  # its ``context_tokens``, inlined
                count, blocks = 1, kv.blocks_for(head.input_tokens + head.num_output_tokens)
            elif not num_running:
                return None
            else:
                count = blocks = 0
        else:
            count = len(rep.waiting) + len(swapped)
            if not (count or num_running):
                return None
            blocks = kv.blocks_for(rep.num_pending_prefill_tokens if rep._mx is None else rep.pending_prefill_now())
            for r in swapped:
                blocks += kv.blocks_for(r.context_tokens)
        reqs = rep._st_reqs
        if reqs is None:  # no stretch in progress: exact as it stands
            used = kv.num_used
            return num_running, count, blocks, used, used
        if rep._spec is None and rep._mx is None and rep._thru is None \
                and getattr(kv, "allocates_by_target", False):
            # ``Replica.kv_used_bounds`` of a decode stretch, inlined (Llumnix reads every instance
            # at every arrival and every migration tick)
            used = kv.num_used
            held, last, ends = rep._st_alloc, rep._st_last, rep._st_ends_list
            now = rep.env._now
            if held >= last or ends[held - 1] >= now:
                return num_running, count, blocks, used, used
            alloc = min(bisect_left(ends, now, 0, last) + 1, last)
            return num_running, count, blocks, used, used + len(reqs) * -(-(alloc - held) // kv.block_size)
        lo, hi = rep.kv_used_bounds()
        return num_running, count, blocks, lo, hi

    def kv_stamp(self) -> tuple | None:
        """The stamp of a decode stretch in progress that ``kv_demand_bounds`` bounds without a
        sync (not cut, its KV manager allocating by target), else None: while ``kv_stamp_holds
        (stamp)``, that read's (running, queued counted, queued blocks, lo) stay as they are now
        and its hi follows ``kv_hi_until``.

        Why the stamp suffices: the stretch's end-time list and batch are new objects per stretch;
        its process sleeps until the stretch ends (``_st_reqs`` None) or is cut (``_st_cut``, which
        every enqueue, attach, KV reservation and boundary call sets); a sync or a KV view's
        ``sync_kv`` moves ``_st_alloc`` or the blocks in use, and an extension ``_st_last``."""
        rep = self._rep
        reqs = rep._st_reqs
        if reqs is None or rep._st_cut or rep._spec is not None or rep._mx is not None or rep._thru is not None:
            return None
        kv = rep.kv
        if not getattr(kv, "allocates_by_target", False):
            return None
        return reqs, rep._st_ends_list, rep._st_alloc, rep._st_last, kv.num_used

    def kv_hi_until(self, stamp: tuple, max_hi: int) -> float:
        """While ``stamp`` (``kv_stamp``, taken now) holds, the time through which the hi of
        ``kv_demand_bounds`` stays <= ``max_hi`` (-inf: it exceeds it now; inf: through the
        stretch); after it, hi > ``max_hi``. With the stamp unchanged, hi = used + len(batch) *
        ceil((alloc - held) / block size), where alloc (the iterations whose blocks are due) grows
        with the time only: alloc <= top <=> now <= ends[top - 1] (ends sorted; alloc is capped
        at the stretch's last iteration)."""
        reqs, ends, held, last, used = stamp
        room = max_hi - used
        if room < 0:
            return -math.inf
        top = held + room // len(reqs) * self._rep.kv.block_size  # the most iterations due with hi <= max_hi
        return math.inf if top >= last else ends[top - 1]

    def kv_stamp_holds(self, stamp: tuple, until: float = math.inf) -> bool:
        """Whether the stretch ``kv_stamp`` stamped goes on unchanged (see there), and it is
        ``until`` or earlier."""
        rep = self._rep
        reqs, ends, held, last, used = stamp
        return rep._st_reqs is reqs and rep._st_ends_list is ends and not rep._st_cut \
            and rep._st_alloc == held and rep._st_last == last and rep.kv.num_used == used and rep.env._now <= until

    @property
    def has_paused(self) -> bool:
        """Whether an iteration cut at a layer boundary waits to resume here."""
        return self._rep.paused is not None

    @property
    def paused_requests(self) -> list[RequestView]:
        """Requests of the cut iteration waiting to resume here."""
        p = self._rep.paused
        return [r.view for r in p.requests] if p is not None else []

    @property
    def in_gang(self) -> bool:
        """Whether this replica holds, or is asked to hold, for another replica's gang iteration."""
        rep = self._rep
        return rep.hold_request is not None or rep.held_by is not None

    def sync(self) -> None:
        """Bring a fast-forward stretch in progress up to now, so that the token counts of this
        replica's requests read exactly (cluster-wide policies reading other replicas' requests)."""
        self._rep.sync()

    def request_schedule(self) -> None:
        """Ask the replica to run its scheduler again at its next chance (it sleeps until new
        work otherwise): for cluster-wide policies whose ``holds_back`` answer changed."""
        self._rep.wake()

    @property
    def waiting_delays_s(self) -> list[float]:
        """Queueing delay so far (now - arrival) of each request here waiting for its first
        iteration, in queue order (preempted and swapped requests were scheduled already)."""
        now = self._rep.env.now
        return [now - r.arrival_s for r in self._rep.waiting if r.first_scheduled_s is None]

    @property
    def oldest_wait_s(self) -> float:
        """The longest queueing delay so far among requests waiting for their first iteration (0 if none)."""
        now, oldest = self._rep.env.now, None
        for r in self._rep.waiting:
            if r.first_scheduled_s is None and (oldest is None or r.arrival_s < oldest):
                oldest = r.arrival_s
        return 0.0 if oldest is None else now - oldest

    # multi-model replicas (sim.engine.multimodel); a single-model replica runs its pool's model
    @property
    def serving_model(self) -> str | None:
        """The model it runs now, or is switching to (None: unloaded after its keep-alive)."""
        st = getattr(self._rep, "models", None)
        return st.next_model if st is not None else self.model

    @property
    def resident_models(self) -> tuple[str, ...]:
        """Models whose weights are in its HBM, least recently used first."""
        st = getattr(self._rep, "models", None)
        return tuple(st.resident) if st is not None else (self.model,)

    @property
    def num_model_queued(self) -> int:
        """Requests assigned here that wait for it to switch to their model."""
        st = getattr(self._rep, "models", None)
        return len(st.queue) if st is not None else 0

    @property
    def queued_models(self) -> tuple[str, ...]:
        """The models of the requests waiting here for a switch, in queue order (repeats dropped)."""
        st = getattr(self._rep, "models", None)
        return tuple(dict.fromkeys(r.model for r in st.queue)) if st is not None else ()

    @property
    def is_switching(self) -> bool:
        """Whether it is switching models now."""
        st = getattr(self._rep, "models", None)
        return bool(st is not None and st.switching)

    @property
    def rho(self) -> float:
        """Share of its weight reads streamed over the host link now (0: all from HBM)."""
        st = getattr(self._rep, "models", None)
        return st.rho if st is not None and self._rep.step_hook is not None else 0.0

    @property
    def streams_weights(self) -> bool:
        """Whether its iterations stream weights over the host link (serving.stream)."""
        return self._rep.step_hook is not None and getattr(self._rep, "models", None) is not None

    @property
    def chip(self) -> tuple | None:
        """The chip whose host link and storage it shares with other replicas (multi-model pools)."""
        st = getattr(self._rep, "models", None)
        return st.chip.key if st is not None else None

    @property
    def accepts_work(self) -> bool:
        """Whether the router may send it new requests (active, not draining)."""
        return self._rep.lifecycle == "active"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplicaView) and other._rep is self._rep

    def __hash__(self) -> int:
        return id(self._rep)

    def __repr__(self) -> str:
        rep = self._rep
        return f"ReplicaView(id={rep.id}, pool={rep.pool!r}, waiting={self.num_waiting}, running={self.num_running})"


for _name, _doc in _REPLICA_FIELDS.items():
    setattr(ReplicaView, _name, _live(f"_rep.{_name}", _doc))


class _RunningView(QueueView):
    """Running requests (a live view; the replica may rebuild its list between iterations)."""

    __slots__ = ("_rep",)

    def __init__(self, replica: Replica):
        self._rep = replica

    def __len__(self) -> int:
        return len(self._rep.running)

    def __bool__(self) -> bool:
        return bool(self._rep.running)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [r.view for r in self._rep.running[i]]
        return self._rep.running[i].view

    def __iter__(self) -> Iterator[RequestView]:
        for r in self._rep.running:
            yield r.view


# ---------------------------------------------------------------------------- pools, cluster

class PoolView:
    """One pool: its name, role, hardware, cost model and replica views (live)."""

    __slots__ = ("_pool",)

    def __init__(self, pool: Pool):
        self._pool = pool

    name = _live("_pool.name", "pool name")
    role = _live("_pool.role", "mixed, prefill, decode, attention or expert")
    cost_model = _live("_pool.cost_model", "the pool's cost model (pricing only)")
    hardware = _live("_pool.config.hardware", "device, model, tp, pp and dtypes")

    @property
    def holds(self) -> PoolView | None:
        """The pool this pool's iterations hold (an attention pool's expert pool), or None."""
        held = self._pool.held
        return held.pool.view if held is not None else None

    @property
    def replicas(self) -> list[ReplicaView]:
        """Replicas of the pool that have not been removed (starting, active and draining)."""
        return [r.view for r in self._pool.replicas if r.lifecycle != "removed"]

    @property
    def active_replicas(self) -> list[ReplicaView]:
        """Replicas of the pool that serve (the router or hand-off may send them work)."""
        return [r.view for r in self._pool.replicas if r.lifecycle == "active"]

    @property
    def starting_replicas(self) -> list[ReplicaView]:
        """Replicas of the pool still in their cold start."""
        return [r.view for r in self._pool.replicas if r.lifecycle == "starting"]

    @property
    def cold_start_s(self) -> float:
        """Seconds a replica added to this pool now would take to serve."""
        from hardware.cold_start import cold_start

        pool = self._pool
        return cold_start(pool.config.cold_start, pool.cost_model, pool.config.hardware).total_s

    def __repr__(self) -> str:
        return f"PoolView({self.name!r}, role={self.role!r}, replicas={len(self.replicas)})"


class ClusterView:
    """The whole cluster as controllers and build contexts see it (live, read-only)."""

    __slots__ = ("_c",)

    def __init__(self, cluster: Cluster):
        self._c = cluster

    @property
    def now_s(self) -> float:
        return self._c.env.now

    @property
    def pools(self) -> list[PoolView]:
        return [p.view for p in self._c.pools]

    def pool(self, name: str) -> PoolView:
        for p in self._c.pools:
            if p.name == name:
                return p.view
        raise KeyError(name)

    @property
    def replicas(self) -> list[ReplicaView]:
        """Every replica not yet removed."""
        return [r.view for r in self._c.replicas if r.lifecycle != "removed"]

    @property
    def entry_replicas(self) -> list[ReplicaView]:
        """Replicas that receive new requests (mixed, prefill and attention pools, active)."""
        return list(self._c.entry_views)

    @property
    def replicas_by_pool(self) -> dict[str, list[ReplicaView]]:
        """Pool name -> its replicas not yet removed (starting, active and draining), in id order."""
        return {p.name: p.view.replicas for p in self._c.pools}

    def replica(self, replica_id: int) -> ReplicaView:
        """The replica with this id; KeyError if there is none or it was removed."""
        rep = self._c.replica_by_id[replica_id]
        if rep.lifecycle == "removed":
            raise KeyError(replica_id)
        return rep.view

    def model_switch_s(self, replica: ReplicaView, model: str) -> float:
        """Seconds ``replica`` would take to be able to run ``model`` if it switched now (0: it runs
        it; multi-model pools only)."""
        hub = self._c.models
        if hub is None or getattr(replica._rep, "models", None) is None:
            return 0.0 if model == replica.model else float("inf")
        return hub.switch_time_s(replica._rep, model)

    @property
    def num_arrived(self) -> int:
        return self._c.num_arrived

    @property
    def num_done(self) -> int:
        return self._c.num_done

    def is_migrating(self, request_id: int) -> bool:
        """Whether request ``request_id`` is being migrated now (pre-copy or last stage)."""
        return request_id in self._c.transfer._migrations

    def num_migrations_at(self, replica_id: int) -> int:
        """Migrations in progress into or out of replica ``replica_id`` (the transfer service
        admits ``cluster.transfer.max_migrations_per_replica`` at a time)."""
        return self._c.transfer._busy.get(replica_id, 0)

    @property
    def migrations_by_replica(self) -> Mapping[int, int]:
        """Replica id -> ``num_migrations_at`` (live, read-only; replicas with none may be absent):
        for a policy that asks it of every replica at every tick, one read for all."""
        return MappingProxyType(self._c.transfer._busy)

    def migration_copy_s(self, num_bytes: float) -> float:
        """Seconds ``num_bytes`` of KV take alone on the link migrations copy over (``cluster.transfer``)."""
        t = self._c.transfer
        gbps = t.params.link_gbps if t.params.link_gbps is not None else t.migration_spec.gbps
        return t.migration_spec.latency_s + num_bytes / (gbps * 1e9)

    @property
    def max_migrations_per_replica(self) -> int | None:
        """Migrations one replica may take part in at once (None: no limit)."""
        return self._c.transfer.params.max_migrations_per_replica
