"""The replica side of the scheduler's named operations (``ReplicaOps`` in sim/engine/ops.py).

Mixed into ``Replica``: each operation is one whole state change of the replica's queues, KV
and incremental counters (``num_pending_prefill_tokens``), so schedulers never touch them::

    op_admit            waiting -> running, first chunk (prefix match, KV check, allocation)
    op_grow_decodes     one token of KV for every running decode (all or none)
    op_preempt          running -> waiting (recompute, KV freed) | swapped (KV to host)
    op_swap_in          swapped -> running with KV for its next step
    op_reject           waiting | swapped -> rejected (host KV released)
    op_recompute_paused the cut plan's requests -> waiting, KV freed
"""

from __future__ import annotations

from sim.engine.request import Request, State


class SchedulerOpsMixin:
    """Queue and KV state changes on behalf of the scheduler; needs the attributes ``Replica`` sets."""

    def op_admit(self, req: Request, max_tokens: int | None, reserve_blocks: int, whole: bool,
                 reserve_tokens: int) -> int | None:
        """waiting -> running with a first chunk (see ``ReplicaOps.admit``)."""
        kv = self.kv
        covered = kv.covered_tokens(req)
        n = req.input_tokens + req.num_output_tokens - covered
        if max_tokens is not None and n > max_tokens:
            if whole:
                return None
            n = max_tokens
        before = req.remaining_prefill_tokens
        if kv.allocate(req, n, 0, reserve_blocks, reserve_tokens, True, covered) is None:
            return None
        if self.waiting[0] is req:
            self.waiting.popleft()
        else:
            self.waiting.remove(req)
        self.num_pending_prefill_tokens += req.remaining_prefill_tokens - before  # cached prefix
        req.state = State.PREFILL
        if req.first_scheduled_s is None:
            req.first_scheduled_s = self.env.now
        self.running.append(req)
        return n

    def op_grow_decodes(self, plan, reqs: list[Request] | None = None) -> int | None:
        """One token of KV for each running decode, in order, if all fit (see ``ReplicaOps.grow_decodes``);
        ``reqs``: those decodes, when the caller has listed them already."""
        allocate_all = getattr(self.kv, "allocate_all", None)  # an optional KV manager operation
        if allocate_all is None:
            return None
        if reqs is None:
            decode = State.DECODE
            reqs = [r for r in self.running if r.state == decode]
        if not allocate_all(reqs, 1):
            return None
        plan.decode.extend(reqs)
        return len(reqs)

    def op_preempt(self, req: Request, mode: str | None) -> None:
        """running -> waiting (recompute) or swapped (swap)."""
        if self.running[-1] is req:
            self.running.pop()
        else:
            self.running.remove(req)
        if req.state == State.PREFILL:
            self.num_pending_prefill_tokens -= req.remaining_prefill_tokens
        self._take_off(req, mode)

    def _take_off(self, req: Request, mode: str | None) -> None:
        mode = mode or self.kv.params.preemption_mode
        req.num_preemptions += 1
        if mode == "swap" and self.kv.can_swap_out(req):
            self.pending_swap_blocks += self.kv.blocks_for(req.num_computed_tokens)
            self.pending_swap_bytes += self.kv.swap_out(req)
            req.num_swaps += 1
            req.state = State.SWAPPED
            self.swapped.append(req)
            return
        self.kv.free_preempted(req)  # with retention its full blocks stay cached (policies/kv/paged.py)
        req.num_computed_tokens = 0
        req.num_cached_tokens = 0
        req.state = State.PREEMPTED
        self.waiting.appendleft(req)
        self.num_pending_prefill_tokens += req.remaining_prefill_tokens

    def op_swap_in(self, req: Request, reserve_blocks: int) -> bool:
        """swapped -> running, with KV for its next step."""
        kv = self.kv
        if not kv.can_swap_in(req, reserve_blocks, 1):
            return False
        if self.swapped[0] is req:
            self.swapped.popleft()
        else:
            self.swapped.remove(req)
        self.pending_swap_blocks += kv.blocks_for(req.num_computed_tokens)
        self.pending_swap_bytes += kv.swap_in(req)
        decoding = req.num_output_tokens > 0 and req.remaining_prefill_tokens == 1
        req.state = State.DECODE if decoding else State.PREFILL
        kv.allocate(req, 1 if decoding else req.remaining_prefill_tokens)
        if not decoding:
            self.num_pending_prefill_tokens += req.remaining_prefill_tokens
        self.running.append(req)
        return True

    def op_reject(self, req: Request, reason: str) -> None:
        """waiting/swapped -> rejected."""
        if req.state == State.SWAPPED:
            self.swapped.remove(req)
            self.kv.drop_swapped(req)
        else:
            if self.waiting and self.waiting[0] is req:
                self.waiting.popleft()
            else:
                self.waiting.remove(req)
            self.num_pending_prefill_tokens -= req.remaining_prefill_tokens
        self.reject(req, reason)

    def op_recompute_paused(self) -> None:
        """Every request of the cut plan -> waiting, KV freed."""
        cut, self.paused = self.paused, None
        if cut is None:
            return
        for r, _n in cut.prefill:
            self.num_pending_prefill_tokens -= r.remaining_prefill_tokens
        for req in reversed(cut.requests):
            self._take_off(req, "recompute")

