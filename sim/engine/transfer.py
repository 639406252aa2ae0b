"""The transfer service: every KV and weight copy over the modelled shared links.

One per cluster (``cluster.transfer``). A copy runs on a ``hardware.links.SharedLink`` owned by
its source (one per source and link kind), so concurrent copies out of one replica share that
link's bandwidth equally; a lone copy of ``n`` bytes takes ``latency + n / bandwidth``.

Stop and copy (hand-offs, ``migrate(live=False)``): the request stops for the whole copy::

    src  detach, KV kept --------- copy all its KV ---------> free the KV
    dst  reserve KV                                           attach, running
         |<----------------- request stopped --------------->|

Live migration by multi-stage pre-copy (Llumnix, Sun et al., OSDI'24): the request keeps
decoding on src while the blocks it has written so far are copied; each later stage copies
the blocks written during the one before; once at most ``max_stop_blocks`` remain, it stops
at the end of its iteration, the rest is copied and it resumes on dst::

    stage 1              stage 2          last stage (<= max_stop_blocks left)
    copy blocks 0..a     copy a..b        stop, copy b..end, attach on dst
    |<------ decoding on src, dst blocks reserved stage by stage ----->|<- stopped ->|

A pre-copy stage copies only full blocks (the block being written is copied later), after
reserving them on dst. The migration aborts (dst reservation freed, request stays on src) when
``max_stages`` stages pass without reaching the last one, when the request stops decoding on
src (finished, preempted, swapped) or when dst cannot reserve a stage's blocks.

Defaults follow Llumnix's code (AlibabaPAI/llumnix, ``llumnix/config/default.py`` and
``llumlet/migration_coordinator.py``): ``max_stages`` 3, ``max_stop_blocks`` 16 and one
migration at a time per instance, in or out. Llumnix's migration bandwidth is not a constant
of its code (its default backend copies through host memory over gloo/TCP): the link is a
parameter, ``ethernet-100g`` by default. Its per-stage control messages and staging buffer
(512 blocks, one layer per round) are not modelled but for ``stage_overhead_s`` (default 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hardware.links import LinkSpec, SharedLink, get_link
from sim.engine.request import Request, State
from sim.errors import ConfigError
from sim.schema import param

if TYPE_CHECKING:
    from sim.engine.replica import Replica


@dataclass
class TransferParams:
    """Live migration (Llumnix's defaults) and the link migrations copy KV over."""

    link: str = param("ethernet-100g", doc="link migrations copy KV over (hardware.links catalog)")
    link_gbps: float | None = param(None, gt=0, doc="override the link's bandwidth, GB/s per direction")
    link_latency_s: float | None = param(None, ge=0, doc="override the link's latency")
    max_stages: int = param(3, ge=1, doc="live migration: stages before giving up (Llumnix: 3)")
    max_stop_blocks: int = param(16, ge=0, doc="live migration: stop and copy the rest when at most this "
                                 "many blocks remain (Llumnix: 16)")
    max_migrations_per_replica: int | None = param(1, ge=1, doc="migrations in or out of one replica at a time "
                                                   "(Llumnix: 1; null: no limit)")
    stage_overhead_s: float = param(0.0, ge=0, doc="fixed cost of each stage's control messages (unknown: 0)")

    def validate(self) -> None:
        try:
            get_link(self.link)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]), "link") from None


def lone_copy_s(num_bytes: float, link: SharedLink | LinkSpec) -> float:
    """Seconds ``num_bytes`` take alone on ``link``: latency + bytes / bandwidth."""
    if isinstance(link, SharedLink):
        return link.spec.latency_s + num_bytes / link.bytes_per_s
    return link.latency_s + num_bytes / (link.gbps * 1e9)


class _Migration:
    """One migration in progress."""

    __slots__ = ("req", "src", "dst", "live", "ghost", "copied_blocks", "num_stages", "num_preemptions",
                 "start_s", "stop_s", "recompute")

    def __init__(self, req: Request, src: Replica, dst: Replica, live: bool):
        self.req = req
        self.src = src
        self.dst = dst
        self.live = live
        self.ghost = Request(-1, 0.0, 0, 0)  # holds the blocks reserved on dst until the request lands
        self.copied_blocks = 0
        self.num_stages = 0
        self.num_preemptions = req.num_preemptions
        self.start_s = src.env.now
        self.stop_s = float("nan")  # when the request stopped on src
        self.recompute = False      # no copy: the request is prefilled again on dst


