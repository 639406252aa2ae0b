"""The cluster: pools of replicas, the router in front, the arrival process and controllers.

Built from a ``SimulationConfig`` on one SimPy Environment. Requests enter through the
router, which sees the replicas of the entry pools (role ``mixed`` or ``prefill``); a
request that can never fit any of them is rejected with a reason, never dropped.
Controllers are periodic processes that act on the whole cluster (migration, scaling).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import simpy

from sim.config import PoolConfig, SimulationConfig
from sim.engine.actions import apply_actions
from sim.engine.clock import ARRIVAL, CONTROL, at
from sim.engine.frontend import make_frontend
from sim.engine.held_pool import HeldPool
from sim.engine.lifecycle import ClusterLifecycleMixin
from sim.engine.load_index import EntryViews
from sim.engine.recorder import Recorder
from sim.engine.replica import Replica
from sim.engine.request import Request, State
from sim.engine.seams import BuildContext, RouterBase, Scheduler, is_oracle
from sim.engine.transfer import TransferService
from sim.engine.views import ClusterView, PoolView, ReplicaView
from sim.errors import ConfigError


class Pool:
    """Replicas sharing a role, a device type and policies."""

    def __init__(self, config: PoolConfig, cost_model: Any, where: str, speculator: Any = None):
        self.config = config
        self.where = where                  # its config path, for errors
        self.name = config.name
        self.role = config.role
        self.replicas: list[Replica] = []
        self.cost_model = cost_model
        self.speculator = speculator
        self.held = None                    # the HeldPool its iterations hold (attention pools)
        self.view = PoolView(self)


def build_cost_model(pool: PoolConfig, where: str) -> Any:
    """The pool's cost model, with errors placed at the pool's config path."""
    try:
        return pool.cost_model.build(pool.hardware)
    except ConfigError as exc:
        raise ConfigError(exc.message, f"{where}.{exc.where}" if exc.where else where, exc.file) from None


def _picks_ahead(router: Any) -> Any:
    """The router's ``min_requests_before``, or None where it keeps the default (which knows
    nothing: its 0 would bound every replica's stretches by the next arrival anywhere)."""
    method = getattr(type(router), "min_requests_before", None)
    if method is None or method is RouterBase.min_requests_before:
        return None
    return router.min_requests_before


