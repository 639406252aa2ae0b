"""The cluster: pools of replicas, the router in front, the arrival process and controllers.

Built from a ``SimulationConfig`` on one SimPy Environment. Requests enter through the
router, which sees the replicas of the entry pools (role ``mixed`` or ``prefill``); a
request that can never fit any of them is rejected with a reason, never dropped.
Controllers are periodic processes that act on the whole cluster (migration, scaling).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import simpy

from sim.config import PoolConfig, SimulationConfig
from sim.engine.clock import ARRIVAL, CONTROL, at
from sim.engine.recorder import Recorder
from sim.engine.replica import Replica
from sim.engine.request import Request, State
from sim.engine.transfer import TransferService
from sim.errors import ConfigError


class Pool:
    """Replicas sharing a role, a device type and policies."""

    def __init__(self, config: PoolConfig, replicas: list[Replica], cost_model: Any):
        self.config = config
        self.name = config.name
        self.role = config.role
        self.replicas = replicas
        self.cost_model = cost_model


def build_replica_parts(pool: PoolConfig, where: str) -> tuple[Any, int, float]:
    """The pool's cost model, KV block count and KV bytes per token, validated."""
    try:
        cost_model = pool.cost_model.build(pool.hardware)
        kvp = pool.kv.params
        bytes_per_token = cost_model.kv_bytes_per_token
        if kvp.num_blocks is not None:
            num_blocks = kvp.num_blocks
        else:
            capacity = cost_model.kv_capacity_bytes(kvp.gpu_memory_utilization)
            num_blocks = int(capacity // (kvp.block_size * bytes_per_token))
    except ConfigError as exc:
        raise ConfigError(exc.message, f"{where}.{exc.where}" if exc.where else where) from None
    if num_blocks < 1:
        raise ConfigError(
            f"no room for the KV cache: {pool.hardware.model} on {pool.hardware.device} "
            f"(tp={pool.hardware.tp}, pp={pool.hardware.pp}) leaves 0 blocks", where)
    return cost_model, num_blocks, bytes_per_token


class Cluster:
    """Everything one run simulates, wired on one Environment."""

    def __init__(self, config: SimulationConfig, workload: Any, recorder: Recorder, seeds: np.random.SeedSequence):
        self.config = config
        self.env = simpy.Environment()
        self.recorder = recorder
        self.workload = workload
        child = seeds.spawn(4)
        self.workload_rng = np.random.default_rng(child[0])
        router_rng = np.random.default_rng(child[1])
        self._policy_seeds = child[2]
        controller_seeds = child[3]
        self.pools: list[Pool] = []
        self.replicas: list[Replica] = []
        for i, pool_cfg in enumerate(config.cluster.pools):
            self.pools.append(self._build_pool(pool_cfg, f"cluster.pools[{i}]"))
        self.transfer = TransferService(self.env, config.cluster.transfer, self.replicas)  # every KV / weight copy
        self.entry_replicas = [r for p in self.pools if p.role in ("mixed", "prefill") for r in p.replicas]
        if not self.entry_replicas:
            raise ConfigError("no pool with role 'mixed' or 'prefill' to receive requests", "cluster.pools")
        self.max_fit_tokens = max(r.max_tokens for r in self.entry_replicas)
        self.router = config.cluster.router.build(router_rng)
        bind = getattr(self.router, "bind", None)
        if bind is not None:  # routers that manage pools (e.g. Splitwise's borrowing) see them all
            bind(self)
        self.handoff = config.cluster.handoff.build(self) if config.cluster.handoff is not None else None
        if self.handoff is not None:
            # a hand-off acts on prefill replicas, or on the roles its ``source_roles`` names
            roles = getattr(self.handoff, "source_roles", ("prefill",))
            for rep in self.replicas:
                if rep.role in roles:
                    rep.on_prefilled = self.handoff.on_prefilled
        self.controllers = [
            spec.build(np.random.default_rng(s)) for spec, s in
            zip(config.cluster.controllers, controller_seeds.spawn(len(config.cluster.controllers)), strict=True)
        ]
        self.num_arrived = 0
        self.num_done = 0
        self.arrivals_exhausted = False
        self._num_scheduled = 0  # closed-loop arrivals scheduled but not yet dispatched
        self.all_done = self.env.event()
        self._wall_start = time.monotonic()
        self._last_progress = self._wall_start
        self._show_progress = config.engine.progress and sys.stderr.isatty()

    def _build_pool(self, cfg: PoolConfig, where: str) -> Pool:
        cost_model, num_blocks, bytes_per_token = build_replica_parts(cfg, where)
        replicas = []
        for _ in range(cfg.num_replicas):
            rid = len(self.replicas)
            kv = cfg.kv.build(num_blocks, bytes_per_token, getattr(cost_model, "num_gpus", 1))
            scheduler = cfg.scheduler.build()
            replica = Replica(self.env, rid, cfg.name, cfg.role, scheduler, kv, cost_model, self.recorder,
                              fast_forward=self.config.engine.fast_forward)
            replica.on_done = self._on_done
            self.replicas.append(replica)
            replicas.append(replica)
        return Pool(cfg, replicas, cost_model)

    # ------------------------------------------------------------------ processes
    def start(self) -> None:
        """Start the arrival process and the controllers."""
        if getattr(self.workload, "closed_loop", False):
            for req in self.workload.initial_requests(self.workload_rng):
                self._schedule_arrival(req)
            self.arrivals_exhausted = True
        else:
            self.env.process(self._arrivals(self.workload.requests(self.workload_rng)))
        for controller in self.controllers:
            self.env.process(self._control_loop(controller))

    def _arrivals(self, stream: Iterator[Request]):
        env = self.env
        for req in stream:
            if req.arrival_s > env.now:
                yield at(env, req.arrival_s, ARRIVAL)
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
            controller.tick(self, env.now)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, req: Request) -> None:
        """Route an arriving request to a replica, or reject it with a reason."""
        self.num_arrived += 1
        if self.recorder.record_token_times:
            req.token_times = []
        if self._show_progress and self.num_arrived % 2048 == 0:
            self._progress()
        if req.input_tokens + req.output_tokens > self.max_fit_tokens:
            self.reject(req, "exceeds_kv_capacity")
            return
        target = self.router.route(req, self.entry_replicas)
        if target is None:
            self.reject(req, "router_rejected")
            return
        if not target.fits(req):
            self.reject(req, "exceeds_kv_capacity")
            return
        target.enqueue(req)

    def reject(self, req: Request, reason: str) -> None:
        """Reject a request that no replica holds."""
        req.state = State.REJECTED
        req.reject_reason = reason
        req.finish_s = self.env.now
        self.recorder.on_done(req)
        self._on_done(req)

    def _on_done(self, req: Request) -> None:
        self.num_done += 1
        if self.handoff is not None and req.replica is not None:
            self.handoff.on_request_done(self.replicas[req.replica], req)
        if getattr(self.workload, "closed_loop", False):
            nxt = self.workload.on_done(req, self.env.now, self.workload_rng)
            if nxt is not None:
                self._schedule_arrival(nxt)
                return
        self._check_all_done()

    def _check_all_done(self) -> None:
        if (self.arrivals_exhausted and self.num_done == self.num_arrived and not self._num_scheduled
                and not self.all_done.triggered):
            self.all_done.succeed()

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._wall_start < 3.0 or now - self._last_progress < 0.5:
            return
        self._last_progress = now
        sys.stderr.write(f"\r  simulated {self.env.now:10.1f} s  requests {self.num_arrived:9d} "
                         f"arrived {self.num_done:9d} done  wall {now - self._wall_start:6.1f} s")
        sys.stderr.flush()

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Run until every request is done (or the configured time limit)."""
        self.start()
        until = self.config.engine.max_time_s
        if until is not None:
            stop = self.env.timeout(until)
            self.env.run(until=self.env.any_of([self.all_done, stop]))
        else:
            self.env.run(until=self.all_done)
        if self._show_progress and time.monotonic() - self._wall_start >= 3.0:
            sys.stderr.write("\n")
        self._record_unfinished()

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
        return live

    def _record_unfinished(self) -> None:
        self.recorder.close_visits(self.env.now)
        for req in self.live_requests():
            self.recorder.on_done(req)
        self.transfer.end_run()

    # ------------------------------------------------------------------ migration
    def migrate(self, request_id: int, dst_replica_id: int, live: bool = True) -> bool:
        """Start moving decoding request ``request_id`` to replica ``dst_replica_id``: by Llumnix's
        multi-stage pre-copy (``live``) or stop and copy. False when it cannot start (the reason
        is counted in ``transfer.refused``); a started migration may still abort (``transfer.aborted``)."""
        return self.transfer.migrate(request_id, dst_replica_id, live)
