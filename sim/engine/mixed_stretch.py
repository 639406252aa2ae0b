"""Mixed stretches: the chunked-prefill iterations of one prompt beside its decodes, run as one event.

Mixed into ``Replica``. Applies when the iteration about to be stepped is one prompt P's chunk
beside every running decode (formed by the mixed fast plan, sim/engine/mixed_plan.py, or by the
scheduler, e.g. the iteration that admits P), the scheduler declares ``mixed_chunk_budget``, P's
prompt goes on after this chunk, and nothing else is in play at the boundary: no steps log
(``record_steps``), nothing swapped or paused, no swap copy, step hook, hold or boundary
callback, no attention-saved tokens, a paged-style KV manager (``allocates_by_target``,
``affordable_chunked_steps``, its own ``grow``), every decode has its first token, and, for a
scheduler that declares ``mixed_prefill_last`` (vLLM v1), P is the last running request (nothing
joins behind it mid-stretch without cutting it: ``attach_running`` and ``enqueue`` wake). Then the
iterations after it are known (each is the mixed fast plan of its boundary)::

    b = mixed_chunk_budget(D)                D decodes, a fixed number in the stretch
    iteration j: every decode one token; P a chunk of k_j = min(b, P's prompt left) tokens

until P's prompt is done (its last chunk: the stretch's last iteration), the first decode
finishes (its last token: the last iteration), KV runs short (the last iteration whose blocks,
decodes' and P's, all fit the blocks available now), or, with requests waiting, P's chunk no
longer takes all of b (the scheduler would admit: the stretch ends before). The replica prices
them (the cost model's ``chunk_step_times_list``: ``step_time_s`` for each, with the chunk and
context stepping would pass), waits once for the last end, and applies them as stepped: the
iterations before the last by ``_advance`` (decode tokens, ITL, token times through the decode
stretch's own, P's computed tokens, the pending-prefill count and the step statistics), the last
through ``_account`` and ``_apply`` (P's first token and TTFT, finishes, hand-offs), as any
stepped iteration.

Why exact. The first iteration is the plan as given; with nothing else changing, each after it is
the mixed fast plan of its boundary, which is what stepping runs there (and the scheduler's own
plan: the ``mixed_chunk_budget`` promise): the same decodes and chunk, priced with the same
arguments (``chunk_step_times_list`` is ``step_time_s`` per iteration, bit for bit), the end
times the same running sum (one add per iteration). What could change the premise mid-stretch
cuts it after the iteration in progress, as for a decode stretch (sim/engine/fast_path.py:
``wake`` on an arrival, a request attached, a KV reservation or a hold request;
``at_next_boundary``); what reads it syncs first: ``sync()``
(views, detach, controllers) applies the iterations ended before now; ``sync_kv()`` (KV views)
takes the blocks of the iteration in progress (decodes by ``allocate_each``, then P by ``grow``
to the same targets: under ``allocates_by_target`` blocks, counts and LRU evictions depend only
on the targets, not on how the growth is split); the replica view's ``pending_prefill_tokens``
syncs while a mixed stretch runs. The ITL histogram's counts, exact sum and max do not depend on
the order gaps are booked in (sim/engine/itl.py), so booking a stretch's gaps when it is applied
leaves every ITL statistic as stepping leaves it; floats (busy seconds) are added iteration by
iteration in order. Blocks freed mid-stretch (a finished KV copy) only make more available: the
stretch ends no later than planned, and the next boundary plans from the state as it is.
"""

from __future__ import annotations

from functools import reduce
from itertools import accumulate
from operator import add

from sim.engine.clock import at
from sim.engine.plan import StepPlan
from sim.engine.request import State

_DECODE = State.DECODE


