"""SpecServe / AdaSpec (Huang et al., 2025; SoCC'25 as AdaSpec): adaptive, SLO-aware drafting
with a goodput model, following the authors' released code (vLLM 0.6.3 fork).

Goodput of drafting j tokens per request, with p_it the draft's confidence in token t of
request i (its token probability) and P_ij = prod_{t<=j} p_it::

    goodput(j) = (sum_i sum_{t<=j} P_it + B) / (j t_draft(B) + t_target((j + 1) B))

1. Speculate only if goodput(1) > goodput(0), both predicted with the running mean
   confidence (initially ``initial_confidence``, 0.6 in the code).
2. Draft token by token for the whole batch: before token j + 1 predict goodput(j + 1) with
   the mean confidence and stop if it falls; after drafting it, compute goodput(j + 1) from
   the real confidences (a drop keeps the token and stops). At most ``max_k`` (8) tokens.
3. Trim: drop the lowest-confidence tail tokens (smallest P at a request's current end) until
   the verify batch, sum (k_i + 1), is a CUDA-graph size (powers of two up to 32, then
   multiples of ``graph_alignment_tokens``); keep the trim only if goodput does not fall.
4. SLO-aware: a draft length j > 0 whose predicted TPOT, step time / (1 + expected accepted
   tokens per request), exceeds ``tpot_slo_s`` (40 ms) is not taken. The released code
   compares the step time with a ``scaled_slo_tpot`` of 0.04 (the check is commented out
   there); we read "scaled" as per emitted token (the raw step time would turn speculation
   off exactly when batches are big enough to miss the SLO without it). On the Azure runs of
   experiments/speculation_azure.py the check never binds: the goodput-best j already meets it.

Drafting passes are paid for every drafted token (trimmed ones too). Deviations, said so:
times come from the pool's cost model, not profiled tables; the code trims an exact graph
size down to the previous one and re-reads one request's tail (a slip): here a batch that is
already a graph size is left alone and the tail is the request's current last token; our
cost models do not pad to graph sizes, so trimming only saves the trimmed tokens.
Confidences come from the acceptance model (``drafts.py``), correlated with the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.speculators.base import DraftParams, SpeculatorBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SPECULATORS
from sim.schema import param


@dataclass
class SpecServeParams(DraftParams):
    """Draft length cap, SLO, confidence prior and the CUDA-graph sizes."""

    max_k: int = param(8, ge=1, le=32, doc="most draft tokens per request per step")
    tpot_slo_s: float = param(0.04, gt=0, doc="TPOT SLO: a draft length whose step exceeds it is not taken")
    initial_confidence: float = param(0.6, gt=0, lt=1, doc="mean draft confidence before any is seen (code: 0.6)")
    graph_alignment_tokens: int = param(32, ge=1, doc="CUDA-graph sizes above 32 are multiples of this")
    trim_to_graph: bool = param(True, doc="trim the lowest-confidence tail to a CUDA-graph size")


def graph_size_at_most(n: int, alignment: int) -> int:
    """The largest CUDA-graph batch size <= n: 1, 2, 4, 8, 16, 32, then multiples of ``alignment``."""
    if n <= 32:
        return 1 << (n.bit_length() - 1)
    return max(32, n // alignment * alignment)


@SPECULATORS.register("specserve")
class SpecServeSpeculator(SpeculatorBase):
    """Batch drafting stopped by predicted goodput, per-request trim by confidence, SLO-aware."""

    Params = SpecServeParams

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.conf_sum = 0.0
        self.conf_count = 0
        self._drafted = 0  # draft passes run in the latest proposal (trimmed tokens included)
        self._drafts: tuple = (None, [])  # (requests, draft times by k) of the latest proposal
        cls = type(self)
        # a batch of one is proposed by ``_propose_one`` where the base class draws and prices
        self._one_fast = cls.target_step_s is SpeculatorBase.target_step_s \
            and cls.draft_confidences is SpeculatorBase.draft_confidences \
            and cls.draft_confidence is SpeculatorBase.draft_confidence
        self._verify_rows = getattr(ctx.cost_model, "verify_rows_s", None)

    def mean_confidence(self) -> float:
        """Running mean of the confidences seen (the prior until then)."""
        return self.conf_sum / self.conf_count if self.conf_count else self.params.initial_confidence

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]:
        p = self.params
        n = len(requests)
        self._drafted = 0
        if not n:
            return []
        computed = 0  # the batch's context before this step's tokens (one pass, shared below)
        for r in requests:
            computed += r.num_computed_tokens
        max_k = p.max_k
        drafts = self.uniform_draft_times_s(rep, requests, max_k, computed)
        self._drafts = (requests, drafts)
        if n == 1 and self._one_fast:
            return self._propose_one(requests[0].id, drafts, computed)
        slo = p.tpot_slo_s
        # times[j]: the step's time with j drafts each, drafts[j] + the verify pass of (j + 1) n
        # tokens (SpeculatorBase.target_step_s with the batch's sum done once), in plain floats;
        # goodput(j) = (expected + n) / times[j], -1 where j > 0 and the predicted TPOT is past the SLO
        verify = self.ctx.cost_model.verify_step_time_s \
            if type(self).target_step_s is SpeculatorBase.target_step_s else None
        if verify is not None:
            times = [drafts[0] + verify(n, n, n + computed), drafts[1] + verify(n, 2 * n, 2 * n + computed)]
        else:
            times = [drafts[0] + self.target_step_s(rep, requests, n),
                     drafts[1] + self.target_step_s(rep, requests, 2 * n)]
        c0 = self.conf_sum / self.conf_count if self.conf_count else p.initial_confidence
        best = (0.0 + n) / times[0]  # goodput(0)
        expected = n * c0
        t = times[1]
        if t > slo * (1.0 + expected / n) or (expected + n) / t <= best:  # goodput(1) <= goodput(0)
            return [0] * n
        if type(self).draft_confidences is SpeculatorBase.draft_confidences \
                and type(self).draft_confidence is SpeculatorBase.draft_confidence:
            draw, ids = self.truth.confidences, [r.id for r in requests]  # draft_confidences' own call
        else:
            draw, ids = self.draft_confidences, requests
        expected = 0.0
        k = 0
        if n == 1:  # the loop below with a batch of one, in scalars (the same operations)
            cum = 1.0
            chain: list[float] = []
            for j in range(max_k):
                if j > 0:  # predicted goodput(j + 1) with the mean confidence; stop if it falls
                    c0 = self.conf_sum / self.conf_count
                    tokens = j + 2
                    t = drafts[j + 1] + (verify(1, tokens, tokens + computed) if verify is not None
                                         else self.target_step_s(rep, requests, tokens))
                    times.append(t)
                    e = expected + c0 * cum
                    if t > slo * (1.0 + e / 1) or (e + 1) / t < best:
                        break
                c = draw(ids, j)[0]
                cum *= c
                chain.append(cum)
                expected += cum
                k = j + 1
                t = times[k]
                if t > slo * (1.0 + expected / 1):
                    break
                g = (expected + 1) / t
                if g < best:
                    break
                best = g
                self.conf_sum += 0.0 + c
                self.conf_count += 1
            chains = [chain]
        else:
            cum_n = [1.0] * n  # P_ij at each request's last drafted token
            chains = [[] for _ in range(n)]
            for j in range(max_k):
                if j > 0:
                    c0 = self.conf_sum / self.conf_count
                    tokens = (j + 2) * n
                    t = drafts[j + 1] + (verify(n, tokens, tokens + computed) if verify is not None
                                         else self.target_step_s(rep, requests, tokens))
                    times.append(t)
                    e = expected + c0 * sum(cum_n)
                    if t > slo * (1.0 + e / n) or (e + n) / t < best:
                        break
                seen = 0.0
                for i, c in enumerate(draw(ids, j)):
                    seen += c
                    x = cum_n[i] * c
                    cum_n[i] = x
                    chains[i].append(x)
                    expected += x
                k = j + 1
                t = times[k]
                if t > slo * (1.0 + expected / n):
                    break
                g = (expected + n) / t
                if g < best:
                    break
                best = g
                self.conf_sum += seen
                self.conf_count += n
        self._drafted = k
        ks = [k] * n
        if k and p.trim_to_graph:
            ks = self._trim(rep, requests, ks, chains, best, drafts[k], computed)
        return ks

    def _propose_one(self, rid: int, drafts: list[float], computed: int) -> list[int]:
        """``propose`` for a batch of one request (most steps of a lightly loaded replica) with
        the base class's confidences and verify pricing: the same operations on the same values
        (``x / 1`` is ``x``, ``0.0 + c`` is ``c`` for a confidence), each verify pass priced once
        (``verified[t]``: t tokens; the trim's is one of the drafting loop's) and the running
        mean's sums kept in locals until the end."""
        p = self.params
        slo, max_k = p.tpot_slo_s, p.max_k
        verify = self.ctx.cost_model.verify_step_time_s
        # the verify passes' prices read off the cost model's rows where it has them (the same floats)
        rows = self._verify_rows(1, max_k + 1, max_k + 1 + computed) if self._verify_rows is not None else None
        if rows is not None:
            verified = [0.0, rows[1][1 + computed], rows[2][2 + computed]]
        else:
            verified = [0.0, verify(1, 1, 1 + computed), verify(1, 2, 2 + computed)]
        times = [drafts[0] + verified[1], drafts[1] + verified[2]]
        conf_sum, conf_count = self.conf_sum, self.conf_count
        c0 = conf_sum / conf_count if conf_count else p.initial_confidence
        best = 1.0 / times[0]  # goodput(0)
        t = times[1]
        if t > slo * (1.0 + c0) or (c0 + 1) / t <= best:  # goodput(1) <= goodput(0)
            return [0]
        draw = self.truth.confidence_one
        expected = 0.0
        cum = 1.0
        chain: list[float] = []
        k = 0
        for j in range(max_k):
            if j > 0:  # predicted goodput(j + 1) with the mean confidence; stop if it falls
                tokens = j + 2
                v = rows[tokens][tokens + computed] if rows is not None else verify(1, tokens, tokens + computed)
                verified.append(v)
                t = drafts[j + 1] + v
                times.append(t)
                e = expected + conf_sum / conf_count * cum
                if t > slo * (1.0 + e) or (e + 1) / t < best:
                    break
            c = draw(rid, j)
            cum *= c
            chain.append(cum)
            expected += cum
            k = j + 1
            t = times[k]
            if t > slo * (1.0 + expected):
                break
            g = (expected + 1) / t
            if g < best:
                break
            best = g
            conf_sum += c
            conf_count += 1
        self.conf_sum, self.conf_count = conf_sum, conf_count
        self._drafted = k
        if not k or not p.trim_to_graph:
            return [k]
        # ``_trim`` of one request: its tail drops to the graph size (sizes 1, 2, 4, ... up to 32)
        total = k + 1
        kept = graph_size_at_most(total, p.graph_alignment_tokens) - 1
        if kept >= k:
            return [k]
        expected = 0.0
        for t in range(kept):
            expected += chain[t]
        t = drafts[k] + verified[kept + 1]
        if t <= slo * (1.0 + expected) and (expected + 1) / t >= best:
            return [kept]
        return [k]

    def _trim(self, rep, requests, ks, chains, best, draft_s, computed):
        """Drop lowest-confidence tail tokens down to a CUDA-graph size; keep if goodput holds."""
        p = self.params
        total = sum(ks) + len(ks)
        delta = total - graph_size_at_most(total, p.graph_alignment_tokens)
        if delta <= 0:
            return ks
        trimmed = list(ks)
        while delta > 0:
            low, at = float("inf"), -1
            for i, k in enumerate(trimmed):
                if k > 0 and chains[i][k - 1] < low:
                    low, at = chains[i][k - 1], i
            if at < 0:
                break
            trimmed[at] -= 1
            delta -= 1
        expected = 0.0
        for i, k in enumerate(trimmed):
            for t in range(k):
                expected += chains[i][t]
        tokens = sum(trimmed) + len(trimmed)
        if type(self).target_step_s is SpeculatorBase.target_step_s:  # its sum done once
            t = draft_s + self.ctx.cost_model.verify_step_time_s(len(ks), tokens, tokens + computed)
        else:
            t = draft_s + self.target_step_s(rep, requests, tokens)
        if t <= p.tpot_slo_s * (1.0 + expected / len(ks)) and (expected + len(ks)) / t >= best:
            return trimmed
        return ks

    def draft_time_s(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int]) -> float:
        """Every request drafted the batch's k tokens (trimmed ones were drafted, then dropped)."""
        k = self._drafted
        for k_i in ks:
            if k_i > k:
                k = k_i
        if not k:
            return 0.0
        cached, drafts = self._drafts
        if cached is requests and k < len(drafts):
            return drafts[k]  # the same sum, pass by pass, as pricing k drafts for everyone
        return super().draft_time_s(rep, requests, [k] * len(requests))

    @classmethod
    def example_config(cls) -> dict:
        """CI gate: the adaptive speculators' scenario with specserve."""
        from policies.speculators.smartspec import _gate_config

        return _gate_config({"name": "specserve", "draft_model": "Llama-3.2-1B", "acceptance": "chat"})
