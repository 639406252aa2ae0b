"""Step plans with a layer range and held resources: layer cuts and sequence-parallel gangs.

Mixed into ``Replica`` (see sim/engine/replica.py for the picture); any scheduler may use it
by marking its plan. A plan marked ``preemptible`` is priced as ``num_layers`` equal layer
slices and may be cut at a layer boundary when new work arrives and the scheduler wants it
(``wants_cut``); it then waits in ``paused`` with its finished layers (``done_layers``) kept
and later pays only the rest. A plan with ``stop_at_layer`` runs layers ``done_layers`` to
that layer only and parks the same way (layered prefill: a prompt's layers spread over
iterations). A plan that ``hold`` s other replicas first gathers them (``request_hold``),
runs, and releases them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import simpy

from sim.engine.clock import at
from sim.engine.plan import StepPlan

if TYPE_CHECKING:
    from sim.engine.replica import Replica


class PausableMixin:
    """Cut, park, resume and gang iterations; needs the attributes ``Replica`` sets."""

    def request_cut(self) -> None:
        """Cut the pausable iteration in progress at its next layer boundary (or stop gathering
        a gang); nothing if none runs, it is not preemptible, or it ends at that boundary anyway."""
        plan = self._cur
        if plan is None or not plan.preemptible or self._interrupt_pending:
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


    def _pause(self, plan: StepPlan) -> None:
        """Park a cut plan: its requests leave ``running`` (KV kept) until it resumes."""
        members = set(map(id, plan.requests))
        self.running = [r for r in self.running if id(r) not in members]
        self.paused = plan

    def _unpause(self) -> StepPlan:
        plan, self.paused = self.paused, None
        self.running.extend(plan.requests)
        return plan

    def _run_cuttable(self, plan: StepPlan):
        """Run a preemptible and/or gang plan: gather the gang, run, and either apply the
        plan or, if cut at a layer boundary, park the rest in ``paused``."""
        env = self.env
        self._cur = plan
        helpers = [h._rep for h in plan.hold] if plan.hold else ()
        if helpers:
            self._gathering = True
            barriers = [h.request_hold(self) for h in helpers]
            try:
                yield env.all_of(barriers)
            except simpy.Interrupt:  # new work wants this replica: let the gang go, run it first
                self._interrupt_pending = False
                self._gathering = False
                self._cur = None
                for h in helpers:
                    h.cancel_hold()
                self._pause(plan)
                return
            self._gathering = False
        full_s = plan.step_s if plan.step_s is not None else self._step_time(plan)
        plan.step_s = full_s
        num_layers = self.num_layers
        stop = num_layers if plan.stop_at_layer is None else min(plan.stop_at_layer, num_layers)
        left = stop - plan.done_layers
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
        for h in helpers:
            h.cancel_hold()
        if self._cut_end is not None:
            self._cut_end = None
            self._account(plan, env.now - start)
            plan.done_layers += self._cut_layers
            self.num_cuts += 1
            self._pause(plan)
            return
        if stop < num_layers:  # a layer range: park after its last layer, the rest runs later
            self._account(plan, step_s)
            plan.done_layers = stop
            plan.stop_at_layer = None
            self._pause(plan)
            return
        self._account(plan, step_s)
        self._apply(plan, end)
        if plan.on_finish is not None:
            plan.on_finish(plan)

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
