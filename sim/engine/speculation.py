"""The replica side of speculative decoding.

Mixed into ``Replica``: before a plan with decodes runs, the pool's speculator proposes k
draft tokens per decoding request (their KV slots are reserved; a request whose slots cannot
be had proposes none) and prices its draft passes; when the step ends, acceptance is drawn per
proposed token from the request's rate (the first rejection ends it), accepted + 1 tokens are
emitted and the rejected slots' KV is released.
"""

from __future__ import annotations

from sim.engine.plan import StepPlan


class SpeculationMixin:
    """Proposal, pricing hand-off and verification of draft tokens; needs ``Replica``'s attributes."""

    def _speculate(self, plan: StepPlan) -> None:
        """Ask the speculator for draft tokens per decode; reserve their KV slots (a request
        whose slots cannot be had proposes none) and price the draft passes."""
        views = [r.view for r in plan.decode]
        ks = self.speculator.propose(self.view, views)
        kv = self.kv
        tokens = []
        for r, k in zip(plan.decode, ks, strict=True):
            if k > 0 and kv.allocate(r, 1, k) is None:
                k = 0
            tokens.append(k + 1)
        plan.decode_tokens = tokens
        plan.draft_s = self.speculator.draft_time_s(self.view, views, [t - 1 for t in tokens])

    def _apply_speculative(self, plan: StepPlan, end: float) -> bool:
        """Verify each decode's drafts: accept while draws succeed, emit accepted + 1 tokens,
        release the KV slots of the rejected drafts."""
        kv, spec = self.kv, self.speculator
        # one draw per proposed token, all at once: the stream is the same as drawing request by request
        draws = self.accept_rng.random(sum(plan.decode_tokens) - len(plan.decode_tokens)).tolist()
        at = 0
        done = False
        for r, t in zip(plan.decode, plan.decode_tokens, strict=True):
            k = t - 1
            accepted = 0
            if k > 0:
                rate = r.spec_acceptance if r.spec_acceptance is not None else spec.acceptance_rate(r.view)
                while accepted < k and draws[at + accepted] < rate:
                    accepted += 1
                at += k
                self.spec_steps += 1
                self.spec_proposed += k
                self.spec_accepted += accepted
            emit = accepted + 1
            left = r.output_tokens - r.num_output_tokens
            if emit > left:
                emit = left
            if k > 0:
                self.spec_emitted += emit
            r.num_computed_tokens += emit
            finished = False
            for _ in range(emit):
                finished = self._emit(r, end)
            if k > 0:
                spec.observe(r.view, k, accepted)
                if not finished:
                    kv.trim(r, r.num_computed_tokens)
            done |= finished
        return done