class MixedStretchMixin:
    """Mixed-iteration stretches; needs the attributes ``Replica`` and ``DecodeStretchMixin`` set."""

    _mx: tuple | None = None       # (P, tokens of P through each iteration, step times) in progress

    def _mixed_premise(self, plan: StepPlan) -> tuple | None:
        """(decodes, P, P's first chunk, b) if ``plan`` is a mixed iteration and a stretch may follow it."""
        if len(plan.prefill) != 1 or plan.decode_tokens is not None or plan.step_s is not None \
                or self.swapped or self.paused is not None or self.recorder.steps is not None \
                or self.pending_swap_bytes or self.step_hook is not None or self.hold_request is not None \
                or self._at_boundary or self.attention_saved_tokens is not None:
            return None
        kv = self.kv
        if not getattr(kv, "allocates_by_target", False) or getattr(kv, "affordable_chunked_steps", None) is None \
                or "grow" in vars(kv):
            return None
        p, k0 = plan.prefill[0]
        running = self.running
        if p.remaining_prefill_tokens <= k0 or len(plan.decode) != len(running) - 1 or p.state == _DECODE:
            return None  # its prompt ends in this iteration, or the batch is not all the running decodes
        decodes = [r for r in running if r.state == _DECODE]  # as ``mixed_plan`` lists them
        if len(decodes) != len(plan.decode) or p not in running or (self._mixed_last and running[-1] is not p):
            return None  # not the batch, or (``mixed_prefill_last``) a request behind P: see mixed_plan.py
        for r in decodes:
            if r.first_token_s is None:
                return None
        b = self._mixed_budget(len(decodes))
        return (decodes, p, k0, b) if b is not None and b > 0 else None

    def _mixed_stretch(self, plan: StepPlan):
        """Run ``plan`` (one prompt's chunk beside every running decode) and the mixed iterations
        that follow it unchanged as one event (see the module docstring); False, nothing done, if
        the premise does not hold or no iteration follows."""
        pre = self._mixed_premise(plan)
        if pre is None:
            return False
        decodes, p, k0, b = pre
        left = p.remaining_prefill_tokens - k0  # after this iteration's chunk
        planned = 1 + (left // b if self.waiting else -(-left // b))  # with requests waiting: full chunks only
        num = len(decodes)
        context = num
        fewest = planned + 1  # the fewest tokens a decode has left (more than planned: none finishes)
        for r in decodes:
            context += r.num_computed_tokens
            k = r.output_tokens - r.num_output_tokens
            if k < fewest:
                fewest = k
        if fewest < planned:
            planned = fewest
        if planned <= 1:
            return False
        cum = [0, k0]  # P's tokens through each iteration
        for j in range(1, planned):
            rest = left - (cum[j] - k0)
            cum.append(cum[j] + (b if rest >= b else rest))
        m = self.kv.affordable_chunked_steps(decodes, p, cum, planned)
        if m <= 1:
            return False
        env = self.env
        times = self.cost_model.chunk_step_times_list(num, context, p.num_computed_tokens, cum, m)
        first = times[0]
        times[0] = env.now + first
        ends = list(accumulate(times))
        times[0] = first
        self._st_reqs, self._st_ends_list, self._st_ends_arr = decodes, ends, None
        self._st_last, self._st_done, self._st_alloc, self._st_cut = m, 0, 1, False
        self._mx = (p, cum, times)
        # one wait; ``cut_stretch`` moves it up to an earlier iteration end (without an interrupt)
        yield at(env, ends[m - 1])
        last = self._st_last
        if last < fewest and self.on_prefilled is None and p.num_output_tokens + 1 < p.output_tokens:
            # no decode finishes in the last iteration and P's prompt ending there calls nothing back
            # (no hand-off; its first token is not its last): the decodes' last tokens go with the
            # rest, in one pass, and P's prompt ends as ``_apply`` ends it
            self._advance(last, last)
            self._st_reqs = self._mx = None
            if p.num_computed_tokens == p.input_tokens + p.num_output_tokens:
                self.kv.commit_prefix(p)
                p.state = _DECODE
                self._emit(p, ends[last - 1])
            return True
        self._advance(last - 1, last)
        self._st_reqs = self._mx = None
        final = StepPlan()  # the last iteration, as stepped
        final.decode = decodes
        final.prefill = [(p, cum[last] - cum[last - 1])]
        self._account(final, times[last - 1])
        self._apply(final, ends[last - 1])
        return True

    def _mixed_kv(self, alloc: int) -> None:
        """Take the blocks of iterations [st_alloc, alloc): the decodes', then P's (by target)."""
        p, cum, _ = self._mx
        done = self._st_done
        if not self.kv.allocate_each(self._st_reqs, alloc - done) or self.kv.grow(p, cum[alloc] - cum[done]) is None:
            raise AssertionError("a planned mixed stretch ran out of KV")
        self._st_alloc = alloc

    def _advance(self, done: int, alloc: int) -> None:
        """Apply iterations [st_done, done) of a mixed stretch (none its last) and hold KV through
        iteration ``alloc - 1``; a decode stretch's own otherwise."""
        mx = self._mx
        if mx is None:
            super()._advance(done, alloc)
            return
        if alloc > self._st_alloc:
            self._mixed_kv(alloc)
        i0 = self._st_done
        if done <= i0:
            return
        if self._st_reqs:
            super()._advance(done, alloc)  # the decodes' tokens, ITL and token times (their KV is held)
        else:  # a prompt chunked alone
            self._st_done = done
        p, cum, times = mx
        n = cum[done] - cum[i0]
        p.num_computed_tokens += n
        self.num_pending_prefill_tokens -= n
        steps = done - i0
        self.num_steps += steps
        self.batch_size_sum += steps * (len(self._st_reqs) + 1)
        self.busy_prefill_s = reduce(add, times[i0:done], self.busy_prefill_s)

    def sync_kv(self) -> None:
        """A mixed stretch's KV up to the iteration in progress; a decode stretch's own otherwise."""
        if self._mx is None:
            super().sync_kv()
            return
        alloc = self._alloc_due()
        if alloc:
            self._mixed_kv(alloc)

    def pending_prefill_now(self) -> int:
        """``num_pending_prefill_tokens`` as stepping shows it now (a mixed stretch synced first)."""
        if self._mx is not None:
            self.sync()
        return self.num_pending_prefill_tokens
