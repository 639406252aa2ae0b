"""Draft pairs and the ground truth of acceptance: per-request rates, positional decay, confidence.

Drafters (a speculator's ``draft_model``)::

    null / "ngram"   model-free (n-gram / prompt lookup): no draft time, its own acceptance
    "eagle"          an EAGLE-style head on the target (``eagle_layers`` decoder layers + the
                     target's LM head): each draft pass costs that share of the target's
                     parameters times the target's own decode step for the same batch
    catalog model    a draft model on the target's GPUs, priced by the pool's cost model class

Acceptance (``acceptance``): ``constant`` gives every request the speculator's
``acceptance_rate`` (the original model); a dataset name draws each request's per-token
rate once, from a Beta with the mean and spread of ``ACCEPTANCE[drafter][dataset]``. Draft
position j (0 = first draft token) is accepted with ``rate * position_decay ** j``.

Sources for the table (per-token acceptance alpha, greedy chain drafts; values are read off
the ranges the papers report and rounded, so they are defaults to override, not measurements):
Leviathan et al. (ICML'23) alpha 0.5-0.9 by task for small/large pairs of one family;
EAGLE (Li et al., ICML'24) alpha about 0.7-0.8 on MT-bench for 7B-70B chat models, higher on
code/math; SpecDecode-Bench ("Speculative Decoding: Performance or Illusion?", 2026, vLLM on
H100 with Llama-3.1-8B / Llama-3-70B: n-gram, EAGLE/EAGLE-3, draft models) for the spread:
acceptance varies across requests, datasets and positions; n-gram is poor on open chat and
best on high-overlap tasks (summarisation, code editing); a same-family draft model does
better the larger the target. The spreads (std across requests) are our assumption.

Confidence: the draft's probability of its own token, calibrated and correlated with the
outcome through a Gaussian copula. Token j of request i is accepted iff z < t, z ~ N(0, 1),
t = Phi^-1(p_ij); the confidence is P(accept | w) for a signal w = rho z + sqrt(1 - rho^2) e::

    c = Phi((t - rho w) / sqrt(1 - rho^2))      mean c = p_ij, corr(c, accepted) grows with rho

(rho = ``confidence_correlation``; 0: c = p_ij for every token; 1: c is the outcome). Every
draw comes from the speculator's own rng, so the same seed gives the same tokens.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

#: per-token acceptance (mean, std across requests) by drafter and dataset
ACCEPTANCE: dict[str, dict[str, tuple[float, float]]] = {
    "Llama-3.2-1B/Llama-3-8B": {"chat": (0.70, 0.12), "code": (0.78, 0.10), "math": (0.80, 0.10),
                                "summarization": (0.65, 0.12)},
    "Llama-3-8B/Llama-3-70B": {"chat": (0.78, 0.10), "code": (0.84, 0.08), "math": (0.85, 0.08),
                               "summarization": (0.72, 0.10)},
    "eagle": {"chat": (0.75, 0.10), "code": (0.80, 0.08), "math": (0.80, 0.08), "summarization": (0.68, 0.10)},
    "ngram": {"chat": (0.30, 0.20), "code": (0.45, 0.20), "math": (0.35, 0.20), "summarization": (0.55, 0.20)},
}
DATASETS = ("chat", "code", "math", "summarization")
MODEL_FREE = ("ngram",)  # draft_model names with no draft cost besides null
_NORMAL = NormalDist()
_ROOT2 = math.sqrt(2.0)


def drafter_key(draft_model: str | None, target_model: str | None) -> str:
    """The ``ACCEPTANCE`` key of a draft model on a target."""
    if draft_model is None or draft_model == "ngram":
        return "ngram"
    if draft_model == "eagle":
        return "eagle"
    return f"{draft_model}/{target_model}"


def beta_params(mean: float, std: float) -> tuple[float, float]:
    """Beta(a, b) with this mean and standard deviation (std capped below the maximum)."""
    var = min(std * std, 0.95 * mean * (1 - mean))
    kappa = mean * (1 - mean) / var - 1
    return mean * kappa, (1 - mean) * kappa


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class AcceptanceModel:
    """Ground-truth acceptance of draft tokens, request by request (engine-side truth: policies
    read only confidences and outcomes)."""

    def __init__(self, rng: np.random.Generator, constant: float, dist: tuple[float, float] | None,
                 decay: float, rho: float):
        self.rng = rng
        if dist is not None and dist[1] <= 0.0:  # no spread: every request at the mean
            constant, dist = dist[0], None
        self.constant = constant
        self.beta = beta_params(*dist) if dist is not None else None
        self.decay = decay
        self.rho = rho
        self._rate: dict[int, float] = {}
        self._step: dict[int, list[tuple[float, float]]] = {}  # request -> [(u, confidence)] this step
        self._normals: list[float] = []
        self._at = 0
        self._thresholds: dict[float, float] = {}  # Phi^-1(p) by p
        self._s = math.sqrt(1.0 - rho * rho) if rho < 1.0 else 0.0  # what ``confidences`` divides by

    def rate(self, rid: int, given: float | None = None) -> float:
        """Request ``rid``'s per-token rate (its own ``given`` one, else drawn once)."""
        if given is not None:
            return given
        a = self._rate.get(rid)
        if a is None:
            a = self.constant if self.beta is None else float(self.rng.beta(*self.beta))
            self._rate[rid] = a
        return a

    def p(self, rate: float, j: int) -> float:
        """Chance draft position ``j`` is accepted."""
        return rate * self.decay ** j if self.decay != 1.0 else rate

    def confidence(self, rid: int, j: int, given: float | None = None) -> float:
        """The draft's confidence in its token at position ``j`` this step (draws it, and the
        token's outcome, on first use; positions are drawn in order)."""
        toks = self._step.setdefault(rid, [])
        rate = self.rate(rid, given)
        rho = self.rho
        while len(toks) <= j:
            p = self.p(rate, len(toks))
            z = self._normal()
            e = self._normal()
            u = _phi(z)
            if p <= 0.0 or p >= 1.0 or rho >= 1.0:
                c = 1.0 if u < p else 0.0
            else:
                t = self._threshold(p)
                s = math.sqrt(1.0 - rho * rho)
                c = _phi((t - rho * (rho * z + s * e)) / s)
            toks.append((u, c))
        return toks[j][1]

    def confidences(self, rids: list[int], j: int) -> list[float]:
        """``[confidence(rid, j) for rid in rids]``, the same draws in the same order, request by
        request through ``confidence_one``."""
        one = self.confidence_one
        return [one(rid, j) for rid in rids]

    def confidence_one(self, rid: int, j: int) -> float:
        """``confidence(rid, j)``, the same draws in the same order: while the current block of
        normals holds the 2 it needs, a request whose positions before ``j`` are drawn reads them
        straight off the block (its rate drawn, if new, first, as ``confidence`` would: no refill
        comes between); any other goes through ``confidence``."""
        at = self._at
        normals = self._normals
        toks = self._step.get(rid)
        if at + 2 > len(normals) or (len(toks) != j if toks is not None else j):
            return self.confidence(rid, j)
        if toks is None:
            toks = self._step[rid] = []
        rate = self._rate.get(rid)
        if rate is None:
            rate = self.rate(rid)
        decay = self.decay
        p = rate * decay ** j if decay != 1.0 else rate
        z = normals[at]
        e = normals[at + 1]
        self._at = at + 2
        u = 0.5 * (1.0 + math.erf(z / _ROOT2))
        rho = self.rho
        if p <= 0.0 or p >= 1.0 or rho >= 1.0:
            c = 1.0 if u < p else 0.0
        else:
            t = self._thresholds.get(p)
            if t is None:
                t = self._threshold(p)
            s = self._s
            c = 0.5 * (1.0 + math.erf(((t - rho * (rho * z + s * e)) / s) / _ROOT2))
        toks.append((u, c))
        return c

    def _normal(self) -> float:
        """The next standard normal of the speculator's stream (drawn in blocks)."""
        if self._at >= len(self._normals):
            self._normals = self.rng.standard_normal(1024).tolist()
            self._at = 0
        self._at += 1
        return self._normals[self._at - 1]

    def _threshold(self, p: float) -> float:
        t = self._thresholds.get(p)
        if t is None:
            if len(self._thresholds) > 65536:
                self._thresholds.clear()
            t = self._thresholds[p] = _NORMAL.inv_cdf(p)
        return t

    def accepted(self, rid: int, k: int, given: float | None = None) -> int:
        """Accepted draft tokens of ``k`` proposed (first rejection ends the run); positions whose
        confidence was drawn keep that outcome."""
        if k <= 0:
            self._step.pop(rid, None)
            return 0
        rate = self.rate(rid, given)
        toks = self._step.pop(rid, ())
        decay = self.decay
        n = 0
        for u, _c in toks[:k]:
            if u >= (rate * decay ** n if decay != 1.0 else rate):  # ``p(rate, n)``
                return n
            n += 1
        if n < k:
            for u in self.rng.random(k - n).tolist():
                if u >= (rate * decay ** n if decay != 1.0 else rate):
                    return n
                n += 1
        return n

    def forget(self, rid: int) -> None:
        """Drop a finished request's rate."""
        self._rate.pop(rid, None)
        self._step.pop(rid, None)
