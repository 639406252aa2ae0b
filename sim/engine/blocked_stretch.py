"""Decode stretches while requests wait that cannot start (a blocked queue).

Near saturation a replica's KV is full: requests wait, the head of the queue cannot be
admitted, and every iteration decodes the running batch and admits nothing. Those iterations
are stepped one by one unless the scheduler promises they repeat::

    blocked_decode_safe = True   (a scheduler class attribute; default False)

The promise: with nothing swapped or paused and every running request decoding, when
``schedule`` has decoded every running request one token each, in running order, and
changed nothing else (no admission, rejection or preemption: its waiting requests could not
start), it forms that same plan at each next iteration so long as (a) the replica is not woken
(no arrival, no request joining or leaving, no KV released from outside: every such change
calls ``Replica.wake``, which cuts a stretch), (b) no request finishes, (c) the running
requests' next tokens get their KV, and (d) the KV manager's ``admission_stable()`` holds:
what an admission reads (prefix hits, blocks available) changes, if at all, only against it.

When a plan just formed by such a scheduler is of that shape (``blocked_decode``), the
replica runs it and the iterations after it as one decode stretch (sim/engine/fast_path.py),
exactly as with nothing waiting: the stretch ends at the first finish or where KV runs out,
an arrival or a boundary call cuts it, and the scheduler is asked again after it. Why it
is exact: in each iteration of the stretch the scheduler, stepped, would grow each decode's
KV by one token in order (what the stretch's ``allocate_each`` does) and admit nothing, by the
promise; KV views read mid-stretch are brought up to now as for any stretch. The busy time of
the stretch is summed step by step, as stepping adds it (``stepwise_busy_s``), so the
summary's busy and energy figures are those of stepping to the last bit.
"""

from __future__ import annotations

from functools import reduce
from operator import add
from typing import TYPE_CHECKING

from sim.engine.request import State

if TYPE_CHECKING:
    from sim.engine.plan import StepPlan
    from sim.engine.replica import Replica


def blocked_decode_of(scheduler: object, kv: object) -> bool:
    """Whether ``scheduler`` declares ``blocked_decode_safe`` and ``kv`` can say ``admission_stable``."""
    return bool(getattr(scheduler, "blocked_decode_safe", False)) and hasattr(kv, "admission_stable")


def blocked_decode(rep: Replica, plan: StepPlan, num_waiting: int, num_running: int) -> bool:
    """Whether ``plan``, just formed by ``rep``'s scheduler with ``num_waiting`` requests waiting
    and ``num_running`` running, decodes every running request and changed nothing else, with
    nothing swapped or paused and the KV's admissions stable: the premise of the promise."""
    running = rep.running
    if plan.prefill or len(running) != num_running or len(rep.waiting) != num_waiting or rep.swapped \
            or plan.decode_tokens is not None or plan.decode != running or rep.pending_swap_bytes \
            or rep.paused is not None:
        return False
    decode = State.DECODE
    for r in running:
        if r.state != decode:
            return False
    return rep.kv.admission_stable()


def stepwise_busy_s(rep: Replica, busy_s: float, num_seqs: int, context: int, num_steps: int) -> float:
    """``busy_s`` plus the ``num_steps`` pure-decode step times of the stretch (``num_seqs``
    requests from ``context`` tokens), added one by one in step order, as stepping adds them
    (the cost model's ``decode_step_times_list`` is ``step_time_s`` per step, bit for bit)."""
    return reduce(add, rep.cost_model.decode_step_times_list(num_seqs, context, num_steps), busy_s)
