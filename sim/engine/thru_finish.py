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

from sim.engine.clock import at
from sim.engine.plan import StepPlan
from sim.engine.request import State

_NO_LIMIT = 1 << 62  # as fast_path: no request's tokens left reach this


class ThroughFinishMixin:
    """``_stretches``: decode stretches one after another; needs ``Replica``'s attributes."""

    def _stretches(self, plan: StepPlan):
        """Run ``plan`` as a decode stretch (``_stretch``, or ``_thru_stretch`` where it applies),
        then, while it ended at finishes and the loop would run the survivors as the next stretch,
        that one, in the same process step."""
        while True:
            went = (yield from self._thru_stretch(plan.decode)) if self.thru_alone else None
            if went is None:
                went = yield from self._stretch(plan)
            if not went:
                return
            batch = self._decode_rest()
            if batch is None:
                return
            plan.decode = batch

    # ------------------------------------------------------------------ through finishes, one wait
    def _thru_stretch(self, reqs: list):
        """The decode stretch of ``reqs`` and the stretches ``_decode_rest`` would form after each
        of its finishes before the next arrival, as one wait (see the module docstring); None at
        once (nothing changed) where ``_stretch`` runs it instead. True if it ended at finishes."""
        bound = self.arrival_bound() if self.arrival_bound is not None else None
        kv = self.kv
        if bound is None or self.attention_saved_tokens is not None or not getattr(kv, "finishes_give_back", False):
            return None
        pre = self._st_pre
        if pre is not None and pre[0] is reqs:
            context, left = pre[1], pre[2]
        else:
            context, left = len(reqs), _NO_LIMIT
            for r in reqs:
                context += r.num_computed_tokens
                k = r.output_tokens - r.num_output_tokens
                if k < left:
                    left = k
        if kv.affordable_steps(reqs, left) < left:
            return None  # blocks run out before the first finish: ``_stretch``'s own case
        self._st_pre = None
        env = self.env
        # price stretch after stretch, each for the requests still running, until the one the
        # next arrival falls in (bisecting the end times as ``_price_until`` does)
        ends = self._st_ends_list = []
        self._st_ends_arr = None
        cuts = []  # (iteration its stretch ends, the requests running after it)
        batch, a, b = reqs, 0, left
        while True:
            num = len(batch)
            self._st_num, self._st_ctx, self._st_planned = num, context - a * num, b
            last = self._price_until(bound, a + 1)
            if last < b or ends[b - 1] >= bound:
                break
            rest = [r for r in batch if r.output_tokens - r.num_output_tokens > b]
            if not rest:
                last = b
                break
            cuts.append((b, rest))
            batch, a = rest, b
            context, b = len(rest), _NO_LIMIT
            for r in rest:
                context += r.num_computed_tokens + a
                k = r.output_tokens - r.num_output_tokens
                if k < b:
                    b = k
        if last > left:
            # every iteration up to ``last`` fits the blocks available now even if no request
            # finished (finishes only give blocks back): so does each ``allocate_each`` stepping
            # would make, and the loop's plan at each finish is ``_decode_all``'s
            fits = kv.affordable_steps(reqs, last)
            if fits < last:
                last = fits
                while cuts and cuts[-1][0] >= last:
                    cuts.pop()
        self._st_ends_arr = None if cuts else self._st_ends_arr
        self._st_reqs, self._st_last, self._st_done, self._st_alloc = reqs, last, 0, 1
        self._st_cut = False
        self._thru = cuts[::-1]  # popped from the end, in order
        self._thru_b = cuts[0][0] if cuts else _NO_LIMIT
        self._thru_a, self._thru_start = 0, env.now
        yield at(env, ends[last - 1])
        last = self._st_last
        self._advance(last, last)  # through every finish before ``last`` (``_thru_cross``)
        batch, a = self._st_reqs, self._thru_a
        self.num_steps += last - a
        self.batch_size_sum += (last - a) * len(batch)
        end = ends[last - 1]
        self.busy_decode_s += end - self._thru_start
        self._st_reqs = self._thru = None
        self._thru_b = _NO_LIMIT
        finished = [r for r in batch if r.num_output_tokens >= r.output_tokens]
        for r in finished:
            self._finish(r, end)
        return bool(finished)

    def _thru_cross(self, done: int, alloc: int) -> None:
        """``_advance(done, alloc)`` across the finishes of a ``_thru_stretch`` before them: each
        stretch's iterations applied, its statistics counted and its finishes applied with their
        end time, as ``_stretch`` ends; then the next stretch's requests go on."""
        ends = self._st_ends_list
        while alloc > self._thru_b:
            b = self._thru_b
            self._advance(b, b)
            batch, a = self._st_reqs, self._thru_a
            self.num_steps += b - a
            self.batch_size_sum += (b - a) * len(batch)
            end = ends[b - 1]
            self.busy_decode_s += end - self._thru_start
            for r in batch:
                if r.num_output_tokens >= r.output_tokens:
                    self._finish(r, end)
            _b, rest = self._thru.pop()
            self.running = list(rest)
            self._st_reqs, self._st_done, self._st_alloc = rest, b, b
            self._thru_a, self._thru_start = b, end
            self._thru_b = self._thru[-1][0] if self._thru else _NO_LIMIT
        self._advance(done, alloc)

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
