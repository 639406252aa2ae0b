"""Speculative stretches: the steps of an unchanged speculating batch planned at once, run as one event.

Mixed into ``Replica`` (through ``SpeculationMixin``). Applies when the replica's
``spec_fast_forward`` holds (the engine's fast path on, a ``fast_forward_safe`` scheduler, a
speculator) and, at an iteration boundary, nothing waits, is swapped, paused, held or due at
the boundary, no step hook, held pool, swap copy or attention-saved tokens are in play, every
running request decodes, the cost models price arrays (``decode_times_at_s`` /
``decode_times_grid_s``) and the speculator's ``stretch_k`` names the k every request proposes
whatever the state (the replica drawing acceptance). Then, for up to ``CHUNK`` steps (more for
small batches, ``PLAN_DRAWS``) and at most until the first request finishes, the acceptance
outcomes of every step are read at once off the replica's block of acceptance draws (the same
stream, in the same order, as drawing step by step), so every step's context and tokens are
known, and the verify and draft passes of all the steps are priced as arrays.

The first step's KV is taken as stepped (``allocate_each``, then the lookahead ``allocate``
per request; a refused slot runs that step as stepping runs it, k = 0 there, and re-plans).
Then a *segment* of the planned steps runs as one event, as the decode fast path runs a
decode stretch (sim/engine/fast_path.py, whose ``sync``, ``cut_stretch`` and ``wake`` serve
both)::

    plan:     | s0 | s1 | s2 | s3 | s4 |...| sL |   outcomes, times, tokens per step known
    segment:  one wait to the end of sL (the KV manager's ``lookahead_steps`` bounds L)
    sync():   steps ended before now applied (tokens, ITL, stats), KV held for the one in progress
    cut:      an arrival (or a request joining or leaving) moves the wait to the end of the
              step in progress; the rest is re-planned from the state at that boundary
    end:      the steps before the last applied, the last one as stepped (_account, _apply:
              finishes, forget, trim), then the next segment or plan

Why exact. With nothing waiting under a ``fast_forward_safe`` scheduler the plan is every
running request (the decode fast path's premise), ``stretch_k`` says the proposal is fixed,
and the array pricing evaluates the scalar formulas' operations in their order; the end times
are the same running sum (one add per step). Anything that could change the batch or read it
mid-segment either cuts it (``wake``, ``at_next_boundary``, ``reserve_kv``) or syncs first
(``sync`` by views, detach and controllers; a KV view's ``sync_kv`` is a full ``sync`` here), so
it sees what stepping shows at that moment: the steps ended before now applied, the step in
progress holding its lookahead slots. A step applied late does what ``_account`` and
``_apply_speculative`` do, with the floats (busy, step and draft seconds) summed step by step in
step order, the integer counts summed, and the ITL gaps (a request's first, one per step per
request, a 0 per accepted token) booked in any order (the histogram's counts and exact sum do
not depend on it); ``observe`` is told the outcomes step by step (``observe_steps``). KV: stepping
takes each request's slots at each step and trims the rejected ones at its end; within
``lookahead_steps`` steps each request's blocks only grow from step to step and all fit, so
one ``allocate`` to the step's slots leaves the same blocks, counts and evicted units (see
``PagedKVManager.lookahead_steps``); a KV manager without that answer runs one step per event.
Step-log rows of the steps before a segment's last are written with nothing waiting and the
whole batch running (``Recorder.on_planned_step``), as they were when those steps ended.

A speculator without ``stretch_k`` (its proposal reads the state) still has its steps' plans
formed without the scheduler call (``_spec_decode_step``), one step at a time.
"""

from __future__ import annotations

from functools import reduce
from itertools import accumulate
from operator import add, sub

import numpy as np

from sim.engine.clock import at
from sim.engine.plan import StepPlan
from sim.engine.request import State