class Cluster(ClusterLifecycleMixin):
    """Everything one run simulates, wired on one Environment.

    Every policy is built as ``cls(params, ctx)`` with a ``BuildContext`` of its own (its own
    rng stream spawned from the run's seed, in build order, so runs repeat) and sees only
    views. Replica ids are stable: a counter, never reused, also across added replicas.
    Replicas are added, drained and removed at run time by ``sim.engine.lifecycle``.
    """

    def __init__(self, config: SimulationConfig, workload: Any, recorder: Recorder, seeds: np.random.SeedSequence):
        self.config = config
        self.env = simpy.Environment()
        self.recorder = recorder
        self.workload = workload
        child = seeds.spawn(5)  # the first four as before the predictor stream was added
        self.workload_rng = np.random.default_rng(child[0])
        router_seed = child[1]
        self._policy_seeds = child[2]
        controller_seeds = child[3]
        self.view = ClusterView(self)
        self.shared: dict[str, Any] = {}  # cluster-wide policy state (BuildContext.shared)
        self.predictor = None
        if config.cluster.predictor is not None:  # before every policy: they get it in their context
            spec = config.cluster.predictor
            self.predictor = spec.build(BuildContext(rng=np.random.default_rng(child[4]), cluster=self.view,
                                                     shared=self.shared, oracle=True, where="cluster.predictor"))
        self.pools: list[Pool] = []
        self.replicas: list[Replica] = []
        self.replica_by_id: dict[int, Replica] = {}
        self.frontends: dict = {}  # replica id -> its serving front end (sim/engine/frontend.py), if its stack has one
        self._next_replica_id = 0
        for i, pool_cfg in enumerate(config.cluster.pools):
            self.pools.append(self._build_pool(pool_cfg, f"cluster.pools[{i}]"))
        self._wire_held_pools()
        self.transfer = TransferService(self.env, config.cluster.transfer, self.replicas)  # every KV / weight copy
        self.models = None  # multi-model pools (sim.engine.multimodel), only when one has a serving block
        if any(p.config.serving is not None for p in self.pools):
            from sim.engine.multimodel import ModelHub

            self.models = ModelHub(self)
        self.entry_views: list[ReplicaView] = EntryViews()  # with an incremental least-outstanding index
        self.refresh_entry()
        if not self.entry_views:
            raise ConfigError("no pool with role 'mixed' or 'prefill' to receive requests", "cluster.pools")
        self.router = config.cluster.router.build(
            self.context(np.random.default_rng(router_seed), config.cluster.router.params, "cluster.router"))
        self._picks_ahead = _picks_ahead(self.router)
        self.handoff = None
        if config.cluster.handoff is not None:
            spec = config.cluster.handoff
            self.handoff = spec.build(self.context(None, spec.params, "cluster.handoff"))
            for rep in self.replicas:
                self.wire_handoff(rep)
        self.controllers = []
        for k, (spec, s) in enumerate(zip(config.cluster.controllers,
                                          controller_seeds.spawn(len(config.cluster.controllers)), strict=True)):
            self.controllers.append(spec.build(self.context(np.random.default_rng(s), spec.params,
                                                            f"cluster.controllers[{k}]")))
        self.num_arrived = 0
        self.num_done = 0
        self.arrivals_exhausted = False
        self._num_scheduled = 0  # closed-loop arrivals scheduled but not yet dispatched
        self._stream: Iterator[Request] | None = None  # the open-loop arrival stream
        self._held: Request | None = None  # taken from the stream, waiting for its arrival time
        self._ahead: deque[Request] = deque()  # taken from the stream after _held (peeked by arrival_bound_s)
        self.truncated = False  # the run stopped at engine.max_time_s with requests outstanding
        self._thru_sync = False  # a replica's stretches may go on through finishes: sync before routing (start)
        self.num_not_arrived = 0  # requests of the workload that had not arrived at the cut
        self.all_done = self.env.event()
        self._show_progress = config.engine.progress and sys.stderr.isatty()
        self._bar: Any = None
        self._init_lifecycle()
        self.transfer.on_end = self.check_draining  # a replica draining may be empty once a migration ends

    # ------------------------------------------------------------------ building
    def context(self, rng: np.random.Generator | None, params: Any, where: str,
                pool: Pool | None = None) -> BuildContext:
        """A policy's build context (a fresh rng stream when ``rng`` is None)."""
        if rng is None:
            rng = np.random.default_rng(self._policy_seeds.spawn(1)[0])
        return BuildContext(
            rng=rng, cluster=self.view, pool=pool.view if pool is not None else None,
            cost_model=pool.cost_model if pool is not None else None,
            hardware=pool.config.hardware if pool is not None else None,
            shared=self.shared, predictor=self.predictor, oracle=is_oracle(params), where=where)

    def _build_pool(self, cfg: PoolConfig, where: str) -> Pool:
        cost_model = build_cost_model(cfg, where)
        pool = Pool(cfg, cost_model, where)
        if cfg.speculation is not None:
            pool.speculator = cfg.speculation.build(
                self.context(None, cfg.speculation.params, f"{where}.speculation", pool))
        for _ in range(cfg.num_replicas):
            self.new_replica(pool)
        return pool

    def _wire_held_pools(self) -> None:
        """Give each attention pool (and its replicas) the expert pool its iterations hold."""
        by_name = {p.name: p for p in self.pools}
        services = {}
        for pool in self.pools:
            hold = pool.config.holds
            if hold is None:
                continue
            target = by_name[hold.pool]
            if not hasattr(target.cost_model, "held_time_s"):
                raise ConfigError(f"pool {target.name!r}'s cost model cannot price held steps (no held_time_s)",
                                  f"{target.where}.cost_model")
            try:
                target.cost_model.held_time_s(1, 0)
            except ConfigError as exc:
                raise ConfigError(exc.message, f"{target.where}.{exc.where}" if exc.where else target.where) from None
            if target.name not in services:
                services[target.name] = HeldPool(self.env, target, hold.batching)
            pool.held = services[target.name]
            for rep in pool.replicas:
                rep.hold_pool(pool.held)

    def new_replica(self, pool: Pool) -> Replica:
        """Build one replica of ``pool`` (KV manager, scheduler, its own rng streams) with the
        next stable id."""
        cfg, where = pool.config, pool.where
        try:
            ctx = self.context(None, cfg.kv.params, f"{where}.kv", pool)
            sizing = getattr(pool.speculator, "kv_cost_model", None)
            if sizing is not None:  # a draft model on the same GPUs takes its share of the KV memory
                ctx.cost_model = sizing(ctx.cost_model)
            kv = cfg.kv.build(ctx)
        except ConfigError as exc:
            raise ConfigError(exc.message, f"{where}.{exc.where}" if exc.where else where) from None
        if kv.num_blocks < 1:
            raise ConfigError(
                f"no room for the KV cache: {cfg.hardware.model} on {cfg.hardware.device} "
                f"(tp={cfg.hardware.tp}, pp={cfg.hardware.pp}) leaves 0 blocks", where)
        scheduler = cfg.scheduler.build(self.context(None, cfg.scheduler.params, f"{where}.scheduler", pool))
        if not isinstance(scheduler, Scheduler):
            raise ConfigError(f"scheduler {cfg.scheduler.name!r} lacks the scheduler protocol (schedule, wants_cut, "
                              "may_resume, holds_back): subclass policies.schedulers.base.SchedulerBase",
                              f"{where}.scheduler.name")
        if cfg.kv.params is not None and getattr(cfg.kv.params, "preemption_mode", None) == "swap" \
                and not getattr(scheduler, "supports_swap", False):
            raise ConfigError(f"scheduler {cfg.scheduler.name!r} preempts by recompute only (it never swaps a "
                              "request back in): use preemption_mode: recompute, or a scheduler that swaps "
                              "(vllm, sarathi, splitfuse, strict_priority)", f"{where}.kv.preemption_mode")
        accept_rng = np.random.default_rng(self._policy_seeds.spawn(1)[0]) if pool.speculator is not None else None
        rid = self._next_replica_id
        self._next_replica_id += 1
        replica = Replica(self.env, rid, cfg.name, cfg.role, scheduler, kv, pool.cost_model, self.recorder,
                          fast_forward=self.config.engine.fast_forward, speculator=pool.speculator,
                          accept_rng=accept_rng, hardware=cfg.hardware)
        replica.on_done = self._on_done
        replica.arrival_bound = partial(self.arrival_bound_s, replica)
        if pool.held is not None:
            replica.hold_pool(pool.held)
        self.replicas.append(replica)
        self.replica_by_id[rid] = replica
        frontend = make_frontend(self.env, pool.cost_model, partial(self._frontend_release, replica))
        if frontend is not None:
            self.frontends[rid] = frontend
        pool.replicas.append(replica)
        return replica

    def arrival_bound_s(self, rep: Replica) -> float | None:
        """A time before which no new arrival can reach ``rep``, or None (a replica bounds its
        decode stretches' pricing with it: sim/engine/fast_path.py). While ``rep`` is the only
        replica the router sees: the next open-loop arrival's. Among several, for a router that
        tells ``min_requests_before`` (k) and while only it places requests on replicas that do
        not change (no controllers, hand-off or models): the arrival time of the request k
        places after the next one in the stream (infinity if the stream ends first), peeked into
        ``_ahead`` (the stream alone draws from the workload rng, so taking requests early
        changes no draw; they are dispatched in order at their times all the same). A replica
        with a serving front end: the earlier of that bound and its front end's next release
        (a request routed later reaches it no earlier than it is routed)."""
        if self.frontends and rep.id in self.frontends:
            bound = self._arrival_bound_s(rep)
            release = self.frontends[rep.id].next_release_s()
            return bound if bound is None or release is None or bound <= release else release
        return self._arrival_bound_s(rep)

    def _arrival_bound_s(self, rep: Replica) -> float | None:
        held = self._held
        if held is None or self._num_scheduled or self.models is not None:
            return None
        views = self.entry_views
        if len(views) == 1:
            return held.arrival_s if views[0]._rep is rep else None
        picks = self._picks_ahead
        if picks is None or self.controllers or self.handoff is not None or rep.view not in views:
            return None
        k = picks(rep.view, views)
        if not k:
            return held.arrival_s
        ahead = self._ahead
        while len(ahead) < k:
            req = next(self._stream, None)
            if req is None:
                return float("inf")
            ahead.append(req)
        return ahead[k - 1].arrival_s

    def wire_handoff(self, rep: Replica) -> None:
        """A hand-off acts on prefill replicas, or on the roles its ``source_roles`` names."""
        if self.handoff is not None and rep.role in self.handoff.source_roles:
            rep.on_prefilled = self.handoff.prefilled

    def refresh_entry(self) -> None:
        """Recompute the replicas the router sees (active replicas of mixed and prefill pools)."""
        self.entry_views[:] = [r.view for p in self.pools if p.role in ("mixed", "prefill", "attention")
                               for r in p.replicas if r.lifecycle == "active"]
        fits = [r.max_tokens for p in self.pools if p.role in ("mixed", "prefill", "attention") for r in p.replicas
                if r.lifecycle in ("active", "starting")]
        self.max_fit_tokens = max(fits) if fits else 0

    # ------------------------------------------------------------------ processes
    def start(self) -> None:
        """Start the arrival process and the controllers."""
        # one replica that nothing but the arrivals reads (and each syncs it first, ``dispatch``):
        # its decode stretches may go on through finishes in one wait (sim/engine/thru_finish.py)
        alone = (len(self.replicas) == 1 and not self.controllers and self.handoff is None and self.models is None
                 and self.predictor is None and not getattr(self.workload, "closed_loop", False)
                 and self.recorder.steps is None)
        self._thru_sync = False
        for rep in self.replicas:
            if rep.thru_alone is None:
                rep.thru_alone = alone
            self._thru_sync |= bool(rep.thru_alone) and rep.fast_forward
        if getattr(self.workload, "closed_loop", False):
            for req in self.workload.initial_requests(self.workload_rng):
                self._schedule_arrival(req)
            self.arrivals_exhausted = True
        else:
            self._stream = self.workload.requests(self.workload_rng)
            # arrivals are callbacks, not a process: the first runs where the process would start
            at(self.env, self.env.now, ARRIVAL).callbacks.append(self._arrivals)
        for controller in self.controllers:
            self.env.process(self._control_loop(controller))

    def _arrivals(self, _event: Any = None) -> None:
        """Dispatch the request whose arrival event fired (``_held``) and every later one due now,
        then schedule the next arrival's event with this callback (one event per arrival time)."""
        env = self.env
        held = self._held
        if held is not None:
            self._held = None
            self.dispatch(held)
        ahead = self._ahead
        while ahead:  # requests peeked ahead (arrival_bound_s), in stream order
            req = ahead.popleft()
            if req.arrival_s > env.now:
                self._held = req
                at(env, req.arrival_s, ARRIVAL).callbacks.append(self._arrivals)
                return
            self.dispatch(req)
        for req in self._stream:
            if req.arrival_s > env.now:
                self._held = req
                at(env, req.arrival_s, ARRIVAL).callbacks.append(self._arrivals)
                return
            self.dispatch(req)
        self.arrivals_exhausted = True
        self._check_all_done()

    def _schedule_arrival(self, req: Request) -> None:
        self._num_scheduled += 1
        event = at(self.env, max(req.arrival_s, self.env.now), ARRIVAL)
        event.callbacks.append(lambda _e, r=req: self._scheduled_arrival(r))

    def _scheduled_arrival(self, req: Request) -> None:
        self._num_scheduled -= 1
        self.dispatch(req)

    def _control_loop(self, controller: Any):
        env = self.env
        period = controller.period_s
        while True:
            yield at(env, env.now + period, CONTROL)
            actions = controller.act(self.view, env.now)
            if actions:  # most ticks ask for nothing: no log to look up
                self.apply_actions(actions, controller)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, req: Request) -> None:
        """Route an arriving request to a replica, or reject it with a reason."""
        if self._thru_sync:  # finishes a stretch went on through are applied before the router reads
            for rep in self.replicas:
                rep.sync_finishes()
        self.num_arrived += 1
        if self.recorder.record_token_times:
            req.token_times = []
        if self._bar is not None and self.num_arrived % 2048 == 0:
            self._progress()
        if req.input_tokens + req.output_tokens > self.max_fit_tokens:
            self.reject(req, "exceeds_kv_capacity")
            return
        if self.models is not None:
            self._dispatch_model(req)
            return
        target = self.router.route(req.view, self.entry_views)
        if target is None:
            self.reject(req, "router_rejected")
            return
        target = target._rep
        if not target.fits(req):
            self.reject(req, "exceeds_kv_capacity")
            return
        if self.frontends and self._to_frontend(target, req):
            return
        target.enqueue(req)

    def _to_frontend(self, rep: Replica, req: Request) -> bool:
        """Hand ``req`` to ``rep``'s serving front end, if it has one (sim/engine/frontend.py): outstanding
        at the replica from now (``num_outstanding``: assigned there, not yet done, as a load balancer in
        front of the server counts it), on its queue at its release (``_frontend_release``)."""
        frontend = self.frontends.get(rep.id)
        if frontend is None:
            return False
        rep.num_outstanding += 1
        if rep.load_index is not None:
            rep.load_index.moved(rep)
        frontend.admit(req, self.env.now)
        return True

    def _frontend_release(self, rep: Replica, req: Request) -> None:
        """A request leaves ``rep``'s front end: onto its queue (``enqueue`` counts it outstanding again),
        or rejected if the replica is gone."""
        rep.num_outstanding -= 1
        if rep.load_index is not None:
            rep.load_index.moved(rep)
        if rep.lifecycle == "removed":
            self.reject(req, "replica_removed")
            return
        if self._thru_sync:  # as at dispatch: finishes a stretch went on through are applied first
            rep.sync_finishes()
        if self.models is not None:
            self.models.enqueue(rep, req)  # multi-model: on the model's queue, switching models as at dispatch
        else:
            rep.enqueue(req)

    def _dispatch_model(self, req: Request) -> None:
        """Multi-model dispatch: the router chooses among the replicas serving the request's model."""
        views, reason = self.models.candidates(req)
        if views is None:
            self.reject(req, reason)
            return
        target = self.router.route(req.view, views) if views else None
        if target is None:
            self.reject(req, "router_rejected")
            return
        if self.frontends and self._to_frontend(target._rep, req):
            return
        self.models.enqueue(target._rep, req)

    def reject(self, req: Request, reason: str) -> None:
        """Reject a request that no replica holds."""
        req.state = State.REJECTED
        req.reject_reason = reason
        req.finish_s = self.env.now
        self.recorder.on_done(req)
        self._on_done(req)

    def _on_done(self, req: Request) -> None:
        self.num_done += 1
        if self.predictor is not None:
            if req.state is State.FINISHED:
                self.predictor.observe(req.view, req.output_tokens)
            elif hasattr(self.predictor, "discard"):
                self.predictor.discard(req.view)
        if self.handoff is not None and req.replica is not None:
            self.handoff.request_done(self.replica_by_id[req.replica], req)
        if getattr(self.workload, "closed_loop", False):
            nxt = self.workload.on_done(req, self.env.now, self.workload_rng)
            if isinstance(nxt, list):  # several clients released at once (a warm-up pass ending)
                for each in nxt:
                    self._schedule_arrival(each)
                if nxt:
                    return
            elif nxt is not None:
                self._schedule_arrival(nxt)
                return
        self._check_all_done()

    def _check_all_done(self) -> None:
        if (self.arrivals_exhausted and self.num_done == self.num_arrived and not self._num_scheduled
                and not self.all_done.triggered):
            self.all_done.succeed()

    def _progress(self) -> None:
        self._bar.update(self.num_done - self._bar.n)
        self._bar.set_postfix_str(f"simulated {self.env.now:.1f} s, {self.num_arrived} arrived", refresh=False)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Run until every request is done (or the configured time limit)."""
        if self._show_progress:
            from sim.tools.progress import bar

            self._bar = bar("simulating", unit="req", delay_s=3.0)
        self.start()
        until = self.config.engine.max_time_s
        if until is not None:
            stop = self.env.timeout(until)
            self.env.run(until=self.env.any_of([self.all_done, stop]))
            if not self.all_done.triggered:
                self.truncated = True
                self.num_not_arrived = self._count_not_arrived()
        else:
            self.env.run(until=self.all_done)
        if self._bar is not None:
            self._progress()
            self._bar.close()
        self._record_unfinished()

    def _count_not_arrived(self) -> int:
        """Requests the workload had not yet delivered at the cut: the one waiting for its arrival
        time, the closed-loop ones scheduled, and the rest of the open-loop stream, counted one by
        one without being simulated or kept (a streamed 10M-row trace stays bounded in memory)."""
        count = self._num_scheduled + (self._held is not None) + len(self._ahead)
        if self._stream is not None and not self.arrivals_exhausted:
            count += sum(1 for _ in self._stream)
        return count

    def live_requests(self) -> list[Request]:
        """Requests still queued or running on any replica."""
        live = []
        for rep in self.replicas:
            rep.sync()
            live.extend(rep.waiting)
            live.extend(rep.running)
            live.extend(rep.swapped)
            if rep.paused is not None:
                live.extend(rep.paused.requests)
        if self.handoff is not None:
            live.extend(self.handoff.live_requests())
        live.extend(self.transfer.live_requests())
        if self.models is not None:
            live.extend(self.models.live_requests())
        for frontend in self.frontends.values():  # routed, not yet on their replica's queue
            live.extend(frontend.requests())
        return live

    def _record_unfinished(self) -> None:
        for rep in self.replicas:  # finishes before now, also those of a stretch gone on through them
            rep.sync()
        self.recorder.close_visits(self.env.now)
        for req in self.live_requests():
            self.recorder.on_done(req)
        self.transfer.end_run()

    # ------------------------------------------------------------------ migration
    def migrate(self, request_id: int, dst_replica_id: int, live: bool = True, recompute: bool = False) -> bool:
        """Start moving decoding request ``request_id`` to replica ``dst_replica_id``: by Llumnix's
        multi-stage pre-copy (``live``), stop and copy, or (``recompute``) by dropping its KV and
        recomputing it there. False when it cannot start (the reason is counted in
        ``transfer.refused``); a started migration may still abort (``transfer.aborted``)."""
        return self.transfer.migrate(request_id, dst_replica_id, live, recompute)

    # ------------------------------------------------------------------ controller actions
    def apply_actions(self, actions: Any, controller: Any = None) -> None:
        """Carry out what a controller returned (see ``sim.engine.actions``): invalid actions are
        counted, recorded and ignored; every action lands in ``self.action_log``."""
        apply_actions(self, actions, controller)
