"""Decode stretches that go on through a finish (issue 21).

A decode stretch (sim/engine/fast_path.py) ends at the first finish among its requests; its
finishes are applied at the end of their iteration (KV freed, recorder rows, load index,
``on_done``) and, when nothing waits, the loop forms the next plan itself (``_decode_all``:
every running request decodes, one token each, under a ``fast_forward_safe`` scheduler) and runs
it as a new stretch for the smaller batch. This module skips that round trip in two ways.

1. ``_decode_rest`` (every replica): at the finish, in the same process step, it forms the plan
   the loop would form: the survivors, their context and tokens left in one pass, the loop's own
   checks (nothing waiting, swapped, paused or held, no boundary call, no swap copy pending,
   every survivor decoding), ``allocate_each(survivors, 1)``. Nothing is applied early or late:
   the finishes are applied by the same code at the same event, the next stretch is planned on
   the same state with the same KV calls in the same order, and the checks run after the
   finishes, so whatever an ``on_done`` listener did (a request enqueued, a boundary call, a hold)
   is seen. It needs a KV manager that allocates by target (a failed ``allocate_each`` keeps the
   blocks taken before the failing request and changes nothing else, so the loop's own
   ``_decode_all`` repeats it without effect); any other goes round the loop.

2. ``_thru_stretch`` (a replica alone, ``thru_alone``: the cluster's only replica, no controllers,
   hand-off, multi-model pools, predictor, closed-loop workload or per-iteration log, so nothing
   but the arrivals can read it): the stretch and the ones ``_decode_rest`` would form after each
   finish, up to the iteration the next arrival falls in (``arrival_bound``), are priced at once
   and run as ONE wait::

       | B requests ... | r1 done | B-1 requests ... | r2, r3 done | B-3 requests ...|<- arrival
       one event at the end of the iteration the arrival falls in (or sooner, ``cut_stretch``)

   The finishes in between are applied when the stretch is synced (``_thru_cross`` inside
   ``_advance``): by the cluster before it routes each arrival and before it records the
   unfinished at a time limit, by any view or ``cut_stretch``, and at the stretch's end; each
   stretch's iterations first, then its finishes with their own end time, then the next
   stretch's requests, in the order stepping applies them, so KV blocks, LRU evictions, ITL,
   token times, statistics and the recorder's rows (in their order) are the same. Nobody can
   tell they were applied late: the arrival is the first to look, the cluster's ``on_done`` only
   counts (the last finish, which may end the run, always ends a stretch, at its time). The
   scheduler's decision at each finish is ``_decode_all``'s, since nothing can arrive before the
   bound; the KV is counted as if no request finished (``affordable_steps`` of the whole batch
   up to the last iteration, fewer if it says so): finishes only give blocks back
   (``finishes_give_back``: the paged manager's own ``free`` and ``affordable_steps``), so every
   ``allocate_each`` stepping would make in between succeeds. Each iteration is priced by itself,
   for its own batch and context, the end times are one running sum, and each stretch's busy time
   is added as ``_stretch`` adds it, so the numbers are the bits ``_stretch`` gives.
"""

from __future__ import annotations

from sim.engine.clock import at
from sim.engine.fast_path import _NO_LIMIT, DecodeStretchMixin, context_and_left
from sim.engine.plan import StepPlan
from sim.engine.request import State


class ThroughFinishMixin:
    """``_decode_rest`` and ``_thru_stretch`` (the replica's loop calls them); needs ``Replica``'s attributes."""

    # ------------------------------------------------------------------ through finishes, one wait
    def _thru_stretch(self, plan: StepPlan):
        """The decode stretch of ``plan`` and the stretches ``_decode_rest`` would form after each
        of its finishes before the next arrival, as one wait (see the module docstring), or
        ``_stretch(plan)`` where that does not apply. True if it ended at finishes (``running``
        still holds them, as after ``_stretch``)."""
        reqs = plan.decode
        bound = self.arrival_bound() if self.arrival_bound is not None else None
        kv = self.kv
        if bound is None or self.attention_saved_tokens is not None or not getattr(kv, "finishes_give_back", False):
            return (yield from self._stretch(plan))
        pre = self._st_pre
        if pre is not None and pre[0] is reqs:
            context, left = pre[1], pre[2]
        else:
            context, left = context_and_left(reqs)
        if kv.affordable_steps(reqs, left) < left:
            return (yield from self._stretch(plan))  # blocks run out before the first finish: its own case
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
            # the survivors, their context and fewest tokens left (counted from the stretch's start), in one pass
            rest, computed, fewest = [], 0, _NO_LIMIT
            for r in batch:
                k = r.output_tokens - r.num_output_tokens
                if k > b:
                    rest.append(r)
                    computed += r.num_computed_tokens
                    if k < fewest:
                        fewest = k
            if not rest:
                last = b
                break
            cuts.append((b, rest))
            batch, a = rest, b
            context, b = computed + len(rest) * (1 + a), fewest  # one more token each, a iterations in
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

    def sync_finishes(self) -> None:
        """``sync()`` if a stretch going on through finishes has one before now still to apply
        (the cluster calls this before it routes an arrival: what the router reads without a
        sync, e.g. ``num_outstanding``, is then as stepping shows it)."""
        b = self._thru_b
        if b < _NO_LIMIT and self._st_ends_list[b - 1] < self.env.now:
            self.sync()

    def _thru_cross(self, done: int, alloc: int) -> None:
        """``_advance(done, alloc)`` across the finishes of a ``_thru_stretch`` before them: each
        stretch's iterations applied, its statistics counted and its finishes applied with their
        end time, as ``_stretch`` ends; then the next stretch's requests go on."""
        ends = self._st_ends_list
        advance = DecodeStretchMixin._advance  # a decode stretch's own (no mixed or speculative stretch runs)
        while alloc > self._thru_b:
            b = self._thru_b
            advance(self, b, b)
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
        advance(self, done, alloc)

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
