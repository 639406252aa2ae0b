"""Replica lifecycle: replicas added at run time (cold start), drained and removed.

::

    add_replica(pool) ------> starting ---- cold start ----> active ---- drain_replica ----> draining
      built now, billed        (no work; counts for            router sees it;            no new work; finishes
      from now (start_s)        KV fit checks)                 decode pools: hand-off     what it has
                                                               target (ready_s)                 |
                                                                                  empty, KV free v
                                                                                             removed (end_s)

cold start = weight bytes per GPU / load bandwidth + engine start (``hardware.cold_start``);
with ``cold_start.transfer_link`` set and a cluster transfer service (``cluster.transfer``
with ``copy(num_bytes, link) -> event``), the weight load is one copy on that service
instead, so it shares the link with other copies; the engine start follows it.

A draining replica is removed the moment it is empty (nothing assigned, running, paused
or held) and holds no KV (a hand-off copy out of it, or into it, has ended): the check runs
after each of its requests finishes, is rejected or hands off, and polls every
``DRAIN_POLL_S`` only while just KV in transit keeps it. Draining a starting replica removes
it at once. Removed replicas keep their request rows, steps and busy time in the results
but leave every view. GPU-hours, idle energy and cost bill each replica's lifetime
[start_s, end_s or the run's end] (``lifetime_s``).

Replica ids come from the cluster's counter and are never reused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hardware.cold_start import cold_start
from sim.engine.actions import ActionError, ActionLog
from sim.engine.clock import CONTROL, at

if TYPE_CHECKING:
    from sim.engine.replica import Replica

DRAIN_POLL_S = 1e-3  # re-check of a draining replica whose only hold is KV still being copied


class ReplicaLifecycleMixin:
    """The lifecycle fields and transitions of a replica (the cluster drives them)."""

    ready_s: float | None = None   # when it became active (None while starting)
    cold_start: Any = None         # its ``hardware.cold_start.ColdStart`` when added at run time

    def mark_starting(self) -> None:
        """Built, loading weights: no work until ``mark_active``."""
        self.lifecycle = "starting"
        self.ready_s = None

    def mark_active(self) -> None:
        """Serving from now on."""
        self.lifecycle = "active"
        self.ready_s = self.env.now

    def mark_draining(self) -> None:
        """No new work; it finishes what it has."""
        self.lifecycle = "draining"

    def mark_removed(self) -> None:
        """Gone from now on (its GPUs are no longer billed)."""
        self.lifecycle = "removed"
        self.end_s = self.env.now

    @property
    def is_drained(self) -> bool:
        """Empty and holding no KV (so a draining replica may leave)."""
        self.sync()
        return self.is_empty and self.kv.num_used == 0

    def lifetime_s(self, t0: float, t1: float) -> float:
        """Seconds of [start_s, end_s or t1] inside the window [t0, t1]."""
        start = self.start_s if self.start_s > t0 else t0
        end = t1 if self.end_s is None or self.end_s > t1 else self.end_s
        return end - start if end > start else 0.0


class ClusterLifecycleMixin:
    """Adding, draining and removing replicas of a running cluster (mixed into ``Cluster``)."""

    def _init_lifecycle(self) -> None:
        self.action_log = ActionLog()
        self.knob_params: dict[str, Any] = {}  # pool -> scheduler params set by SetKnob (for new replicas)
        self._drain_checks: set[int] = set()
        for rep in self.replicas:
            rep.ready_s = rep.start_s
        self.num_replicas_peak = len(self.replicas)

    # ------------------------------------------------------------------ add
    def add_replica(self, pool_name: str) -> int:
        """Start a new replica in ``pool_name`` and return its (new, stable) id. It is billed from
        now and serves after its cold start."""
        pool = self.pool_named(pool_name)
        rep = self.new_replica(pool)
        rep.mark_starting()
        if pool.name in self.knob_params:
            rep.scheduler.params = self.knob_params[pool.name]
        self.wire_handoff(rep)
        if getattr(self, "models", None) is not None:
            self.models.adopt(rep)
        cfg = pool.config.cold_start
        rep.cold_start = cold_start(cfg, pool.cost_model, pool.config.hardware)
        self.env.process(self._cold_start(rep, cfg.transfer_link))
        self.refresh_entry()  # a starting replica counts for the requests that can ever fit
        alive = sum(1 for r in self.replicas if r.lifecycle != "removed")
        if alive > self.num_replicas_peak:
            self.num_replicas_peak = alive
        return rep.id

    def _cold_start(self, rep: Replica, link: str | None):
        env, cs = self.env, rep.cold_start
        transfer = getattr(self, "transfer", None)
        if link is not None and transfer is not None and hasattr(transfer, "copy"):
            yield transfer.copy(cs.weight_bytes_per_gpu, link)
            yield at(env, env.now + cs.engine_start_s, CONTROL)
        else:
            yield at(env, env.now + cs.total_s, CONTROL)
        if rep.lifecycle == "starting":  # not drained meanwhile
            rep.mark_active()
            self.refresh_entry()
            if self.handoff is not None:
                self.handoff.add_target(rep)

    # ------------------------------------------------------------------ drain and remove
    def drain_replica(self, replica_id: int) -> None:
        """Stop sending work to a replica; it is removed once it is empty. The last active
        replica of a pool cannot be drained (nothing would take its pool's work)."""
        rep = self.live_replica(replica_id)
        if rep.lifecycle == "draining":
            raise ActionError(f"replica {replica_id} is already draining")
        if rep.lifecycle == "active" and not any(
                r is not rep and r.lifecycle == "active" for r in self.pool_named(rep.pool).replicas):
            raise ActionError(f"replica {replica_id} is the last active replica of pool {rep.pool!r}")
        rep.mark_draining()
        self.refresh_entry()
        if self.handoff is not None:
            self.handoff.remove_target(rep)
        done, prefilled = rep.on_done, rep.on_prefilled

        def on_done(req: Any) -> None:
            done(req)
            self._check_drained_soon(rep)

        def on_prefilled(src: Any, req: Any) -> bool:
            moved = prefilled(src, req)
            if moved:
                self._check_drained_soon(rep)
            return moved

        rep.on_done = on_done
        if prefilled is not None:
            rep.on_prefilled = on_prefilled
        self._check_drained(rep)

    def remove_replica(self, replica_id: int) -> None:
        """Let a drained, empty replica leave the cluster now."""
        rep = self.live_replica(replica_id)
        if rep.lifecycle != "draining":
            raise ActionError(f"replica {replica_id} is {rep.lifecycle}: drain it first")
        if not rep.is_drained or self._in_frontend(rep):
            raise ActionError(f"replica {replica_id} still has work or KV")
        rep.mark_removed()
        self.refresh_entry()

    def _check_drained(self, rep: Replica) -> None:
        self._drain_checks.discard(rep.id)
        if rep.lifecycle != "draining":
            return
        if rep.is_drained and not self._in_frontend(rep):
            self.remove_replica(rep.id)
        elif rep.is_empty:  # only KV in transit keeps it: look again shortly
            self._check_drained_soon(rep, DRAIN_POLL_S)

    def _in_frontend(self, rep: Replica) -> bool:
        """Requests routed to ``rep`` are still in its serving front end (sim/engine/frontend.py)."""
        frontend = getattr(self, "frontends", {}).get(rep.id)
        return frontend is not None and frontend.next_release_s() is not None

    def _check_drained_soon(self, rep: Replica, delay_s: float = 0.0) -> None:
        """Check ``rep`` once the current event is through (its queues are settled by then)."""
        if rep.id in self._drain_checks or rep.lifecycle != "draining":
            return
        self._drain_checks.add(rep.id)
        event = at(self.env, self.env.now + delay_s, CONTROL)
        event.callbacks.append(lambda _e: self._check_drained(rep))

    def check_draining(self) -> None:
        """Re-check every draining replica (after requests were moved off replicas)."""
        for rep in self.replicas:
            if rep.lifecycle == "draining":
                self._check_drained_soon(rep)

    # ------------------------------------------------------------------ lookups
    def pool_named(self, name: str) -> Any:
        """The pool called ``name`` (ActionError naming the pools if none)."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise ActionError(f"unknown pool {name!r} (pools: {', '.join(p.name for p in self.pools)})")

    def live_replica(self, replica_id: int) -> Replica:
        """The replica with id ``replica_id`` unless it is unknown or removed (ActionError)."""
        rep = self.replica_by_id.get(replica_id)
        if rep is None:
            raise ActionError(f"unknown replica {replica_id!r}")
        if rep.lifecycle == "removed":
            raise ActionError(f"replica {replica_id} was removed at {rep.end_s:.3f} s")
        return rep

    def replica_seconds(self, t0: float, t1: float) -> float:
        """Replica-seconds alive inside [t0, t1], over every replica ever built."""
        return sum(r.lifetime_s(t0, t1) for r in self.replicas)
