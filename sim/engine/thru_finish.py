"""Decode stretches that go on through a finish, in the same wake-up (issue 21).

A decode stretch (sim/engine/fast_path.py) ends at the first finish among its requests. Its
finishes are applied there, at the end of their iteration (KV freed, recorder rows, load index,
``on_done``), by the replica's own process, as stepping applies them. What the loop then does
when nothing waits is fixed: under a ``fast_forward_safe`` scheduler it forms the plan itself
(``_decode_all``: every running request decodes, one token each) and runs it as a new stretch.
``_decode_rest`` does exactly that at once, without going round the loop::

    stretch 1 (B requests) | r finishes  -> _finish(r, end)   (same code, same moment)
                           | _decode_rest: survivors, their context and tokens left (one pass),
                           |   the loop's own checks, allocate_each(survivors, 1)
    stretch 2 (B-1)        | priced for the smaller batch from the same end time ...

Why it is exact: it applies nothing early or late. The finishes are applied by the same code at
the same event as before; the next stretch is planned at that moment on the same state, with
the same KV calls in the same order as the loop's ``_decode_all`` would make. It goes on only
where the loop would reach ``_stretch`` with that plan: nothing waiting, swapped, paused or held,
no call queued for the boundary (``at_next_boundary``), no swap copy pending, every survivor
decoding and a block for each. Anything an ``on_done`` listener did in the meantime (a request
enqueued, a boundary call, a hold) is seen by those checks, since they run after the finishes.
It also needs a KV manager that allocates by target (``allocates_by_target``: a failed
``allocate_each`` keeps the blocks taken before the failing request and changes nothing else,
so the loop's own ``_decode_all`` repeats it without effect); any other manager goes round the
loop as before. Anyone who reads the replica in between sees what stepping would show, because
nothing is deferred: views sync stretches as they always did.
"""

from __future__ import annotations

from sim.engine.plan import StepPlan
from sim.engine.request import State

_NO_LIMIT = 1 << 62  # as fast_path: no request's tokens left reach this


class ThroughFinishMixin:
    """``_stretches``: decode stretches one after another; needs ``Replica``'s attributes."""

    def _stretches(self, plan: StepPlan):
        """Run ``plan`` as a decode stretch (``_stretch``), then, while it ended at finishes and
        the loop would run the survivors as the next stretch, that one, in the same process step."""
        while (yield from self._stretch(plan)):
            batch = self._decode_rest()
            if batch is None:
                return
            plan.decode = batch

    def _decode_rest(self) -> list | None:
        """Drop the finished from ``running``; return the next stretch's batch if the loop would
        run one now through ``_decode_all`` (its first iteration's blocks then taken, and
        ``_st_pre`` set as ``_decode_all`` sets it), else None (the loop goes on as before)."""
        decode = State.DECODE
        finished = State.FINISHED
        survivors = []
        context = 0
        left = _NO_LIMIT
        all_decode = True
        for r in self.running:
            state = r.state
            if state < finished:
                survivors.append(r)
                if state != decode:
                    all_decode = False
                context += r.num_computed_tokens
                k = r.output_tokens - r.num_output_tokens
                if k < left:
                    left = k
        self.running = survivors
        # the loop's path to ``_stretch`` through ``_decode_all`` (replica.py ``_loop``)
        if not (all_decode and survivors and self.fast_forward and not self.spec_fast_forward
                and not self._at_boundary and not self.waiting and not self.swapped and self.paused is None
                and self.hold_request is None and not self.pending_swap_bytes and self._idle is None):
            return None
        kv = self.kv
        if not getattr(kv, "allocates_by_target", False) or not kv.allocate_each(survivors, 1):
            return None
        batch = list(survivors)
        self._st_pre = (batch, context + len(batch), left)
        return batch
