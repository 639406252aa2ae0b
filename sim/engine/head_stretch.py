"""A stepped iteration and the decode stretch after it as one wait, on a replica alone (issue 21).

On a replica that nothing but the arrivals reads (``thru_alone``: the cluster's only replica, no
controllers, hand-off, multi-model pools, predictor, closed-loop workload or per-iteration log;
sim/engine/thru_finish.py), an iteration that must be stepped (a prompt admitted, a prompt's
last chunk, a prefill-only iteration) is mostly followed by a decode stretch: the prompt that
ended joins the decodes, nothing waits, and the loop's next plan is ``_decode_all``'s. Stepping
takes one event for the iteration and one for the stretch. Here the iteration (the *head*) is
applied when it starts, with its own end time, and the stretch after it is planned at once,
starting at the head's end, so both take one wait::

    | head: decodes + P's last chunk | decode stretch (P decoding) ... |<- next arrival
    one event at the end of the stretch (or sooner: ``cut_stretch``), none at the head's end

When it applies: the replica is alone and fast-forwards, the iteration ends strictly before the
next arrival (``arrival_bound``) and the run's time limit (``run_until``), no step hook, held
pool or speculative plan, and the KV manager allocates by target. After the head is applied,
if the loop would not go straight to a decode stretch (something waits or is swapped, paused or
held, a boundary call is due, a request still mid-prefill, or ``_decode_all`` finds no room) the
replica waits for the head's end and the loop goes on from there, as stepping goes on.

Why exact. Nobody can tell the head was applied early: until its end nothing arrives (the bound
is the next arrival's time: arrivals are the only readers of a replica alone) and no time limit
falls; a request finishing in it is recorded with the head's end time, in the order stepping
records it (nothing else finishes in between), and the cluster's ``on_done`` only counts it: the
run cannot end there, since a request (the bounding arrival) is still to come. The
head is priced, counted (``_account``) and applied (``_apply``) by the same calls on the same
state, with the same end time, as stepping applies it at that end; the loop's next decision
there reads only the replica's own state, which nothing else changes in between, so the plan
``_decode_all`` forms early (its first iteration's blocks taken under ``allocates_by_target``:
by targets, no one else allocates in between) is the one it forms at the head's end; and the
stretch is priced from the head's end, exactly as a stretch started then (``_thru_stretch``'s
``start``: its first iteration's end is that end plus its step time, the same float sum). Where
``_thru_stretch`` would fall back to a plain ``_stretch`` the replica first waits for the
head's end, so the fallback starts then, as stepping starts it.
"""

from __future__ import annotations

from sim.engine.clock import at
from sim.engine.plan import StepPlan
from sim.engine.request import State

_DECODE = State.DECODE


class HeadStretchMixin:
    """``_head_stretch`` (the replica's loop calls it); needs ``Replica``'s attributes."""

    run_until: float | None = None  # the run's time limit (engine.max_time_s), set by the cluster

    def _head_ok(self, plan: StepPlan, end: float) -> bool:
        """Whether ``plan``, a stepped iteration ending at ``end``, may be applied at its start."""
        if plan.decode_tokens is not None or self.step_wait is not None or self.held_pool is not None \
                or self.recorder.steps is not None or not getattr(self.kv, "allocates_by_target", False):
            return False
        bound = self.arrival_bound() if self.arrival_bound is not None else None
        return bound is not None and end < bound and (self.run_until is None or end < self.run_until)

    def _head_stretch(self, plan: StepPlan, step_s: float, end: float):
        """Apply ``plan`` (priced at ``step_s``, ending at ``end``) now and run the decode stretch
        the loop would run after it, from ``end``, in the same wait (see the module docstring);
        False, nothing done, where that does not apply."""
        if not self._head_ok(plan, end):
            return False
        self._account(plan, step_s)
        self._apply(plan, end)
        running = self.running
        nxt = None
        if running and not (self._at_boundary or self.waiting or self.swapped or self.paused is not None
                            or self.hold_request is not None or self.pending_swap_bytes):
            nxt = self._decode_all()  # the loop's plan at ``end`` (None: a prompt mid-prefill, or no room)
        if nxt is None:
            yield at(self.env, end)  # the loop goes on from the head's end, as stepping does
            return True
        ran = yield from self._thru_stretch(nxt, end)
        while ran:  # as the loop runs stretches through finishes (replica.py ``_loop``)
            nxt.decode = self._decode_rest()
            if nxt.decode is None:
                break
            ran = yield from self._thru_stretch(nxt)
        return True
