"""The named operations a scheduler changes its replica's state with.

A scheduler gets ``ReplicaOps``: the replica's read-only view plus these operations, each a
whole state change (queues, KV, counters) done by the replica itself::

    admit(req, max_tokens)      waiting -> running: prefix match, KV check, allocate (None: no room)
    grow(req, tokens)           KV for tokens of a running request (None: no room)
    grow_decodes(plan)          one token of KV for every running decode, all or none, into the plan
    grow_leading_decodes(plan, max_num)   the same for the decodes ahead of the first prefill
    grow_all_decoding(plan)     grow_decodes when every running request decodes (else None)
    preempt(req, mode)          running -> waiting (recompute: KV freed) | swapped (KV to host)
    swap_in(req)                swapped -> running (False: no room)
    reject(req, reason)         waiting/swapped -> rejected, with a reason
    recompute_paused()          a cut step's requests -> waiting, KV freed (strict priority)

Requests are passed as views. The KV check of ``admit`` is vLLM's: blocks for the covered
tokens (computed or cached prefix) plus the new ones, less those held, must be available
beyond ``reserve_blocks`` (the watermark).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.engine.request import State
from sim.engine.views import ReplicaView, RequestView

if TYPE_CHECKING:
    from sim.engine.plan import StepPlan
    from sim.engine.replica import Replica

_DECODE = State.DECODE


class ReplicaOps(ReplicaView):
    """A replica view for its own scheduler, with the operations that change it."""

    __slots__ = ()

    def __init__(self, replica: Replica):
        super().__init__(replica)

    def running_now(self) -> list[RequestView]:
        """The running requests now, as a list (a snapshot: it does not follow later changes)."""
        return [r.view for r in self._rep.running]

    def running_prefills_now(self) -> list[RequestView]:
        """The running requests not decoding (mid-prefill), in running order (a snapshot)."""
        decode = _DECODE
        return [r.view for r in self._rep.running if r.state != decode]

    def grow_decodes(self, plan: StepPlan) -> int | None:
        """KV for one more token of every running decode, in running order, each then added to
        ``plan`` as a decode (``grow(req, 1)`` and ``plan.add_decode(req)`` for each in turn):
        the number added, or None, with nothing changed, unless they all fit at once (the
        caller then goes one by one and preempts where needed)."""
        return self._rep.op_grow_decodes(plan)

    def grow_all_decoding(self, plan: StepPlan) -> int | None:
        """``grow_decodes(plan)`` when no running request is mid-prefill (``running_prefills_now()``
        empty), else None with nothing changed: one pass over the batch for the check, and the
        running list itself as the decodes (``grow_decodes`` lists them again)."""
        running = self._rep.running
        decode = _DECODE
        for r in running:
            if r.state != decode:
                return None
        return self._rep.op_grow_decodes(plan, running)

    def grow_leading_decodes(self, plan: StepPlan, max_num: int | None) -> int:
        """``grow_decodes`` for the running decodes ahead of the first running request that is not
        decoding (at most ``max_num`` of them; None: no cap): the number added, or 0, with nothing
        changed, unless they all fit at once (the caller then goes one by one)."""
        running = self._rep.running
        decode = _DECODE
        n = 0
        for r in running:
            if r.state != decode:
                break
            n += 1
        if not n or (max_num is not None and n > max_num):
            return 0
        return self._rep.op_grow_decodes(plan, running[:n]) or 0

    def admit(self, req: RequestView, max_tokens: int | None = None, *, reserve_blocks: int = 0,
              whole: bool = False, reserve_tokens: int = 0) -> int | None:
        """Start waiting request ``req`` with a chunk of at most ``max_tokens`` prompt tokens
        (all of them if None). ``whole``: start only if the whole rest of the prompt fits in
        ``max_tokens``. ``reserve_tokens``: KV to reserve up front (Orca). Returns the chunk
        scheduled, or None (nothing changed) when it does not fit the budget or the KV."""
        return self._rep.op_admit(req._r, max_tokens, reserve_blocks, whole, reserve_tokens)

    def grow(self, req: RequestView, num_tokens: int, lookahead: int = 0) -> int | None:
        """Allocate KV for ``num_tokens`` more tokens of running ``req``; None if no room."""
        return self._rep.kv.grow(req._r, num_tokens, lookahead)

    def preempt(self, req: RequestView, mode: str | None = None) -> None:
        """Take running ``req`` off the device: ``recompute`` (KV freed, back to the front of the
        queue) or ``swap`` (KV to host; recompute when the host is full); None: the KV
        manager's ``preemption_mode``."""
        self._rep.op_preempt(req._r, mode)

    def preempt_last(self, mode: str | None = None) -> RequestView:
        """Preempt the most recently admitted running request (vLLM's victim); returns it."""
        victim = self._rep.running[-1]
        self._rep.op_preempt(victim, mode)
        return victim.view

    def swap_in(self, req: RequestView, reserve_blocks: int = 0) -> bool:
        """Bring swapped ``req`` back with KV for its next token(s); False if it does not fit."""
        return self._rep.op_swap_in(req._r, reserve_blocks)

    def reject(self, req: RequestView, reason: str) -> None:
        """Give up on waiting or swapped ``req``: it can never be served here."""
        self._rep.op_reject(req._r, reason)

    def recompute_paused(self) -> None:
        """Preempt, by recompute, every request of the step cut at a layer boundary."""
        self._rep.op_recompute_paused()
