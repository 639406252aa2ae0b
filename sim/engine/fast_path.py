"""The decode fast path of a replica: advance pure-decode stretches in one event.

Mixed into ``Replica`` (see sim/engine/replica.py for the picture). When nothing waits and every
running request decodes under a ``fast_forward_safe`` scheduler, the next iterations are
fixed until the first request finishes, a KV block cannot be had, or a new request arrives:
the replica plans their exact end times, waits once, and applies them as if stepped one by
one (``sync`` materialises the stretch up to ``now`` for anyone who looks in between).
Results equal stepping one iteration at a time (tests/test_determinism.py).
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

import numpy as np

from sim.engine.blocked_stretch import stepwise_busy_s
from sim.engine.clock import at
from sim.engine.plan import StepPlan
from sim.engine.request import State

BOUNDED_FIRST = 8  # iterations priced first when the next arrival bounds a stretch
LONG_STRETCH = 32  # stretches longer than this are priced and summed in numpy
_INF = float("inf")
_NO_LIMIT = 1 << 62  # no request's tokens left reach this


def context_and_left(reqs: list) -> tuple[int, int]:
    """A decode batch's context with one more token each (its size plus the computed tokens) and
    the fewest output tokens any of it has left, in one pass."""
    context, left = len(reqs), _NO_LIMIT
    for r in reqs:
        context += r.num_computed_tokens
        k = r.output_tokens - r.num_output_tokens
        if k < left:
            left = k
    return context, left


class DecodeStretchMixin:
    """Fast-forwarding of decode stretches; needs the attributes ``Replica`` sets."""

    def _decode_all(self) -> StepPlan | None:
        """The plan a ``fast_forward_safe`` scheduler forms when nothing waits and every
        running request decodes: all of them, one token each. None if that does not hold or
        a block cannot be had (the scheduler then decides whom to preempt)."""
        running = self.running
        decode = State.DECODE
        if running and running[-1].state != decode:  # the newest is the likeliest to be prefilling
            return None
        context = len(running)  # and, in the same pass, what ``_stretch`` needs (see there)
        left = _NO_LIMIT
        for r in running:
            if r.state != decode:
                return None
            context += r.num_computed_tokens
            k = r.output_tokens - r.num_output_tokens
            if k < left:
                left = k
        if not self.kv.allocate_each(running, 1):
            return None  # blocks taken so far stay with their requests; the scheduler sees them
        plan = StepPlan()
        plan.decode = list(running)
        self._st_pre = (plan.decode, context, left)
        return plan

    def _stretch(self, plan: StepPlan, stepwise_busy: bool = False):
        """Run ``plan`` and the pure-decode iterations after it as one event. ``stepwise_busy``:
        the busy time is summed step by step, as stepping sums it (a stretch in place of stepped
        iterations, sim/engine/blocked_stretch.py); else as the span of the stretch."""
        env = self.env
        reqs = plan.decode
        # iterations that can run unchanged, and the context, in one pass over the batch (done
        # already when ``_decode_all`` formed this plan: nothing changed tokens since)
        pre, self._st_pre = self._st_pre, None
        if pre is not None and pre[0] is reqs:
            context, left = pre[1], pre[2]
        else:
            context, left = context_and_left(reqs)
        n = self.kv.affordable_steps(reqs, left)  # until the first finish and while KV lasts
        if self.attention_saved_tokens is not None:  # constant in a stretch (no block maps mid-stretch)
            context -= self.attention_saved_tokens(reqs)
        # end times as Python floats: a stretch uses a few of them one at a time, and the running
        # sum rounds as numpy's cumsum would (one add per step, left to right). A long stretch
        # sums in numpy and keeps the array too (its gaps are taken from it).
        bound = self.arrival_bound() if self.arrival_bound is not None else None
        if bound is not None:  # priced up to the iteration the next arrival cuts (``_price_until``)
            self._st_ends_list = []
            self._st_num, self._st_ctx, self._st_planned = len(reqs), context, n
            n = self._price_until(bound)
            ends = self._st_ends_list
        elif n <= LONG_STRETCH:
            times = self.cost_model.decode_step_times_list(len(reqs), context, n)
            times[0] += env.now
            ends = list(accumulate(times))
            self._st_ends_arr = None
        else:
            times = np.array(self.cost_model.decode_step_times_s(len(reqs), context, n), dtype=np.float64)
            times[0] += env.now
            arr = self._st_ends_arr = times.cumsum()  # np.cumsum without its Python wrapper
            ends = arr.tolist()
        self._st_reqs, self._st_ends_list = reqs, ends
        self._st_last, self._st_done, self._st_alloc = n, 0, 1
        self._st_cut = False
        start = env.now
        kv0 = None
        if self.recorder.steps is not None:  # what the per-iteration log needs to replay the stretch
            kv0 = (self.kv.num_used, *self.kv.decode_holdings(reqs))
            waiting0 = self.num_waiting  # 0 but with a blocked queue, which stays as it is until the last step
        # one wait; ``cut_stretch`` moves it up to an earlier iteration end (without an interrupt)
        yield at(env, ends[n - 1])
        if bound is not None:  # no arrival cut it at the bound: the same stretch goes on
            while not self._st_cut and self._st_last < self._st_planned:
                bound = self.arrival_bound()
                self._st_last = self._price_until(bound if bound is not None else _INF, self._st_last + 1)
                yield at(env, ends[self._st_last - 1])
        last = self._st_last
        self._advance(last, last)
        self.num_steps += last
        self.batch_size_sum += last * len(reqs)
        if stepwise_busy:
            self.busy_decode_s = stepwise_busy_s(self, self.busy_decode_s, len(reqs), context, last)
        else:
            self.busy_decode_s += ends[last - 1] - start
        if kv0 is not None:
            self.recorder.on_stretch(self, start, np.array(ends[:last]), len(reqs), self._stretch_kv_used(kv0, last),
                                     waiting0)
        self._st_reqs = None
        # before the fewest tokens left are out nobody has finished (iterations add one token each)
        finished = [r for r in reqs if r.num_output_tokens >= r.output_tokens] if last >= left else None
        if finished:
            end = ends[last - 1]
            for r in finished:
                self._finish(r, end)
            return True  # ``running`` still holds them: the loop's ``_decode_rest`` (sim/engine/thru_finish.py)
        return False

    def cut_stretch(self, lazy: bool = False) -> None:
        """End the stretch in progress after its iteration in progress (for new work or a
        request leaving): its last iteration moves up and the waiting process is woken at its
        end instead (the event it waited for is dropped, as an interrupt would drop it).

        The stretch is synced first, unless ``lazy`` (a request queued: ``Replica.enqueue``) and it
        is a decode stretch: then its iterations before now are applied at its end, with the rest,
        in one ``_advance`` (the same calls on the same values: the KV through the iteration in
        progress, each request's tokens and gaps, which nothing reads in between without a
        ``sync`` or ``sync_kv`` of its own); only the finishes of a stretch through finishes that
        ended before now are applied now (``sync_finishes``), since they change what the cluster
        counts."""
        if lazy and self._spec is None and self._mx is None:
            self.sync_finishes()
        else:
            self.sync()
        self._st_cut = True
        ends = self._st_ends_list
        new_last = min(self._st_last, bisect_left(ends, self.env.now, 0, self._st_last) + 1)
        if new_last < self._st_last:
            self._st_last = new_last
            proc = self.process
            proc._target.callbacks.remove(proc._resume)
            event = at(self.env, ends[new_last - 1])
            event.callbacks.append(proc._resume)
            proc._target = event

    def _price_until(self, bound: float, at_least: int = 1) -> int:
        """Price more of the planned stretch (``_st_planned`` iterations of ``_st_num`` requests
        from context ``_st_ctx``), appending end times to ``_st_ends_list``, until one ends at or
        after ``bound``; returns the iterations to run: up to that one (``at_least``), or all
        planned.

        When the cluster knows a time before which no arrival comes to this replica (the next
        arrival's when every arrival comes here, or the arrival the router's picks ahead say is
        this replica's next: ``Cluster.arrival_bound_s``), it bounds where the stretch will be
        cut, so pricing stops there instead of at the first finish. It is
        exact for any bound: each iteration is priced by itself (the cost model's pure-decode
        times are per-step values of context), the ends are the same running sum, and a
        stretch that reaches its bound uncut goes on (``_stretch``), as one long stretch would.
        """
        ends = self._st_ends_list
        planned, num = self._st_planned, self._st_num
        while True:
            k = len(ends)
            if k:
                i = bisect_left(ends, bound)
                if i + 1 < at_least:
                    i = at_least - 1
                if i < k:
                    return i + 1
                if k >= planned:
                    return planned
                last_s, left_s = ends[-1] - (ends[-2] if k > 1 else self._st_start), bound - ends[-1]
            else:
                self._st_start = self.env.now
                # the last step priced here, maybe for another batch: a quarter more iterations
                # than it says (pricing a few too many costs less than a second round)
                last_s, left_s = 0.8 * self._st_step_s, bound - self._st_start
            # the iterations until the bound at the last step time (steps only grow), and two more
            count = planned - k
            if last_s > 0 and left_s < count * last_s:
                count = min(count, max(int(left_s / last_s) + 2, at_least - k, 1))
            elif not last_s > 0 and not k:
                count = min(count, BOUNDED_FIRST)
            if count <= LONG_STRETCH:
                times = self.cost_model.decode_step_times_list(num, self._st_ctx + k * num, count)
                self._st_step_s = times[-1]
                times[0] += ends[-1] if k else self._st_start
                ends.extend(accumulate(times))
                self._st_ends_arr = None
            else:  # in numpy, as a long unbounded stretch: the first chunk keeps its array (_advance)
                times = np.array(self.cost_model.decode_step_times_s(num, self._st_ctx + k * num, count),
                                 dtype=np.float64)
                self._st_step_s = float(times[-1])
                times[0] += ends[-1] if k else self._st_start
                arr = times.cumsum()
                self._st_ends_arr = None if k else arr
                ends.extend(arr.tolist())

    def sync(self) -> None:
        """Bring a stretch's tokens and KV up to ``now`` (iterations ended strictly before)."""
        if self._st_reqs is None:
            return
        done = bisect_left(self._st_ends_list, self.env.now, 0, self._st_last)
        self._advance(done, min(done + 1, self._st_last))

    def sync_kv(self) -> None:
        """Bring only a stretch's KV up to ``now``: take the blocks ``sync()`` would take, now,
        and leave the requests' token counts (and their ITL gaps) to the stretch's next sync or
        its end. KV views call this: the KV state is then the same at every moment as with
        ``sync()`` (the same ``allocate_each`` calls at the same times on the same token counts),
        without materialising the stretch. A KV manager whose ``allocate_each`` depends on more
        than each request's computed + new tokens (no ``allocates_by_target``) gets ``sync()``."""
        reqs = self._st_reqs
        if reqs is None:
            return
        alloc = self._alloc_due()
        if not alloc:
            return
        if not getattr(self.kv, "allocates_by_target", False) or self._thru is not None:
            self.sync()  # (a stretch through finishes: thru_finish.py, whose finishes free blocks)
            return
        # as _advance allocates, from the same st_done
        if not self.kv.allocate_each(reqs, alloc - self._st_done):
            raise AssertionError("a planned decode stretch ran out of KV")
        self._st_alloc = alloc

    def _alloc_due(self) -> int:
        """The iteration through which a stretch in progress must hold its KV now (the one in
        progress, plus one), or 0 when the blocks it holds already cover it (``sync_kv`` of a
        decode or a mixed stretch)."""
        last, ends, now = self._st_last, self._st_ends_list, self.env._now  # ``now``'s attribute (read often)
        if self._st_alloc >= last or ends[self._st_alloc - 1] >= now:
            return 0  # the iteration in progress has its slot already (what the bisect would say)
        return min(bisect_left(ends, now, 0, last) + 1, last)

    def _advance(self, done: int, alloc: int) -> None:
        """Apply stretch iterations [st_done, done) and allocate KV for [st_alloc, alloc)."""
        if alloc > self._thru_b:  # past a finish of a stretch that goes on through it (thru_finish.py)
            self._thru_cross(done, alloc)
            return
        reqs, kv = self._st_reqs, self.kv
        i0 = self._st_done
        recorder = self.recorder
        record_tokens = self._st_ends_list[i0:done] if recorder.record_token_times and done > i0 else None
        grow = 0  # with the token counts, in one pass: tokens beyond the computed each request's KV takes
        if alloc > self._st_alloc:
            # each r has computed (start + st_done) tokens; iteration i needs start + i + 1 slots
            if done > i0 and record_tokens is None and getattr(kv, "allocates_by_target", False):
                grow = alloc - i0  # ``allocate_each(reqs, grow)``'s steps, request by request, below
            elif not kv.allocate_each(reqs, alloc - i0):
                raise AssertionError("a planned decode stretch ran out of KV")
            self._st_alloc = alloc
        if done <= i0:
            return
        ends = self._st_ends_list
        steps = done - i0
        first_end = ends[i0]
        prev = reqs[0].last_token_s
        together = i0 > 0
        if record_tokens is None and not together:
            together = True
            for r in reqs:
                if r.last_token_s != prev:
                    together = False
                    break
        together = together and record_tokens is None
        # common case: every request's last token came out together, so all first gaps are
        # equal (always so after a stretch's first iteration: its tokens come out together)
        if together and 1 < steps <= 32:  # the first gap and the others, all of the batch's weight, in one
            gaps = [first_end - prev]
            gaps.extend([ends[k + 1] - ends[k] for k in range(i0, done - 1)])  # rounded as np.diff would
            gap = max(gaps)
            recorder.itl_many(gaps, len(reqs))
        else:
            tail_max = 0.0
            if steps > 1:
                if steps <= 32:  # a few: Python floats round each difference as np.diff would
                    gaps = [ends[k + 1] - ends[k] for k in range(i0, done - 1)]
                    tail_max = max(gaps)
                else:
                    arr = self._st_ends_arr  # np.diff's subtraction, without its Python wrapper
                    if arr is not None:
                        gaps = arr[i0 + 1:done] - arr[i0:done - 1]
                    else:
                        arr = np.array(ends[i0:done], dtype=np.float64)
                        gaps = arr[1:] - arr[:-1]
                    tail_max = float(gaps.max())
                recorder.itl_many(gaps, len(reqs))
            if together:
                gap = first_end - prev
                recorder.itl_weighted(gap, len(reqs))
                if tail_max > gap:
                    gap = tail_max
        last_end = ends[done - 1]
        if together:
            if grow:
                bs, taken = kv.block_size, 0
                for r in reqs:
                    if gap > r.itl_max_s:
                        r.itl_max_s = gap
                    c = r.num_computed_tokens
                    need = -(-(c + grow) // bs) - r.kv_blocks - r.kv_shared_blocks
                    if need > 0:
                        r.kv_blocks += need
                        taken += need
                    r.num_computed_tokens = c + steps
                    r.num_output_tokens += steps
                    r.last_token_s = last_end
                if taken and not kv.take_grown(taken):
                    raise AssertionError("a planned decode stretch ran out of KV")
                self._st_done = done
                return
            for r in reqs:
                if gap > r.itl_max_s:
                    r.itl_max_s = gap
                r.num_computed_tokens += steps
                r.num_output_tokens += steps
                r.last_token_s = last_end
            self._st_done = done
            return
        if grow and not kv.allocate_each(reqs, grow):
            raise AssertionError("a planned decode stretch ran out of KV")
        itl_one = recorder.itl_one
        for r in reqs:
            gap = first_end - r.last_token_s
            itl_one(gap)
            if tail_max > gap:
                gap = tail_max
            if gap > r.itl_max_s:
                r.itl_max_s = gap
            r.num_computed_tokens += steps
            r.num_output_tokens += steps
            r.last_token_s = last_end
            if record_tokens is not None and r.token_times is not None:
                r.token_times.extend(record_tokens)
        self._st_done = done

    def _stretch_kv_used(self, kv0: tuple, last: int) -> np.ndarray:
        """KV blocks in use during each stretch iteration, as stepping would log them: the other
        blocks as at the start, except in the last iteration, which sees any change made during
        it (a reservation for a copy: it also cut the stretch); the stretch's requests' blocks
        grow lazily from what they held at the start."""
        used0, comp0, held0 = kv0
        used = (used0 - int(held0.sum())) + self.kv.decode_usage(comp0, held0, last)
        used[-1] = self.kv.num_used
        return used
