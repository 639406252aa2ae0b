"""Shared pieces of the continuous-batching schedulers: queue order, admission, preemption.

A scheduler is one class with ``schedule(rep) -> StepPlan``, where ``rep`` is its replica's
``ReplicaOps`` (sim/engine/ops.py): a read-only view plus the named operations (admit, grow,
preempt, swap_in, reject) through which it changes queues and KV. The replica prices and
applies the plan when the step ends.

``supports_swap = True`` says the scheduler brings swapped-out requests back; a pool whose KV
manager preempts by swap needs such a scheduler (vLLM v1 and most papers' schedulers preempt
by recompute only), checked at load.

``fast_forward_safe = True`` promises: with nothing waiting or swapped and every running
request decoding, ``schedule`` decodes all running requests one token each, in order, until
a request finishes or KV runs out. The replica may then skip ahead (see sim/engine/replica.py).

``mixed_chunk_budget(num_decodes) -> int`` (optional; None: not declared) promises: with nothing
swapped or paused and every running request decoding but one mid-prefill, ``schedule`` first
grows every decode by one token through ``grow_decodes`` (doing something else only if that
returns None), then gives the prefilling request a chunk of min(its remaining prompt, b) tokens
through ``grow`` when b = ``mixed_chunk_budget(decodes added)`` is positive (doing something
else only if ``grow`` returns None), and then, if nothing waits or the chunk took all of b (or
b <= 0), nothing more. The replica then forms that plan itself (sim/engine/mixed_plan.py). A
subclass that changes ``schedule`` must check the promise still holds. A None budget says the
promise does not hold with that many decodes. ``mixed_prefill_last = True`` (default False)
narrows it to the states where the prompt mid-prefill is the last running request (a scheduler
that walks ``running`` in order under one budget: a decode behind the prompt would wait on it).

``blocked_decode_safe = True`` (default False) promises: with nothing swapped or paused and every
running request decoding, when ``schedule`` has decoded every running request one token each, in
order, and changed nothing else (its waiting requests could not start), it forms that same plan
at each next iteration while nothing arrives, finishes, joins or leaves, no KV is released and
the KV manager's ``admission_stable()`` holds. The replica then runs those iterations as one
stretch (sim/engine/blocked_stretch.py). It holds for a scheduler whose admission reads only the
queue, the running count and the KV's answers, and that keeps no state of its own per iteration.

Layer cuts and holds: ``wants_cut(view)`` (cut the preemptible step in progress when new work
arrives), ``may_resume(view)`` (a cut step, or a hold for another replica's gang, may go
on), ``holds_back(view)`` (waiting work stays queued, not rejected, while nothing runs).

Arrivals: a scheduler that defines ``on_enqueue(replica_view, request_view)`` is told, at the
moment it happens, of every request routed to its replica (VTC lifts a client's counter then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.seams import BuildContext, PolicyBase
from sim.engine.views import ReplicaView, RequestView
from sim.schema import param

Order = Literal["fcfs", "priority"]


def order_param() -> Order:
    """The ``order`` field every scheduler has: fcfs, or priority (lower value first, then FCFS)."""
    return param("fcfs", doc="waiting-queue order: fcfs, or priority (lower first, then arrival)")


class SchedulerBase(PolicyBase):
    """Queue order, admission and preemption helpers for the built-in schedulers."""

    fast_forward_safe = True
    mixed_chunk_budget = None  # (decodes) -> a prefill chunk's token budget: see the module docstring
    mixed_prefill_last = False  # the mixed promise holds only with the prompt last in ``running``
    supports_swap = False  # brings swapped requests back (swap_in_waiting); else recompute only
    blocked_decode_safe = False  # see the module docstring (sim/engine/blocked_stretch.py)

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self.by_priority = getattr(params, "order", "fcfs") == "priority"

    # ------------------------------------------------------------------ replica hooks (defaults)
    def wants_cut(self, rep: ReplicaView) -> bool:
        """Cut the layer-cuttable step in progress now that new work arrived? (never)"""
        return False

    def may_resume(self, rep: ReplicaView) -> bool:
        """May a cut step resume, or this replica hold for a gang, now? (always)"""
        return True

    def holds_back(self, rep: ReplicaView) -> bool:
        """Keep waiting work queued while nothing can run (instead of rejecting it)? (no)"""
        return False

    # ------------------------------------------------------------------ waiting queue
    def peek(self, rep: ReplicaView) -> RequestView:
        """The waiting request that should start next."""
        if not self.by_priority:
            return rep.waiting[0]
        return min(rep.waiting, key=lambda r: (r.priority, r.arrival_s, r.id))

    def admit_waiting(self, rep: ReplicaOps, plan: StepPlan, budget: int | None, *, max_seqs: int,
                      reserve_blocks: int = 0, whole: bool = False, max_chunk: int | None = None,
                      candidates: Callable[[], Iterable[RequestView]] | None = None,
                      joins: Callable[[RequestView], bool] | None = None,
                      max_prompt_tokens: int | None = None, max_new: int | None = None,
                      lenient_first: bool = False) -> tuple[int, bool]:
        """Admit waiting requests in order (``peek``, or ``candidates()``) into ``plan`` while the
        token ``budget`` (None: no cap), the sequence cap and the KV (keeping ``reserve_blocks``
        free) allow. Per request: reject it if it can never fit (or its prompt exceeds
        ``max_prompt_tokens``), else start it with a chunk of at most the remaining budget
        (``max_chunk`` per request; ``whole``: the whole prompt or stop). ``max_new``: most
        requests to start; ``lenient_first``: the first may exceed the budget (it runs alone
        rather than starving). Returns (tokens used, whether a candidate was left waiting)."""
        used = 0
        started = 0
        while True:
            if candidates is None:
                if not rep.waiting:
                    return used, False
                req = self.peek(rep)
            else:
                req = next(iter(candidates()), None)
                if req is None:
                    return used, False
            if (budget is not None and used >= budget and not whole) or rep.num_running >= max_seqs \
                    or (max_new is not None and started >= max_new):
                return used, True
            if joins is not None and not joins(req):
                return used, True
            if max_prompt_tokens is not None and req.input_tokens + req.num_output_tokens > max_prompt_tokens:
                rep.reject(req, "prompt_exceeds_max_num_batched_tokens")
                continue
            if rep.kv.never_fits(req, reserve_blocks):
                rep.reject(req, "exceeds_kv_capacity")
                continue
            room = None if budget is None or (lenient_first and not started) else budget - used
            if max_chunk is not None:
                room = max_chunk if room is None else min(room, max_chunk)
            n = rep.admit(req, room, reserve_blocks=reserve_blocks, whole=whole)
            if n is None:
                return used, True
            plan.add_prefill(req, n)
            used += n
            started += 1

    # ------------------------------------------------------------------ running set
    def grow_or_preempt(self, rep: ReplicaOps, req: RequestView, num_tokens: int, plan: StepPlan) -> bool:
        """Allocate KV for ``num_tokens`` of ``req``, preempting from the tail of ``running``
        (vLLM's victim choice) until it fits. False if ``req`` itself had to be preempted."""
        return self._grow(rep, req, num_tokens, plan) >= 0

    def _grow(self, rep: ReplicaOps, req: RequestView, num_tokens: int, plan: StepPlan) -> int:
        """``grow_or_preempt``, counting: the requests preempted, or -1 if ``req`` was one."""
        victims = 0
        while rep.grow(req, num_tokens) is None:
            victim = rep.preempt_last()
            plan.remove(victim)
            if victim == req:
                return -1
            victims += 1
        return victims

    def schedule_running(self, rep: ReplicaOps, plan: StepPlan, budget: int | None,
                         phase: str = "all") -> tuple[int, bool]:
        """Schedule running requests in order: decodes 1 token, prefills a chunk of at most
        ``budget`` tokens. ``phase`` limits it to 'decode' or 'prefill' requests.
        Returns (tokens used, whether anything was preempted)."""
        # the decodes alone with no budget, or every running request decoding with one token each
        # within the budget: the loop below would grow each in order and add it, which
        # ``grow_decodes`` does at once when no decode needs a preemption
        if phase == "decode" and budget is None:
            added = rep.grow_decodes(plan)
            if added is not None:
                return added, False
        elif phase == "all" and (budget is None or rep.num_running <= budget):
            added = rep.grow_all_decoding(plan)  # None where a running request is mid-prefill
            if added is not None:
                return added, False
        used = i = 0
        if phase == "all":
            # the decodes ahead of the first prefill, one token each, at once where they all fit the
            # budget and the KV: what the loop below does for them when none needs a preemption
            used = i = rep.grow_leading_decodes(plan, budget)
        preempted = False
        # a snapshot; preemption only ever removes its tail (prefill phase: only the prefills)
        running = rep.running_prefills_now() if phase == "prefill" else rep.running_now()
        n = len(running)
        want_decode = phase != "prefill"
        want_prefill = phase != "decode"
        grow, add_decode, add_prefill = rep.grow, plan.add_decode, plan.add_prefill  # hot loop: bound once
        while i < n:
            req = running[i]
            decoding = req.is_decoding
            if (decoding and not want_decode) or (not decoding and not want_prefill):
                i += 1
                continue
            if decoding:
                k = 1
            else:
                if budget is not None and used >= budget:
                    break
                k = req.remaining_prefill_tokens
                if budget is not None:
                    k = min(k, budget - used)
            if budget is not None and used + k > budget:
                break
            if grow(req, k) is None:  # no room: preempt from the tail until it fits
                victims = self._grow(rep, req, k, plan)
                if victims < 0:
                    preempted = True
                    break
                if victims:
                    preempted = True
                    if phase == "prefill":  # the victims among the prefills are this list's tail
                        alive = set(rep.running_now())
                        while n > i + 1 and running[n - 1] not in alive:
                            n -= 1
                    else:
                        n -= victims
            if decoding:
                add_decode(req)
            else:
                add_prefill(req, k)
            used += k
            i += 1
        return used, preempted

    def swap_in_waiting(self, rep: ReplicaOps, plan: StepPlan, max_seqs: int, reserve_blocks: int) -> None:
        """Bring swapped requests back (FCFS) while their KV and one more token fit."""
        while rep.swapped and rep.num_running < max_seqs:
            req = rep.swapped[0]
            if not rep.swap_in(req, reserve_blocks):
                break
            if req.is_decoding:
                plan.add_decode(req)
            else:
                plan.add_prefill(req, req.remaining_prefill_tokens)
