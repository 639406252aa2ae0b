"""Shared pieces of the continuous-batching schedulers: queue order, admission, preemption.

A scheduler is one class with ``schedule(replica) -> Batch``. It mutates the replica's
queues (``waiting``, ``running``, ``swapped``) through the replica's methods (``admit``,
``preempt``, ``swap_in``, ``reject``) and allocates KV for every token it schedules; the
replica computes the step time and applies the batch when the step ends.

``fast_forward_safe = True`` promises: with nothing waiting or swapped and every running
request decoding, ``schedule`` decodes all running requests one token each, in order, until
a request finishes or KV runs out. The replica may then skip ahead (see sim/engine/replica.py).
"""

from __future__ import annotations

from typing import Literal

from sim.engine.batch import Batch
from sim.engine.replica import Replica
from sim.engine.request import Request, State
from sim.schema import param

Order = Literal["fcfs", "priority"]


def order_param() -> Order:
    """The ``order`` field every scheduler has: fcfs, or priority (lower value first, then FCFS)."""
    return param("fcfs", doc="waiting-queue order: fcfs, or priority (lower first, then arrival)")


class SchedulerBase:
    """Queue order and preemption helpers for the built-in schedulers."""

    fast_forward_safe = True

    def __init__(self, params) -> None:
        self.params = params
        self.by_priority = getattr(params, "order", "fcfs") == "priority"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    # ------------------------------------------------------------------ waiting queue
    def peek(self, rep: Replica) -> Request:
        """The waiting request that should start next."""
        if not self.by_priority:
            return rep.waiting[0]
        return min(rep.waiting, key=lambda r: (r.priority, r.arrival_s, r.id))

    def pop(self, rep: Replica, req: Request) -> None:
        """Remove ``req`` (returned by ``peek``) from the waiting queue."""
        if rep.waiting[0] is req:
            rep.waiting.popleft()
        else:
            rep.waiting.remove(req)

    def reject_head(self, rep: Replica, req: Request, reason: str) -> None:
        """Remove ``req`` from waiting and reject it."""
        self.pop(rep, req)
        rep.reject(req, reason)

    def never_fits(self, rep: Replica, req: Request, reserve_blocks: int) -> bool:
        """True if ``req``'s prompt cannot be admitted even with every block free."""
        kv = rep.kv
        return kv.blocks_for(req.input_tokens + req.num_output_tokens) > kv.num_blocks - reserve_blocks

    def covered_tokens(self, rep: Replica, req: Request) -> int:
        """Tokens of ``req`` that need no compute if it starts now: those already computed, or
        its cached prefix (at most all but one prompt token; the last one emits the first token)."""
        cached = min(rep.kv.cached_prefix_tokens(req), req.input_tokens - 1)
        return max(req.num_computed_tokens, cached)

    def start(self, rep: Replica, req: Request, num_tokens: int, batch: Batch) -> None:
        """Pop ``req`` from waiting, take its cached prefix, allocate and schedule a chunk."""
        self.pop(rep, req)
        ok = rep.kv.allocate(req, num_tokens)
        assert ok, "start() called without a successful capacity check"
        rep.admit(req)
        batch.add_prefill(req, num_tokens)

    # ------------------------------------------------------------------ running set
    def allocate_or_preempt(self, rep: Replica, req: Request, num_tokens: int, batch: Batch) -> bool:
        """Allocate KV for ``num_tokens`` of ``req``, preempting from the tail of ``running``
        (vLLM's victim choice) until it fits. False if ``req`` itself had to be preempted."""
        kv = rep.kv
        while not kv.allocate(req, num_tokens):
            victim = rep.running.pop()
            unschedule(batch, victim)
            rep.preempt(victim)
            if victim is req:
                return False
        return True

    def schedule_running(self, rep: Replica, batch: Batch, budget: int | None,
                         phase: str = "all") -> tuple[int, bool]:
        """Schedule running requests in order: decodes 1 token, prefills a chunk of at most
        ``budget`` tokens. ``phase`` limits it to 'decode' or 'prefill' requests.
        Returns (tokens used, whether anything was preempted)."""
        used = 0
        preempted = False
        i = 0
        running = rep.running
        while i < len(running):
            req = running[i]
            decoding = req.state == State.DECODE
            if (phase == "decode" and not decoding) or (phase == "prefill" and decoding):
                i += 1
                continue
            if decoding:
                n = 1
            else:
                if budget is not None and used >= budget:
                    break
                n = req.remaining_prefill_tokens
                if budget is not None:
                    n = min(n, budget - used)
            if budget is not None and used + n > budget:
                break
            before = len(running)
            if not self.allocate_or_preempt(rep, req, n, batch):
                preempted = True
                break
            preempted |= len(running) < before
            if decoding:
                batch.decode.append(req)
            else:
                batch.add_prefill(req, n)
            used += n
            i += 1
            running = rep.running
        return used, preempted

    def swap_in_waiting(self, rep: Replica, batch: Batch, max_seqs: int, reserve_blocks: int) -> None:
        """Bring swapped requests back (FCFS) while their KV and one more token fit."""
        kv = rep.kv
        while rep.swapped and len(rep.running) < max_seqs:
            req = rep.swapped[0]
            if kv.blocks_for(req.num_computed_tokens + 1) > kv.num_available - reserve_blocks:
                break
            rep.swapped.popleft()
            rep.swap_in(req)
            kv.allocate(req, 1 if req.state == State.DECODE else req.remaining_prefill_tokens)
            if req.state == State.DECODE:
                batch.decode.append(req)
            else:
                batch.add_prefill(req, req.remaining_prefill_tokens)


def unschedule(batch: Batch, req: Request) -> None:
    """Drop ``req`` from a batch being formed (it was preempted after being scheduled)."""
    if req in batch.decode:
        batch.decode.remove(req)
        return
    for k, (r, n) in enumerate(batch.prefill):
        if r is req:
            del batch.prefill[k]
            batch.num_prefill_tokens -= n
            return
