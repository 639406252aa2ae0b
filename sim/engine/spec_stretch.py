"""Speculative stretches: the steps of an unchanged speculating batch planned at once.

Mixed into ``Replica`` (through ``SpeculationMixin``). Applies when the replica's
``spec_fast_forward`` holds (the engine's fast path on, a ``fast_forward_safe`` scheduler, a
speculator) and, at an iteration boundary, nothing waits, is swapped, paused, held or due at
the boundary, no step hook, held pool, swap copy or attention-saved tokens are in play, every
running request decodes, the cost models price arrays (``decode_times_at_s`` /
``decode_times_grid_s``) and the speculator's ``stretch_k`` names the k every request proposes
whatever the state (the replica drawing acceptance). Then, for up to ``CHUNK`` steps and at
most until the first request finishes, the acceptance outcomes of every step are read at once
off the replica's block of acceptance draws (``_accept_draws``: the same stream, in the same
order, as drawing step by step), so every step's context is known, and the verify and draft
passes of all the steps are priced as arrays. The steps then run one event each, as stepped:
the scheduler's grow step (``allocate_each``, as the decode fast path forms it), the lookahead
reservation, the wait, ``_account`` and ``_apply`` (the precomputed outcomes handed over as
the plan's ``spec_accepted``), so tokens, KV, ITL gaps and finishes come out in the same order
at the same times. Only the scheduler call, the proposal and the per-step pricing are skipped.
A speculator without ``stretch_k`` (its proposal reads the state) still has its steps' plans
formed without the scheduler call (``_spec_decode_step``), one step at a time.

Why exact: with nothing waiting under a ``fast_forward_safe`` scheduler the plan is every
running request (the decode fast path's premise), ``stretch_k`` says the proposal is fixed,
the array pricing evaluates the scalar formulas' operations in their order, and a step that
cannot follow the plan (a lookahead slot not granted) is run as stepping runs it (k = 0 for
that request, drawn from the same buffer) and ends the stretch; any change at a boundary
(arrival, boundary call, batch change) hands the boundary back to the ordinary loop or
re-plans from the state as it is.
"""

from __future__ import annotations

import numpy as np

from sim.engine.clock import at
from sim.engine.plan import StepPlan
from sim.engine.request import State

CHUNK = 64          # steps planned at once (re-planned from the state when used up)
DRAW_BLOCK = 4096   # acceptance draws taken from the replica's rng at a time


