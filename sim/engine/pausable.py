"""Pausable iterations and sequence-parallel gangs of a replica.

Mixed into ``Replica`` (see sim/engine/replica.py for the picture). A batch marked ``preemptible``
is priced as ``num_layers`` equal layer slices and may be cut at a layer boundary when new
work arrives and the scheduler wants it (``wants_preempt``); it then waits in ``paused``
with its finished layers kept and later pays only the rest. A batch with a ``gang`` of
helper replicas first gathers them (``request_hold``), runs, and releases them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import simpy

from sim.engine.batch import Batch
from sim.engine.clock import at

if TYPE_CHECKING:
    from sim.engine.replica import Replica


class PausableMixin:
    """Cut, park, resume and gang iterations; needs the attributes ``Replica`` sets."""

    def _wants_preempt(self) -> bool:
        hook = getattr(self.scheduler, "wants_preempt", None)
        return hook is not None and bool(hook(self))

    def _blocked(self) -> bool:
        """Whether the scheduler holds back its waiting work for now (``blocked(replica)``),
        e.g. while this replica is lent to another's gang; the loop then sleeps until ``wake``."""
        hook = getattr(self.scheduler, "blocked", None)
        return hook is not None and bool(hook(self))

    def _may_resume(self) -> bool:
        hook = getattr(self.scheduler, "resume_paused", None)
        return hook is None or bool(hook(self))

    def request_cut(self) -> None:
        """Cut the pausable iteration in progress at its next layer boundary (or stop gathering
        a gang); nothing if none runs, it is not preemptible, or it ends at that boundary anyway."""
        batch = self._cur
        if batch is None or not batch.preemptible or self._interrupt_pending:
            return
        now = self.env.now
        if self._gathering:
            self._interrupt_pending = True
            self.process.interrupt()
            return
        if self._cut_end is not None:
            return
        k = max(1, math.ceil((now - self._cur_start) / self._cur_layer_s))
        if k >= self._cur_layers_left:
            return
        self._cut_layers = k
        self._cut_end = max(now, self._cur_start + k * self._cur_layer_s)
        self._interrupt_pending = True
        self.process.interrupt()

    def request_hold(self, lead: Replica) -> simpy.Event:
        """Ask this replica to hold for ``lead``'s gang iteration: the event succeeds when it
        has finished its iteration in progress (and any work its scheduler puts first)."""
        if self.hold_request is not None or self.held_by is not None:
            raise RuntimeError(f"replica {self.id} is already in a gang")
        self.hold_request = lead
        self._barrier = self.env.event()
        barrier = self._barrier
        self.wake()
        return barrier

    def cancel_hold(self) -> None:
        """Withdraw a hold request, or let go of a held replica."""
        if self.held_by is not None:
            held, self._held = self._held, None
            self.held_by = None
            held.succeed()
        self.hold_request = None
        self._barrier = None


    def _pause(self, batch: Batch) -> None:
        """Park a cut batch: its requests leave ``running`` (KV kept) until it resumes."""
        members = set(map(id, batch.requests))
        self.running = [r for r in self.running if id(r) not in members]
        self.paused = batch

    def _unpause(self) -> Batch:
        batch, self.paused = self.paused, None
        self.running.extend(batch.requests)
        return batch

    def _run_cuttable(self, batch: Batch):
        """Run a preemptible and/or gang batch: gather the gang, run, and either apply the
        batch or, if cut at a layer boundary, park the rest in ``paused``."""
        env = self.env
        self._cur = batch
        if batch.gang:
            self._gathering = True
            barriers = [h.request_hold(self) for h in batch.gang]
            try:
                yield env.all_of(barriers)
            except simpy.Interrupt:  # new work wants this replica: let the gang go, run it first
                self._interrupt_pending = False
                self._gathering = False
                self._cur = None
                for h in batch.gang:
                    h.cancel_hold()
                self._pause(batch)
                return
            self._gathering = False
        full_s = batch.step_s if batch.step_s is not None else self._step_time(batch)
        batch.step_s = full_s
        num_layers = self.num_layers
        left = num_layers - batch.done_layers
        layer_s = full_s / num_layers
        step_s = full_s * left / num_layers
        start = env.now
        self._cur_start, self._cur_layer_s, self._cur_layers_left = start, layer_s, left
        self._cut_end = None
        end = start + step_s
        while True:
            try:
                yield at(env, end if self._cut_end is None else self._cut_end)
                break
            except simpy.Interrupt:
                self._interrupt_pending = False
        self._cur = None
        for h in batch.gang or ():
            h.cancel_hold()
        if self._cut_end is not None:
            self._cut_end = None
            self._account(batch, env.now - start)
            batch.done_layers += self._cut_layers
            self.num_cuts += 1
            self._pause(batch)
            return
        self._account(batch, step_s)
        self._apply(batch, end)
        if batch.on_finish is not None:
            batch.on_finish(batch)

    def _hold(self):
        """Hold for a gang lead: do nothing until it lets go (counted as prefill busy time)."""
        env = self.env
        self.held_by, self.hold_request = self.hold_request, None
        self._held = env.event()
        held = self._held
        barrier, self._barrier = self._barrier, None
        barrier.succeed()
        start = env.now
        yield held
        self.busy_prefill_s += env.now - start
