"""The replica side of speculative decoding.

Mixed into ``Replica``: before a plan with decodes runs, the pool's speculator proposes k
draft tokens per decoding request (their KV slots are reserved; a request whose slots cannot
be had proposes none) and prices its draft passes. A speculator that draws acceptance itself
(``accepted_tokens``) gives the outcomes now, and may then name fewer verify tokens per
request (``verify_tokens``: pruned verification) to price the step with; otherwise acceptance
is drawn when the step ends, per proposed token from the request's rate (the first rejection
ends it). Accepted + 1 tokens are emitted and the rejected slots' KV is released. A plan with
prompt chunks also pays the draft model's prefill of them (``draft_prefill_time_s``, in the
plan's draft time), whether or not it has decodes.
"""

from __future__ import annotations

from sim.engine.plan import StepPlan
from sim.engine.spec_stretch import SpecStretchMixin


class SpeculationMixin(SpecStretchMixin):
    """Proposal, pricing hand-off and verification of draft tokens; needs ``Replica``'s attributes."""

    def _speculate(self, plan: StepPlan) -> None:
        """Ask the speculator for draft tokens per decode; reserve their KV slots (a request
        whose slots cannot be had proposes none) and price the draft passes."""
        spec = self.speculator
        kv = self.kv
        if len(plan.decode) == 1:  # most steps of a lightly loaded replica: the loop below for one
            r = plan.decode[0]
            views = [r.view]
            (k,) = spec.propose(self.view, views)
            if k > 0 and kv.allocate(r, 1, k) is None:
                k = 0
            plan.decode_tokens = [k + 1]
            self._price_drafts(plan, views, [k])
            return
        views = [r.view for r in plan.decode]
        ks = spec.propose(self.view, views)
        tokens = []
        granted = []
        for r, k in zip(plan.decode, ks, strict=True):
            if k > 0 and kv.allocate(r, 1, k) is None:
                k = 0
            tokens.append(k + 1)
            granted.append(k)
        plan.decode_tokens = tokens
        self._price_drafts(plan, views, granted)

    def _price_drafts(self, plan: StepPlan, views: list, ks: list[int]) -> None:
        """The draft time of ``ks`` granted draft tokens per decode, and acceptance when the
        speculator draws it (with the verify tokens it then names)."""
        spec = self.speculator
        plan.draft_s = spec.draft_time_s(self.view, views, ks)
        draw = getattr(spec, "accepted_tokens", None)
        if draw is not None:
            decode = plan.decode
            accepted = draw(views, ks, [decode[0].spec_acceptance] if len(decode) == 1
                            else [r.spec_acceptance for r in decode])
            if accepted is not None:
                plan.spec_accepted = accepted
                plan.verify_tokens = spec.verify_tokens(self.view, views, ks, accepted)

    def _price_draft_prefill(self, plan: StepPlan) -> None:
        """Add the draft model's work for the plan's prompt chunks to its draft time: the chunks in
        the step's first draft pass, and the first draft round of each request whose prompt the
        step completes (``draft_prefill_time_s``)."""
        chunks = []
        done = []
        for r, n in plan.prefill:
            chunks.append((n, r.num_computed_tokens))
            if r.num_computed_tokens + n == r.input_tokens + r.num_output_tokens:
                done.append(r.num_computed_tokens + n)
        tokens = plan.decode_tokens
        views = [r.view for r in plan.decode] if tokens is not None else []
        ks = [t - 1 for t in tokens] if tokens is not None else []
        plan.draft_s += self._draft_prefill(chunks, views, ks, done)

    def _apply_speculative(self, plan: StepPlan, end: float) -> bool:
        """Verify each decode's drafts: accept while draws succeed, emit accepted + 1 tokens,
        release the KV slots of the rejected drafts."""
        kv, spec = self.kv, self.speculator
        given = plan.spec_accepted
        if given is None:
            # one draw per proposed token, read off the block drawn ahead: the same stream as drawing
            # request by request
            draws, at = self._accept_draws(sum(plan.decode_tokens) - len(plan.decode_tokens))
        done = False
        self.spec_decode_steps += len(plan.decode)
        self.spec_draft_s += plan.draft_s
        per_request = self.spec_by_request
        forget = getattr(spec, "forget", None)  # a plug-in speculator may not have it
        emit_many = self._emit_many
        steps = proposed = num_accepted = emitted = 0  # added to the replica's counters at the end
        decode, tokens = plan.decode, plan.decode_tokens
        if len(decode) != len(tokens):
            raise ValueError("a speculative plan's decode tokens do not match its decodes")
        for i, r in enumerate(decode):
            k = tokens[i] - 1
            accepted = 0
            if k > 0:
                if given is not None:
                    accepted = given[i]
                else:
                    rate = r.spec_acceptance if r.spec_acceptance is not None else spec.acceptance_rate(r.view)
                    while accepted < k and draws[at + accepted] < rate:
                        accepted += 1
                    at += k
                steps += 1
                proposed += k
                num_accepted += accepted
            emit = accepted + 1
            left = r.output_tokens - r.num_output_tokens
            if emit > left:
                emit = left
            row = per_request.get(r.id)
            if row is None:
                row = per_request[r.id] = [0, 0, 0, 0, 0]
            row[0] += 1
            if k > 0:
                emitted += emit
                row[1] += 1
                row[2] += k
                row[3] += accepted
                row[4] += emit
            r.num_computed_tokens += emit
            finished = emit_many(r, end, emit)  # emit <= tokens left
            if k > 0:
                spec.observe(r.view, k, accepted)
                if not finished:
                    kv.trim(r, r.num_computed_tokens)
            if finished and forget is not None:
                forget(r.view)  # its per-request state (drawn rate, estimates) is never read again
            done |= finished
        self.spec_steps += steps
        self.spec_proposed += proposed
        self.spec_accepted += num_accepted
        self.spec_emitted += emitted
        return done