CHUNK = 64          # steps planned at once, at least (re-planned from the state when used up) ...
PLAN_DRAWS = 4096   # ... or as many as need this many acceptance draws
DRAW_BLOCK = 4096   # acceptance draws taken from the replica's rng at a time
SUM_IN_PYTHON = 32  # steps whose seconds a late apply sums in Python floats (more: in numpy)
_max = np.maximum.reduce


def _chunk_lists(chunk: list) -> tuple[list[float], list[float]]:
    """A planned chunk's step and draft seconds as lists, taken from its arrays once, when first
    read (a long segment sums them in numpy and reads only its last step's)."""
    if chunk[1] is None:
        chunk[1], chunk[2] = chunk[6].tolist(), chunk[7].tolist()
    return chunk[1], chunk[2]


class SpecStretchMixin:
    """Acceptance draws drawn ahead, and speculative stretches; needs ``Replica``'s attributes."""

    _accept_buf: np.ndarray | None = None   # draws of ``accept_rng`` taken ahead, in stream order
    _accept_pos = 0                         # the next unused one
    _accept_runs: tuple | None = None       # (rate, ``_runs_below(rate)``) of the buffer as it is
    _spec_one_by_one = False                # the speculator has no ``stretch_k``: plain steps
    _spec: tuple | None = None              # (k, first chunk step, chunk) of the stretch in progress
    _spec_ends: np.ndarray | None = None    # its step ends as an array (long segments), else None

    def _accept_draws(self, m: int) -> tuple[list[float], int]:
        """The next ``m`` acceptance draws, which are used up, as a list and the position of the
        first (0)."""
        buf, pos = self._draws_ahead(m)
        self._accept_pos = pos + m
        return buf[pos:pos + m].tolist(), 0

    def _draws_ahead(self, m: int) -> tuple[np.ndarray, int]:
        """The buffer and position of the next ``m`` acceptance draws, not used up. The rng is
        read in blocks; its doubles come out in the same order as ``m`` at a time."""
        buf, pos = self._accept_buf, self._accept_pos
        if buf is None or pos + m > len(buf):
            fresh = self.accept_rng.random(max(DRAW_BLOCK, m))
            buf = self._accept_buf = np.concatenate((buf[pos:], fresh)) if buf is not None and pos < len(buf) \
                else fresh
            pos = self._accept_pos = 0
            self._accept_runs = None
        return buf, pos

    def _runs_below(self, rate: float) -> np.ndarray:
        """For each position of the draw buffer, how many draws from there on are below ``rate``
        before the first that is not (to the buffer's end), computed once per buffer and rate: the
        accepted drafts of a request proposing k from a position are this capped at k."""
        runs = self._accept_runs
        if runs is None or runs[0] != rate:
            buf = self._accept_buf
            where = np.arange(len(buf), dtype=np.int64)
            rejected = np.where(buf < rate, len(buf), where)  # each rejection's own position
            runs = self._accept_runs = (rate, np.minimum.accumulate(rejected[::-1])[::-1] - where)
        return runs[1]

    def _boundary_clear(self) -> bool:
        """Nothing at this boundary that the ordinary loop must handle before a decode step."""
        return not (self._at_boundary or self.waiting or self.swapped or self.paused is not None
                    or self.hold_request is not None or self.held_pool is not None or self.pending_swap_bytes
                    or self.step_hook is not None or self.attention_saved_tokens is not None)

    def _plan_spec_chunk(self, reqs: list, k: int) -> list | None:
        """The next steps of ``reqs`` all proposing ``k``, up to ``CHUNK`` and at most through the
        first finish: [steps, step seconds and draft seconds as lists (None until
        ``_chunk_lists`` takes them), accepted drafts, tokens emitted before each step and the KV
        slots held in each step, per step and request, then the step and draft seconds as arrays]."""
        spec = self.speculator
        n = len(reqs)
        if n == 1:
            return self._plan_spec_chunk_one(reqs[0], k)
        computed = 0
        left_min = None
        lefts = []
        rates = []
        computed0 = []
        decode = State.DECODE
        for r in reqs:
            if r.state != decode:
                return None
            computed += r.num_computed_tokens
            computed0.append(r.num_computed_tokens)
            left = r.output_tokens - r.num_output_tokens
            lefts.append(left)
            if left_min is None or left < left_min:
                left_min = left
            rates.append(r.spec_acceptance if r.spec_acceptance is not None else spec.acceptance_rate(r.view))
        m = min(max(CHUNK, PLAN_DRAWS // (n * k)), left_min)
        if m <= 0:
            return None
        need = m * n * k
        buf, pos = self._draws_ahead(need)  # each step uses up its own as it runs
        # accepted drafts: the run of draws below the rate before the first rejection
        if rates.count(rates[0]) == n:  # one rate: read off the buffer's runs, at each request's first draft
            accepted = np.minimum(self._runs_below(rates[0])[pos:pos + need:k], k).reshape(m, n)
        else:
            draws = buf[pos:pos + need].reshape(m, n, k)
            accepted = np.cumprod(draws < np.array(rates, dtype=np.float64)[None, :, None], axis=2).sum(axis=2)
        emit = accepted + 1
        out = np.cumsum(emit, axis=0)  # tokens out after each step, uncapped (non-decreasing)
        if n == 1:
            steps = min(int(np.searchsorted(out[:, 0], lefts[0])) + 1, m)
        else:
            finishing = (out >= np.array(lefts, dtype=np.int64)[None, :]).any(axis=1)
            steps = int(finishing.argmax()) + 1
            if not finishing[steps - 1]:
                steps = m
        before = (out - emit)[:steps]  # tokens out before each step
        context = before.sum(axis=1) + computed  # the batch's computed tokens before each step
        verify_s = self.cost_model.decode_times_at_s(n, n * (k + 1), context + n * (k + 1))
        draft_s = spec.uniform_draft_times_at_s(n, context, k)
        if verify_s is None or draft_s is None:  # not priceable as arrays: never
            self.spec_fast_forward = False
            return None
        # a step's time is its verify pass plus its drafts, one add, as stepping prices it
        step_s = verify_s + draft_s
        return [steps, None, None, accepted[:steps], before,
                np.array(computed0, dtype=np.int64)[None, :] + before + (1 + k), step_s, draft_s]

    def _plan_spec_chunk_one(self, r, k: int) -> list | None:
        """``_plan_spec_chunk`` of a batch of one request (most batches of a lightly loaded
        replica): the same arrays from the same operations on them, with fewer passes (one rate,
        one column)."""
        if r.state != State.DECODE:
            return None
        left = r.output_tokens - r.num_output_tokens
        m = min(max(CHUNK, PLAN_DRAWS // k), left)
        if m <= 0:
            return None
        rate = r.spec_acceptance if r.spec_acceptance is not None else self.speculator.acceptance_rate(r.view)
        need = m * k
        pos = self._draws_ahead(need)[1]  # each step uses up its own as it runs
        accepted = np.minimum(self._runs_below(rate)[pos:pos + need:k], k)
        emit = accepted + 1
        out = emit.cumsum()  # tokens out after each step, uncapped (non-decreasing)
        steps = int(out.searchsorted(left)) + 1
        if steps > m:
            steps = m
        before = out[:steps] - emit[:steps]  # tokens out before each step
        computed = before + r.num_computed_tokens  # the batch's computed tokens before each step
        slots = computed + (k + 1)  # the verify passes' contexts are the slots held in each step
        # the price tables indexed directly: ``computed`` only grows, so its last is its largest
        # (``decode_times_at_s`` / ``uniform_draft_times_at_s`` read the same tables, after a max
        # and a min over the contexts, through four calls)
        hi = int(computed[-1])
        tab = getattr(self.cost_model, "verify_table_s", None)
        verify_t = None if tab is None else tab(1, k + 1, hi + k + 1)
        tab = None if verify_t is None else getattr(self.speculator, "uniform_draft_table_s", None)
        draft_t = None if tab is None else tab(1, k, hi)
        if draft_t is not None:
            verify_s, draft_s = verify_t[slots], draft_t[computed]
        else:
            verify_s = self.cost_model.decode_times_at_s(1, k + 1, slots)
            draft_s = self.speculator.uniform_draft_times_at_s(1, computed, k)
            if verify_s is None or draft_s is None:  # not priceable as arrays: never
                self.spec_fast_forward = False
                return None
        step_s = verify_s + draft_s
        return [steps, None, None, accepted[:steps].reshape(steps, 1),
                before.reshape(steps, 1), slots.reshape(steps, 1), step_s, draft_s]

    def _spec_stretch(self):
        """Run speculative steps of an unchanged batch as planned chunks (see the module
        docstring); returns True if any step ran (the loop then starts over at the boundary)."""
        if self._spec_one_by_one:
            return (yield from self._spec_decode_step())
        spec = self.speculator
        kv = self.kv
        ran = False
        while self.running and self._boundary_clear():
            k = spec.stretch_k(self.view)
            if k is None:  # the proposal may depend on the state: from now on one step at a time
                self._spec_one_by_one = True
                return (yield from self._spec_decode_step()) or ran
            running = self.running
            n = len(running)
            chunk = self._plan_spec_chunk(running, k)
            if chunk is None:
                return ran
            steps = chunk[0]
            s = 0
            while s < steps:
                if s and not (self.running is running and len(running) == n and self._boundary_clear()):
                    break  # re-plan (or hand back) from the boundary as it is
                if not kv.allocate_each(running, 1):
                    return ran  # the scheduler decides whom to preempt (it sees the blocks taken)
                refused = None
                for i, r in enumerate(running):
                    if kv.allocate(r, 1, k) is None:
                        if refused is None:
                            refused = []
                        refused.append(i)
                if refused is not None:  # run this step as stepping would (k = 0 where refused), then re-plan
                    granted = [k] * n
                    for i in refused:
                        granted[i] = 0
                    plan = StepPlan()
                    plan.decode = list(running)
                    plan.decode_tokens = [g + 1 for g in granted]
                    self._price_drafts(plan, [r.view for r in plan.decode], granted)
                    yield from self._run_step(plan)
                    return True
                s = yield from self._spec_segment(running, k, chunk, s)
                ran = True
                if self._st_cut:
                    break
        return ran

    def _spec_segment(self, running: list, k: int, chunk: list, s0: int):
        """Steps ``s0``.. of ``chunk`` (step ``s0``'s KV allocated) as one event, as many as the KV
        manager can hold as one growth (``lookahead_steps``; 1 without it); ``cut_stretch`` may end
        it earlier. Returns the chunk step after the last one run."""
        env = self.env
        running = list(running)  # the step's batch (a request joining mid-step waits for the next)
        steps, _, _, accepted, _, slots, step_arr, draft_arr = chunk
        m = steps - s0
        lookahead = getattr(self.kv, "lookahead_steps", None)
        if m > 1 and lookahead is not None:
            for r in running:
                if r.first_token_s is None:  # one step, as before
                    m = 1
                    break
            else:
                m = lookahead(running, slots[s0:])
        elif m > 1:
            m = 1
        if m <= SUM_IN_PYTHON:
            times = _chunk_lists(chunk)[0][s0:s0 + m]
            times[0] += env.now
            ends = list(accumulate(times))
            self._spec_ends = None
        else:  # numpy's cumsum: the same running sum, one add per step left to right
            times = chunk[6][s0:s0 + m].copy()
            times[0] += env.now
            arr = self._spec_ends = times.cumsum()
            ends = arr.tolist()
        self._st_reqs, self._st_ends_list = running, ends
        self._st_last, self._st_done, self._st_cut = m, 0, False
        self._spec = (k, s0, chunk)
        # one wait; ``cut_stretch`` moves it up to an earlier step end (without an interrupt)
        yield at(env, ends[m - 1])
        last = self._st_last
        self._accept_pos += last * len(running) * k  # the steps' draws, read off in the plan
        self._advance(last - 1, last)
        self._st_reqs = self._spec = None
        s = s0 + last - 1  # the last step, as stepped (a request may finish)
        plan = StepPlan()
        plan.decode = running
        plan.decode_tokens = [k + 1] * len(running)
        plan.draft_s = float(draft_arr[s])  # the list's float, without the list
        plan.spec_accepted = accepted[s].tolist()
        self._account(plan, float(step_arr[s]))
        self._apply(plan, ends[last - 1])
        return s + 1

    def _advance(self, done: int, alloc: int) -> None:
        """Apply steps [st_done, done) of the stretch in progress and hold KV for step ``done``
        (``alloc`` = done + 1 always: the step in progress); a decode stretch's own otherwise."""
        if self._spec is None:
            super()._advance(done, alloc)
            return
        i0 = self._st_done
        if done <= i0:
            return
        if self.recorder.steps is None:
            self._spec_apply(i0, done)
        else:  # each step's row reads the blocks held in that step
            ends = self._st_ends_list
            step_s = _chunk_lists(self._spec[2])[0]
            n = len(self._st_reqs)
            for i in range(i0, done):
                t = step_s[self._spec[1] + i]
                self.recorder.on_planned_step(self, ends[i] - t, t, n)
                self._spec_apply(i, i + 1)
        self._st_done = done

    def sync_kv(self) -> None:
        """A speculative stretch's KV follows its tokens: ``sync()``; a decode stretch's own otherwise."""
        if self._spec is not None:
            self.sync()
        else:
            super().sync_kv()

    def _spec_apply(self, i0: int, i1: int) -> None:
        """Apply steps [i0, i1) of the stretch in progress, none its last: what ``_account`` and
        ``_apply_speculative`` do for each, with each request's accepted + 1 tokens per step out
        at the step's end; then take each request's KV for step ``i1`` (one growth, see
        ``lookahead_steps``). Floats are summed step by step, as stepping sums them; the ITL
        histogram's gaps (the first per request, then one per step per request and one 0 per
        accepted token) are order-free."""
        k, s0, chunk = self._spec
        _, _, _, accepted, before, _, step_arr, draft_arr = chunk
        a0, a1 = s0 + i0, s0 + i1
        reqs, ends, recorder = self._st_reqs, self._st_ends_list, self.recorder
        n = len(reqs)
        cnt = i1 - i0
        emitted = (before[a1] - before[a0]).tolist()  # the stretch's last step is not among them
        # one add per step, in step order, as stepping adds them: a few in Python floats, many as
        # one sequential accumulate (each column's running sum, left to right: the same roundings)
        if cnt <= SUM_IN_PYTHON:
            step_s, draft_s = _chunk_lists(chunk)
            times = step_s[a0:a1]
            self.spec_step_s = reduce(add, times, self.spec_step_s)
            self.busy_decode_s = reduce(add, times, self.busy_decode_s)
            self.spec_draft_s = reduce(add, draft_s[a0:a1], self.spec_draft_s)
        else:
            block = np.empty((cnt + 1, 3), dtype=np.float64)
            block[0] = (self.spec_step_s, self.busy_decode_s, self.spec_draft_s)
            block[1:, 0] = block[1:, 1] = step_arr[a0:a1]
            block[1:, 2] = draft_arr[a0:a1]
            self.spec_step_s, self.busy_decode_s, self.spec_draft_s = np.add.accumulate(block, axis=0)[-1].tolist()
        self.num_steps += cnt
        self.batch_size_sum += n * cnt
        self.spec_decode_steps += n * cnt
        self.spec_steps += n * cnt
        self.spec_proposed += n * k * cnt
        total = sum(emitted)
        self.spec_emitted += total
        self.spec_accepted += total - n * cnt
        first_end, last_end = ends[i0], ends[i1 - 1]
        tail_max = 0.0
        if cnt > 1:
            arr = self._spec_ends
            if arr is None or cnt <= SUM_IN_PYTHON:
                gaps = list(map(sub, ends[i0 + 1:i1], ends[i0:i1 - 1]))
                tail_max = max(gaps)
            else:  # the same differences, in numpy
                gaps = arr[i0 + 1:i1] - arr[i0:i1 - 1]
                tail_max = float(_max(gaps, None))
            recorder.itl_many(gaps, n)
        if total > n * cnt:  # the accepted tokens come out with their step's bonus token: gaps of 0
            recorder.itl_weighted(0.0, total - n * cnt)
        prev = reqs[0].last_token_s
        together = i0 > 0 or n == 1 or all(r.last_token_s == prev for r in reqs)
        if together:
            recorder.itl_weighted(first_end - prev, n)
        itl_one = recorder.itl_one
        per_request = self.spec_by_request
        kv = self.kv
        token_ends = np.array(ends[i0:i1]) if recorder.record_token_times else None
        for j, r in enumerate(reqs):
            e = emitted[j]
            row = per_request.get(r.id)
            if row is None:
                row = per_request[r.id] = [0, 0, 0, 0, 0]
            row[0] += cnt
            row[1] += cnt
            row[2] += k * cnt
            row[3] += e - cnt
            row[4] += e
            gap = first_end - r.last_token_s
            if not together:
                itl_one(gap)
            if tail_max > gap:
                gap = tail_max
            if gap > r.itl_max_s:
                r.itl_max_s = gap
            if token_ends is not None and r.token_times is not None:
                r.token_times.extend(np.repeat(token_ends, accepted[a0:a1, j] + 1).tolist())
            r.num_computed_tokens += e
            r.num_output_tokens += e
            r.last_token_s = last_end
            if kv.allocate(r, 1, k) is None:
                raise AssertionError("a planned speculative stretch ran out of KV")
        views = [r.view for r in reqs]
        observe_steps = getattr(self.speculator, "observe_steps", None)
        if observe_steps is not None:
            observe_steps(views, k, accepted[a0:a1])
        else:  # a plug-in speculator: the outcomes, step by step, as stepping tells them
            observe = self.speculator.observe
            for row in accepted[a0:a1].tolist():
                for view, a in zip(views, row, strict=True):
                    observe(view, k, a)

    def _spec_decode_step(self):
        """Speculative steps of every running decode (a speculator whose proposals depend on
        the state), each plan formed as the decode fast path forms it (``_decode_all``) instead of
        by the scheduler, the rest as stepped, one after another while the boundary stays clear
        (what the loop would check between them). True if any step ran and the loop should start
        over; False when a plan could not be formed (then the loop goes on as if no step had run
        here: the boundary was clear, so its checks before this would have done nothing)."""
        env = self.env
        ran = False
        while self.spec_fast_forward and self.running and self._boundary_clear():
            plan = self._decode_all()
            self._st_pre = None  # read only by decode stretches
            if plan is None:
                return False  # the scheduler decides whom to preempt (it sees the blocks taken)
            self._speculate(plan)
            step_s = self._step_time(plan)  # ``_run_step``, inlined
            end = env.now + step_s
            yield at(env, end)
            self._account(plan, step_s)
            self._apply(plan, end)
            ran = True
        return ran

    def _run_step(self, plan: StepPlan):
        """Price ``plan``, wait for its end, account and apply it (one stepped iteration)."""
        step_s = self._step_time(plan)
        end = self.env.now + step_s
        yield at(self.env, end)
        self._account(plan, step_s)
        self._apply(plan, end)
