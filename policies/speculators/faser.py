"""FASER (Chen et al., 2026, "Fine-Grained Phase Management for Speculative Decoding in
Dynamic LLM Serving"): per-request draft lengths inside the continuous batch, early pruning
of rejected tokens in verification, and verification chunks overlapped with drafting.

Only the abstract is public to us, so the mechanisms are modelled as it states them and every
unknown is a parameter:

- Per-request k: each request's acceptance a_i is learnt online (moving average,
  ``estimate.py``). Draft position j of request i is worth a_i^(j+1) expected tokens. For
  each draft depth D (passes of the draft, 1..max_k) the policy predicts goodput G_D with
  every request at D, then gives each request the positions whose worth pays for their
  (pruned) verify token at G_D, and keeps the best of all (our search; the paper's is not
  public). Draft passes cost about the same whoever is in them, so the depth is shared and
  the per-request lengths differ below it.
- Early pruning: verification runs in frontiers of ``frontier_tokens`` draft positions; a
  request whose draft was rejected inside a frontier is not verified past it. A request with k
  drafts and its first rejection at position n < k verifies 1 + min(k, (n // f + 1) f)
  tokens (all k + 1 if none was rejected); the step is priced with those (the engine's
  ``verify_tokens`` seam). The frontiers run as one pass in the cost model: any per-frontier
  overhead is not modelled.
- Overlap: verification frontiers run beside the draft kernels (spatial multiplexing), hiding
  ``overlap_share`` of the draft time (a share is assumed; the paper gives no figure here).

Prediction uses the pruned verify cost: position j is verified with probability
a_i^(f floor(j / f)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.speculators.estimate import OnlineParams, OnlineSpeculatorBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SPECULATORS
from sim.schema import param


@dataclass
class FaserParams(OnlineParams):
    """Draft cap, frontier size, hidden draft share and the acceptance estimate."""

    max_k: int = param(8, ge=1, le=32, doc="most draft tokens per request per step")
    frontier_tokens: int = param(2, ge=1,
                                 doc="draft positions per verification frontier (pruning granularity; assumed)")
    overlap_share: float = param(0.5, ge=0, le=1, doc="share of the draft time hidden under verification (assumed)")


@SPECULATORS.register("faser")
class FaserSpeculator(OnlineSpeculatorBase):
    """Per-request k by ranked marginal worth, pruned verification, overlapped drafting."""

    Params = FaserParams

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]:
        p = self.params
        n = len(requests)
        if not n:
            return []
        f = p.frontier_tokens
        alphas = [min(self.estimate.get(r.id), 0.999) for r in requests]
        # marginal verify seconds per token, from the cost model at one and two tokens a request
        one = self.target_step_s(rep, requests, n)
        per_token = max(0.0, (self.target_step_s(rep, requests, 2 * n) - one) / n)
        best_ks = [0] * n
        best = n / one
        for depth in range(1, p.max_k + 1):
            ks = [depth] * n
            g = self._goodput(rep, requests, ks, alphas, f)
            if g > best:
                best, best_ks = g, ks
            # per request: keep position j only while its worth a^(j+1) pays for its verify token
            # (verified with probability a^(f floor(j / f))) at this depth's goodput
            trimmed = []
            for a in alphas:
                k = 0
                while k < depth and a ** (k + 1) >= g * per_token * a ** (f * (k // f)):
                    k += 1
                trimmed.append(k)
            if trimmed != ks and any(trimmed):
                g2 = self._goodput(rep, requests, trimmed, alphas, f)
                if g2 > best:
                    best, best_ks = g2, trimmed
        return best_ks

    def _goodput(self, rep, requests, ks, alphas, f) -> float:
        gain = float(len(ks))
        for k, a in zip(ks, alphas, strict=True):
            w = a
            for _ in range(k):
                gain += w
                w *= a
        return gain / self._time(rep, requests, ks, alphas, f)

    def _time(self, rep, requests, ks, alphas, f) -> float:
        """Predicted step: visible draft time + the verify pass over the expected pruned tokens."""
        tokens = 0.0
        for k, a in zip(ks, alphas, strict=True):
            tokens += 1
            for j in range(k):
                tokens += a ** (f * (j // f))
        return self.draft_time_s(rep, requests, ks) + self.target_step_s(rep, requests, max(len(ks), round(tokens)))

    def verify_tokens(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int],
                      accepted: Sequence[int]) -> list[int]:
        f = self.params.frontier_tokens
        out = []
        for k, a in zip(ks, accepted, strict=True):
            out.append(k + 1 if a >= k else 1 + min(k, (a // f + 1) * f))
        return out

    def draft_time_s(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int]) -> float:
        """The draft time left visible after ``overlap_share`` is hidden under verification."""
        return (1.0 - self.params.overlap_share) * super().draft_time_s(rep, requests, ks)

    @classmethod
    def example_config(cls) -> dict:
        """CI gate: the adaptive speculators' scenario with faser."""
        from policies.speculators.smartspec import _gate_config

        return _gate_config({"name": "faser", "draft_model": "Llama-3.2-1B", "acceptance": "chat"})
