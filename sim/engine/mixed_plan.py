"""The mixed-iteration fast plan: a chunked-prefill iteration formed by the replica itself.

When it applies: the engine's fast path is on (``Replica.fast_forward``), nothing is swapped or
paused, every running request decodes except exactly one mid-prefill, nothing waits or the
prompt's chunk takes the whole budget left after the decodes (so nothing is admitted), the KV
manager allocates by target (``allocates_by_target``: a request's blocks depend only on its
computed + new tokens), and the scheduler declares ``mixed_chunk_budget``. That is the state of
most iterations of a decode-first chunked-prefill scheduler (Sarathi-Serve, SplitFuse) between
an admission and the end of the admitted prompt: its chunks go on one per iteration beside the
running decodes. The replica then forms the plan the scheduler would form, through the same
operations in the same order, instead of running the scheduler's general ``schedule``::

    b = mixed_chunk_budget(number of decodes)
    grow_decodes(plan)                  every running decode, one token, all or none (in order)
    if b > 0: k = min(remaining prompt P, b); grow(P, k); plan.add_prefill(P, k)

Why exact: that is, call for call, what a declaring scheduler's ``schedule`` does in that state
(the promise ``mixed_chunk_budget`` makes; with requests waiting it is kept only when the chunk
takes all of b, or b <= 0: no budget is left to admit with, so the replica forms a plan only
then), and the plan is then priced, waited for and applied
by the replica's ordinary stepped path (or a mixed stretch), so token times, ITL gaps and KV
are those of the scheduler's own plan. Where the scheduler would do
something else, the scheduler decides, from the same state: the decodes' KV not all available
(``grow_decodes`` changed nothing: ``schedule`` is called), or the chunk's KV not available
(the decodes already hold their blocks, and a second ``grow_decodes`` for them takes nothing
under ``allocates_by_target``; a failed ``grow`` takes nothing: ``schedule`` is called and
chooses whom to preempt as it would have). The conformance suite checks this path against
stepping with the fast path off (tests/test_conformance.py, tests/engine/test_mixed_plan.py).

Running order: a scheduler that walks ``running`` in order under one token budget (vLLM v1)
keeps the promise only while the prompt mid-prefill is the last running request (a decode
behind it gets its token only if the chunk left budget); it declares ``mixed_prefill_last``, and
the plan (and a mixed stretch) is formed only in that order. Its ``mixed_chunk_budget`` may
return None for a number of decodes at which the promise does not hold (more decodes than its
budget: the ones past it wait); the scheduler then plans.

Stretches: a plan of this shape (whoever formed it) and the mixed iterations after it, while
nothing changes, run as one event (sim/engine/mixed_stretch.py). What once kept them stepped, the
ITL mean as an order-dependent float sum of gaps booked in event order across replicas, is gone:
the histogram keeps an exact sum (``ExactSum``, sim/engine/itl.py), so its count, mean,
percentiles and max are the same whatever order or grouping the gaps are booked in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.engine.plan import StepPlan
from sim.engine.request import State

if TYPE_CHECKING:
    from sim.engine.replica import Replica

_DECODE = State.DECODE


def mixed_budget_of(scheduler: Any) -> Any:
    """The scheduler's ``mixed_chunk_budget`` (the promise the mixed fast plan needs), or None."""
    return getattr(scheduler, "mixed_chunk_budget", None)


def mixed_last_of(scheduler: Any) -> bool:
    """The scheduler's ``mixed_prefill_last``: its promise holds only while the prompt is last."""
    return bool(getattr(scheduler, "mixed_prefill_last", False))


def mixed_plan(rep: Replica, chunk_budget: Any) -> StepPlan | None:
    """The declaring scheduler's plan when every running request but one decodes (see the
    module docstring); None, with nothing changed, when the running set is not of that shape.
    The caller has checked that nothing is swapped or paused; if something waits, only a chunk
    that takes the whole budget left (or no budget left) keeps the promise."""
    if not getattr(rep.kv, "allocates_by_target", False):  # read here: a model switch may rebuild the KV
        return None
    running = rep.running
    if rep._mixed_last:  # the prompt must be last: what returns None below, told in O(1) first
        if not running or running[-1].state == _DECODE:
            return None
        room = chunk_budget(len(running) - 1)  # the room the shape checked below gives
        if room is None or (rep.waiting and running[-1].remaining_prefill_tokens < room):
            return None
    decodes = [r for r in running if r.state == _DECODE]  # the list ``grow_decodes`` makes
    if len(decodes) != len(running) - 1:
        return None  # no prompt in flight, or two: the scheduler splits the budget
    prefill = running[-1]  # the newest, mostly
    if prefill.state == _DECODE:
        if rep._mixed_last:
            return None  # a decode behind the prompt: its token depends on the chunk (``mixed_prefill_last``)
        prefill = next(r for r in running if r.state != _DECODE)
    room = chunk_budget(len(decodes))
    if room is None:
        return None  # the promise does not hold with this many decodes: the scheduler plans
    k = prefill.remaining_prefill_tokens
    if k >= room:
        k = room  # the whole budget: nothing waiting is admitted
    elif rep.waiting:
        return None  # the prompt ends with budget left: the scheduler admits what waits
    plan = StepPlan()
    if rep.op_grow_decodes(plan, decodes) is None:  # nothing changed: the scheduler chooses whom to preempt
        return None
    if room > 0:
        if rep.kv.grow(prefill, k) is None:
            return rep.scheduler.schedule(rep.ops)  # the same state for it: see the module docstring
        plan.add_prefill(prefill, k)
    return plan