class SpecStretchMixin:
    """Acceptance draws drawn ahead, and speculative stretches; needs ``Replica``'s attributes."""

    _accept_buf: list[float] | None = None  # draws of ``accept_rng`` taken ahead, in stream order
    _accept_pos = 0                         # the next unused one
    _spec_one_by_one = False                # the speculator has no ``stretch_k``: plain steps

    def _accept_draws(self, m: int) -> tuple[list[float], int]:
        """The buffer and position of the next ``m`` acceptance draws, which are used up."""
        buf, pos = self._draws_ahead(m)
        self._accept_pos = pos + m
        return buf, pos

    def _draws_ahead(self, m: int) -> tuple[list[float], int]:
        """The buffer and position of the next ``m`` acceptance draws, not used up. The rng is
        read in blocks; its doubles come out in the same order as ``m`` at a time."""
        buf, pos = self._accept_buf, self._accept_pos
        if buf is None or pos + m > len(buf):
            fresh = self.accept_rng.random(max(DRAW_BLOCK, m)).tolist()
            buf = self._accept_buf = buf[pos:] + fresh if buf else fresh
            pos = self._accept_pos = 0
        return buf, pos

    def _boundary_clear(self) -> bool:
        """Nothing at this boundary that the ordinary loop must handle before a decode step."""
        return not (self._at_boundary or self.waiting or self.swapped or self.paused is not None
                    or self.hold_request is not None or self.held_pool is not None or self.pending_swap_bytes
                    or self.step_hook is not None or self.attention_saved_tokens is not None)

    def _plan_spec_chunk(self, reqs: list, k: int) -> tuple | None:
        """(steps, verify seconds, draft seconds, accepted per request) of the next steps of
        ``reqs`` all proposing ``k``: up to ``CHUNK`` and at most through the first finish."""
        spec = self.speculator
        n = len(reqs)
        computed = 0
        left_min = None
        lefts = []
        rates = []
        decode = State.DECODE
        for r in reqs:
            if r.state != decode:
                return None
            computed += r.num_computed_tokens
            left = r.output_tokens - r.num_output_tokens
            lefts.append(left)
            if left_min is None or left < left_min:
                left_min = left
            rates.append(r.spec_acceptance if r.spec_acceptance is not None else spec.acceptance_rate(r.view))
        m = min(CHUNK, left_min)
        if m <= 0:
            return None
        need = m * n * k
        buf, pos = self._draws_ahead(need)  # each step uses up its own as it runs
        draws = np.array(buf[pos:pos + need], dtype=np.float64).reshape(m, n, k)
        # accepted drafts: the run of draws below the rate before the first rejection
        accepted = np.cumprod(draws < np.array(rates, dtype=np.float64)[None, :, None], axis=2).sum(axis=2)
        out = np.cumsum(accepted + 1, axis=0)  # tokens out after each step, uncapped
        finishing = (out >= np.array(lefts, dtype=np.int64)[None, :]).any(axis=1)
        steps = int(finishing.argmax()) + 1 if finishing.any() else m
        before = np.zeros(steps, dtype=np.int64)  # the batch's computed tokens before each step
        if steps > 1:
            before[1:] = out[:steps - 1].sum(axis=1)
        before += computed
        verify_s = self.cost_model.decode_times_at_s(n, n * (k + 1), before + n * (k + 1))
        draft_s = spec.uniform_draft_times_at_s(n, before, k)
        if verify_s is None or draft_s is None:  # not priceable as arrays: never
            self.spec_fast_forward = False
            return None
        return steps, verify_s.tolist(), draft_s.tolist(), accepted[:steps].tolist()

    def _spec_stretch(self):
        """Run speculative steps of an unchanged batch as planned chunks (see the module
        docstring); returns True if any step ran (the loop then starts over at the boundary)."""
        if self._spec_one_by_one:
            return (yield from self._spec_decode_step())
        env = self.env
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
            steps, verify_s, draft_s, accepted = chunk
            tokens = [k + 1] * n
            last = steps - 1
            nk = n * k
            recorder = self.recorder
            for s in range(steps):
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
                d = draft_s[s]
                step_s = verify_s[s]
                if d:
                    step_s += d
                end = env.now + step_s
                yield at(env, end)
                self._accept_pos += nk  # this step's draws, read off in the plan
                ran = True
                if s == last:  # a request may finish: the ordinary bookkeeping and apply
                    plan = StepPlan()
                    plan.decode = list(running)
                    plan.decode_tokens = tokens
                    plan.draft_s = d
                    plan.spec_accepted = accepted[s]
                    self._account(plan, step_s)
                    self._apply(plan, end)
                    continue
                # ``_account`` for this plan (n decodes, no prefill), then its apply
                self.num_steps += 1
                self.spec_step_s += step_s
                self.batch_size_sum += n
                self.busy_decode_s += step_s
                if recorder.steps is not None:
                    recorder.on_step(self, env.now - step_s, step_s, n, 0, n)
                self._apply_spec_steady(running, accepted[s], k, d, end)
        return ran

    def _spec_decode_step(self):
        """One speculative step of every running decode (a speculator whose proposals depend on
        the state), its plan formed as the decode fast path forms it (``_decode_all``) instead of
        by the scheduler, the rest as stepped. False, nothing done, when that does not hold."""
        if not (self.running and self._boundary_clear()):
            return False
        plan = self._decode_all()
        self._st_pre = None  # read only by decode stretches
        if plan is None:
            return False  # the scheduler decides whom to preempt (it sees the blocks taken)
        self._speculate(plan)
        yield from self._run_step(plan)
        return True

    def _run_step(self, plan: StepPlan):
        """Price ``plan``, wait for its end, account and apply it (one stepped iteration)."""
        step_s = self._step_time(plan)
        end = self.env.now + step_s
        yield at(self.env, end)
        self._account(plan, step_s)
        self._apply(plan, end)

    def _apply_spec_steady(self, reqs: list, accepted: list[int], k: int, draft_s: float, end: float) -> None:
        """``_apply`` of a planned step in which nobody finishes (every step of a chunk but its
        last): each request emits accepted + 1 tokens at ``end``, ``_apply_speculative``'s and
        ``_emit``'s bookkeeping in their order, the rejected slots' KV released."""
        spec, kv = self.speculator, self.kv
        n = len(reqs)
        self.spec_decode_steps += n
        self.spec_draft_s += draft_s
        per_request = self.spec_by_request
        itl_one = self.recorder.itl_one
        num_accepted = emitted = 0
        for r, a in zip(reqs, accepted, strict=True):
            e = a + 1
            row = per_request.get(r.id)
            if row is None:
                row = per_request[r.id] = [0, 0, 0, 0, 0]
            row[0] += 1
            row[1] += 1
            row[2] += k
            row[3] += a
            row[4] += e
            num_accepted += a
            emitted += e
            r.num_computed_tokens += e
            if r.first_token_s is None:
                for _ in range(e):
                    self._emit(r, end)
            else:  # ``_emit`` e times: the first gap, then e - 1 gaps of end - end = 0
                gap = end - r.last_token_s
                if gap > r.itl_max_s:
                    r.itl_max_s = gap
                itl_one(gap)
                for _ in range(a):
                    itl_one(0.0)
                if r.token_times is not None:
                    r.token_times.extend([end] * e)
                r.last_token_s = end
                r.num_output_tokens += e
            spec.observe(r.view, k, a)
            kv.trim(r, r.num_computed_tokens)
        self.spec_steps += n
        self.spec_proposed += n * k
        self.spec_accepted += num_accepted
        self.spec_emitted += emitted
