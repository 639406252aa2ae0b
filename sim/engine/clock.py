"""Absolute-time events with explicit priorities, so that runs are bit-identical.

SimPy's ``timeout(delay)`` fires at ``now + delay``; recomputing a delay from an absolute
time (``t - now``) can move the event by one ulp. ``at(env, t)`` schedules at ``t`` itself.
Events at the same instant are ordered by priority, then by creation order:
arrivals (ARRIVAL) before iteration ends (STEP) before controllers (CONTROL).
"""

from __future__ import annotations

from heapq import heappush

import simpy

ARRIVAL = 0
STEP = 1
CONTROL = 2
_Event = simpy.Event
_new = object.__new__


def at(env: simpy.Environment, time_s: float, priority: int = STEP) -> simpy.Event:
    """An event that fires at absolute simulated time ``time_s`` (>= now)."""
    if time_s < env._now:  # the attribute behind the ``now`` property: this runs once per event
        raise ValueError(f"cannot schedule in the past: {time_s} < {env.now}")
    event = _new(_Event)  # ``Event(env)`` without its ``__init__`` call (once per event)
    event.env = env
    event.callbacks = []
    event._ok = True
    event._value = None
    heappush(env._queue, (time_s, priority, next(env._eid), event))
    return event