class TransferService:
    """Owns the cluster's links and every copy over them: hand-offs, migrations and weights."""

    def __init__(self, env: Any, params: TransferParams | None = None, replicas: list[Replica] | None = None):
        self.env = env
        self.params = params if params is not None else TransferParams()
        self.replicas = replicas if replicas is not None else []
        p = self.params
        spec = get_link(p.link)
        if p.link_latency_s is not None:
            spec = dataclasses.replace(spec, latency_s=p.link_latency_s)
        self.migration_spec = spec
        self._links: dict[tuple, SharedLink] = {}
        self._migrations: dict[int, _Migration] = {}   # request id -> its migration
        self._busy: dict[int, int] = {}                 # replica id -> migrations in or out
        self.num_copies = 0
        self.copy_bytes = 0.0
        self.num_migrations = 0
        self.stop_times_s: list[float] = []
        self.aborted: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.records: list[dict[str, Any]] = []  # one flat row per started migration, when it ends
        self.on_end: Callable[[], None] | None = None  # after each migration ends (landed or aborted)

    # ------------------------------------------------------------------ links and plain copies
    def link(self, owner: Hashable, spec: LinkSpec | str, gbps: float | None = None) -> SharedLink:
        """The outbound link of kind ``spec`` (bandwidth ``gbps`` if given) owned by ``owner`` (a
        replica id, or any key such as a storage node), made on first use."""
        if isinstance(spec, str):
            spec = get_link(spec)
        key = (owner, spec, gbps)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = SharedLink(spec, gbps=gbps)
        return link

    def migration_link(self, src: Replica) -> SharedLink:
        """The link migrations out of ``src`` copy over."""
        return self.link(src.id, self.migration_spec, self.params.link_gbps)

    @staticmethod
    def time_s(num_bytes: float, link: SharedLink | LinkSpec) -> float:
        """Seconds ``num_bytes`` take alone on ``link`` (latency + bytes / bandwidth)."""
        return lone_copy_s(num_bytes, link)

    def copy(self, num_bytes: float, link: SharedLink,
             on_done: Callable[[float, float, float], None] | None = None) -> Any:
        """Start copying ``num_bytes`` over ``link`` (e.g. weights at a cold start); returns a
        SimPy event to ``yield`` on, whose value is the copy's duration. ``on_done(start_s,
        end_s, num_bytes)`` runs as it completes (``SharedLink.transfer``)."""
        self.num_copies += 1
        self.copy_bytes += num_bytes
        return link.transfer(self.env, num_bytes, on_done)

    @staticmethod
    def kv_bytes(src: Replica, req: Request) -> float:
        """Bytes of KV ``req`` holds on ``src`` (its computed tokens)."""
        return req.num_computed_tokens * src.kv.bytes_per_block / src.kv.block_size

    # ------------------------------------------------------------------ stop and copy
    def send_kv(self, req: Request, src: Replica, handle: Any, dst: Replica, link: SharedLink,
                visible_fraction: float = 1.0, reason: str = "decode",
                on_done: Callable[[Request, Replica], None] | None = None) -> None:
        """Copy a detached request's KV (``handle`` on ``src``) to ``dst``, where its KV is already
        reserved; then free it on ``src`` and attach the request on ``dst`` (visit ``reason``).
        Only ``visible_fraction`` of the copy delays the request (copies overlapped with the
        prefill layer by layer, Splitwise). ``on_done(req, dst)`` runs after the attach."""
        self.env.process(self._send(req, src, handle, dst, link, visible_fraction, reason, on_done))

    def _send(self, req: Request, src: Replica, handle: Any, dst: Replica, link: SharedLink,
              visible_fraction: float, reason: str, on_done: Callable[[Request, Replica], None] | None):
        num_bytes = self.kv_bytes(src, req)
        self.num_copies += 1
        self.copy_bytes += num_bytes
        start = self.env.now
        yield link.transfer(self.env, num_bytes * visible_fraction)
        req.transfer_s += self.env.now - start
        src.kv.free_detached(handle)
        src.wake()
        if reason == "migrated":
            req.num_migrations += 1
        dst.attach_running(req, reason)
        if on_done is not None:
            on_done(req, dst)

    # ------------------------------------------------------------------ migration
    def find(self, request_id: int) -> tuple[Request, Replica] | None:
        """The running request ``request_id`` and its replica, or None."""
        for rep in self.replicas:
            rep.sync()
            for req in rep.running:
                if req.id == request_id:
                    return req, rep
        return None

    def migrate(self, request_id: int, dst_replica_id: int, live: bool = True, recompute: bool = False) -> bool:
        """Start moving decoding request ``request_id`` to replica ``dst_replica_id`` (``live``: by
        multi-stage pre-copy, else stop and copy; ``recompute``: at src's next iteration boundary
        its KV is freed and it joins dst's queue to be prefilled again, prompt and tokens so far,
        as a recompute preemption would). False, with the reason counted in ``refused``, when it
        cannot start; a started migration may still abort (``aborted``)."""
        m = self._check(request_id, dst_replica_id, live, recompute)
        if isinstance(m, str):
            self.refused[m] = self.refused.get(m, 0) + 1
            return False
        src, dst = m.src, m.dst
        self._migrations[request_id] = m
        for rep in (src, dst):
            self._busy[rep.id] = self._busy.get(rep.id, 0) + 1
        if recompute:
            src.at_next_boundary(lambda: self._recompute(m))
        elif live:
            self.env.process(self._pre_copy(m))
        else:
            src.at_next_boundary(lambda: self._stop(m))
        return True

    def _replica(self, replica_id: int) -> Replica | None:
        for rep in self.replicas:
            if rep.id == replica_id:
                return rep
        return None

    def _check(self, request_id: int, dst_replica_id: int, live: bool, recompute: bool = False) -> _Migration | str:
        """The migration of ``request_id`` to ``dst_replica_id``, or why it cannot start now."""
        if request_id in self._migrations:
            return "already_migrating"
        found = self.find(request_id)
        if found is None:
            return "not_running"
        req, src = found
        dst = self._replica(dst_replica_id)
        if dst is None:
            return "no_such_replica"
        if dst is src:
            return "same_replica"
        if dst.role == "prefill":
            return "dst_prefill_only"  # a prefill replica's scheduler does not decode
        if req.state != State.DECODE:
            return "not_decoding"
        limit = self.params.max_migrations_per_replica
        if limit is not None and max(self._busy.get(src.id, 0), self._busy.get(dst.id, 0)) >= limit:
            return "no_migration_slot"
        if not (dst.fits(req) if recompute else self._fits(dst, req)):
            return "dst_full"
        m = _Migration(req, src, dst, live)
        m.recompute = recompute
        return m

    @staticmethod
    def _fits(dst: Replica, req: Request, extra_blocks: int = 0) -> bool:
        """Whether ``dst`` could take ``req``'s KV and its next token now (``extra_blocks``: of
        those, already reserved there)."""
        if not dst.fits(req):
            return False
        dst.sync()
        return dst.kv.blocks_for(req.num_computed_tokens + 1) - extra_blocks <= dst.kv.num_available

    def _gone(self, m: _Migration) -> str | None:
        """Why ``m``'s request can no longer move (it stopped decoding on src), or None."""
        req = m.req
        if req.state == State.FINISHED:
            return "finished_on_src"
        if req.num_preemptions != m.num_preemptions:
            return "preempted_on_src"
        if req.replica != m.src.id or req.state != State.DECODE or req not in m.src.running:
            return "not_decoding"
        return None

    def _pre_copy(self, m: _Migration):
        """Llumnix's stages: copy what was written while the last stage copied, until little is left."""
        p, env, req, src = self.params, self.env, m.req, m.src
        kv = src.kv
        link = self.migration_link(src)
        while m.num_stages < p.max_stages:
            src.sync()
            reason = self._gone(m)
            if reason is not None:
                self._abort(m, reason)
                return
            m.num_stages += 1
            if kv.blocks_for(req.num_computed_tokens) - m.copied_blocks <= p.max_stop_blocks:
                src.at_next_boundary(lambda: self._stop(m))
                return
            num_blocks = req.num_computed_tokens // kv.block_size - m.copied_blocks  # full blocks only
            if not m.dst.reserve_kv(m.ghost, (m.copied_blocks + num_blocks) * m.dst.kv.block_size):
                self._abort(m, "dst_full")
                return
            if p.stage_overhead_s:
                yield env.timeout(p.stage_overhead_s)
            yield self.copy(num_blocks * kv.bytes_per_block, link)
            m.copied_blocks += num_blocks
        self._abort(m, "not_converged")

    def _stop(self, m: _Migration) -> None:
        """At an iteration boundary on src: stop the request and copy what is left of its KV."""
        req, src, dst = m.req, m.src, m.dst
        reason = self._gone(m)
        if reason is None and not self._fits(dst, req, m.copied_blocks):
            reason = "dst_full"
        if reason is not None:
            self._abort(m, reason)
            return
        handle = src.detach(req, "migrated")
        m.stop_s = self.env.now
        if not m.live:
            m.num_stages = 1
            dst.reserve_kv(req, 1)
            self.send_kv(req, src, handle, dst, self.migration_link(src), reason="migrated",
                         on_done=lambda _r, _d: self._landed(m))
            return
        dst.reserve_kv(m.ghost, req.num_computed_tokens + 1)  # the rest and the next token's slot
        self.env.process(self._last_stage(m, handle))

    def _recompute(self, m: _Migration) -> None:
        """At an iteration boundary on src: drop the request's KV and queue it on dst to recompute."""
        req, src, dst = m.req, m.src, m.dst
        reason = self._gone(m)
        if reason is not None:
            self._abort(m, reason)
            return
        handle = src.detach(req, "migrated")
        m.stop_s = self.env.now
        src.kv.free_detached(handle)
        src.wake()
        req.num_computed_tokens = 0
        req.num_cached_tokens = 0
        req.num_migrations += 1
        dst.enqueue(req, "migrated")
        self._landed(m)

    def _last_stage(self, m: _Migration, handle: Any):
        req, src, dst = m.req, m.src, m.dst
        num_blocks = src.kv.blocks_for(req.num_computed_tokens) - m.copied_blocks
        if self.params.stage_overhead_s:
            yield self.env.timeout(self.params.stage_overhead_s)
        yield self.copy(num_blocks * src.kv.bytes_per_block, self.migration_link(src))
        src.kv.free_detached(handle)
        src.wake()
        dst.sync()
        dst.kv.free(m.ghost)  # the blocks reserved for it become the request's own
        if not dst.reserve_kv(req, 1):
            raise RuntimeError(f"migration of request {req.id}: KV reserved on replica {dst.id} was lost")
        req.transfer_s += self.env.now - m.stop_s
        req.num_migrations += 1
        dst.attach_running(req, "migrated")
        self._landed(m)

    def _landed(self, m: _Migration) -> None:
        self.num_migrations += 1
        self.stop_times_s.append(self.env.now - m.stop_s)
        self._release(m, "migrated")

    def _abort(self, m: _Migration, reason: str) -> None:
        m.dst.kv.free(m.ghost)
        m.dst.wake()  # a decode stretch on dst planned with the reserved blocks counted ends here
        self.aborted[reason] = self.aborted.get(reason, 0) + 1
        self._release(m, reason)

    def _release(self, m: _Migration, outcome: str) -> None:
        del self._migrations[m.req.id]
        for rep in (m.src, m.dst):
            self._busy[rep.id] -= 1
        now = self.env.now
        self.records.append({
            "request": m.req.id, "src": m.src.id, "dst": m.dst.id, "live": m.live, "recompute": m.recompute,
            "outcome": outcome,
            "num_stages": m.num_stages, "num_blocks_precopied": m.copied_blocks, "start_s": m.start_s,
            "stop_s": m.stop_s, "end_s": now, "downtime_s": now - m.stop_s if outcome == "migrated" else 0.0,
        })
        if self.on_end is not None:
            self.on_end()

    # ------------------------------------------------------------------ accounting
    def end_run(self) -> None:
        """The run ends: migrations still pre-copying abort (freeing their dst reservations) with
        the reason their next stage would find, or ``run_ended``; stopped ones stay unfinished."""
        for m in list(self._migrations.values()):
            if m.req.state != State.MIGRATING:
                self._abort(m, self._gone(m) or "run_ended")

    def live_requests(self) -> list[Request]:
        """Requests stopped in a migration's last copy (on no replica), for end-of-run accounting."""
        return [m.req for m in self._migrations.values() if m.req.state == State.MIGRATING]

    def summary(self) -> dict[str, Any]:
        """Counters for the run summary."""
        stops = self.stop_times_s
        return {
            "num_link_copies": self.num_copies,
            "link_copy_bytes": self.copy_bytes,
            "num_migrations": self.num_migrations,
            "migration_stop_mean_s": sum(stops) / len(stops) if stops else float("nan"),
            "migration_stop_max_s": max(stops) if stops else float("nan"),
            "migrations_aborted_by_reason": dict(sorted(self.aborted.items())),
            "migrations_refused_by_reason": dict(sorted(self.refused.items())),
        }
