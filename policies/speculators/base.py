"""What every speculator shares: the ground-truth acceptance rate and the draft cost.

A speculator is built per pool as ``cls(params, ctx)`` and asked, every iteration with
decodes, ``propose(replica, requests) -> [k_i]``: draft tokens per decoding request. The
replica then prices the step as the speculator's ``draft_time_s`` plus one verify pass of
``sum(k_i + 1)`` tokens on the target model, draws acceptance per proposed token (the first
rejection ends the run) and emits accepted + 1 tokens; ``observe(request, k, accepted)``
tells the speculator what happened (adaptive policies learn from it).

Draft cost::

    draft_model: null      model-free drafting (n-gram / prompt lookup): no draft time
    draft_model: ngram     the same, with the n-gram rows of the acceptance table
    draft_model: eagle     an EAGLE-style head: each pass costs the head's share of the target's
                           parameters (``eagle_layers`` layers + LM head) times the target's
                           decode step for the passing requests
    draft_model: NAME      a draft model on the same GPU(s), priced by the pool's cost model
                           class with that catalog model: pass j (0..max k - 1) decodes the
                           n_j requests with k_i > j over their contexts + j tokens

Acceptance (``policies/speculators/drafts.py``): ``acceptance: constant`` is the original
model (every request at ``acceptance_rate``, drawn by the replica); a dataset name
(chat, code, math, summarization) draws per-request rates from the drafter's published range,
with ``position_decay`` and a per-token ``draft_confidence`` correlated with the outcome, all
from the speculator's own rng (``accepted_tokens`` returns the outcomes before the step runs).
A speculator that prunes verification returns the verify tokens per request
(``verify_tokens``); the step is priced with those instead of k + 1.

A draft model's prefill, first round and memory (``draft_prefill``, ``draft_first_round``,
``draft_kv``; on by default, as vLLM V1 runs a draft model): a step that prefills prompt chunks
also runs the draft model over them, in the same forward as its first draft pass
(``draft_prefill_time_s``; vLLM's proposer runs its first pass over every token the step
scheduled, prompt chunks included: ``SpecDecodeBaseProposer.propose`` in
``vllm/v1/spec_decode/llm_base_proposer.py``); vLLM drafts the next step's tokens before it returns
a step's tokens (``sample_tokens`` in ``vllm/v1/worker/gpu_model_runner.py``), so a request whose
prompt completes also drafts the rest of its first round (passes 1 .. k - 1) there, before its
first token, when the speculator names that k (``first_round_k``; the decode steps after it are
priced as before, each with its own round before its verify: one round per request more than
before, as vLLM pays one after the last verify, and with a fixed k every token then lands when
vLLM's order would return it); and the pool's KV capacity is the memory left after both models' weights over both
models' KV bytes per token (``policies/speculators/draft_memory.py``), with a cost model whose
capacity follows from the model's memory (``memory_by_model``). Not changed, from the same code:
each draft pass runs as its own forward (PIECEWISE CUDA graphs, its own attention metadata), so
it keeps the pool's per-step pricing, overheads included.

Not modelled (stated so nobody trusts them): an EAGLE head's own pass over prompt tokens and its
KV and weights; the first draft pass of a decode step runs over the verified tokens (k + 1 per
request in vLLM, padded) but is priced as one token per request; tree/multi-candidate
verification. ``acceptance_rate`` is the simulation's ground truth (per proposed token, used
for requests that carry no ``spec_acceptance`` of their own); a policy must not read it to
decide, unless its config says ``oracle: true``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import Any, Literal

import numpy as np

from policies.speculators.drafts import ACCEPTANCE, MODEL_FREE, AcceptanceModel, drafter_key
from sim.engine.seams import BuildContext, PolicyBase
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.schema import param


@dataclass
class DraftParams:
    """Fields every speculator's parameter block has (its own block inherits them)."""

    acceptance_rate: float = param(0.7, ge=0, le=1,
                                   doc="ground truth: chance each draft token is accepted (per token)")
    draft_model: str | None = param(None, doc="catalog model drafting on the same GPUs, 'eagle' (a head on the "
                                           "target), 'ngram' or null (model-free, no cost)")
    acceptance: Literal["constant", "chat", "code", "math", "summarization"] = param(
        "constant", doc="'constant' (acceptance_rate for all) or a dataset whose published "
                        "per-request acceptance is drawn: chat, code, math, summarization")
    acceptance_std: float | None = param(None, ge=0, le=0.5, doc="spread of per-request acceptance (null: the table's)")
    position_decay: float = param(1.0, gt=0, le=1, doc="acceptance multiplier per draft position (1: none)")
    confidence_correlation: float = param(0.7, ge=0, le=1,
                                          doc="how strongly a draft token's confidence predicts its acceptance "
                                              "(assumed; 0: confidence = its acceptance chance)")
    eagle_layers: int = param(1, ge=1, doc="decoder layers of an EAGLE-style head (EAGLE: 1)")
    draft_prefill: bool = param(True, doc="a draft model also prefills each prompt chunk, in the step's first "
                                          "draft pass (vLLM V1's proposer runs over every scheduled token); "
                                          "false: no draft cost in prefill")
    draft_first_round: bool = param(True, doc="a request's first draft round runs in its prefill step, before its "
                                              "first token (vLLM V1 drafts for the next step before returning a "
                                              "step's tokens); with a speculator that names its k then "
                                              "(first_round_k), with draft_prefill (the round's first pass "
                                              "is the prefill pass); false: in its first decode step only")
    draft_kv: bool = param(True, doc="a draft model's weights and KV share the pool's memory: KV tokens = memory "
                                     "after both models' weights / (target + draft KV bytes per token), as "
                                     "vLLM V1 sizes its KV cache; false: the target's capacity")


class SpeculatorBase(PolicyBase):
    """Ground-truth acceptance, draft pricing and the no-op ``observe``."""

    #: draw acceptance in the speculator (per-request rates, confidences) even with
    #: ``acceptance: constant``; False keeps the replica's draws (the original model)
    own_draws = True

    def __init__(self, params: Any, ctx: BuildContext):
        super().__init__(params, ctx)
        self.draft_cost_model = None
        self.eagle_fraction = 0.0
        target_model = getattr(ctx.hardware, "model", None)
        name = params.draft_model
        if name == "eagle":
            from hardware.models import get_model

            self.eagle_fraction = eagle_cost_fraction(get_model(target_model), params.eagle_layers) \
                if target_model is not None else 0.05
        elif name is not None and name not in MODEL_FREE:
            from hardware.models import get_model

            try:
                get_model(name)
            except (ConfigError, KeyError) as exc:
                msg = exc.message if isinstance(exc, ConfigError) else str(exc.args[0])
                raise ConfigError(f"unknown draft model: {msg}", f"{ctx.where}.draft_model") from None
            target = ctx.cost_model
            hardware = dataclasses.replace(ctx.hardware, model=name)
            try:
                self.draft_cost_model = type(target)(target.params, hardware)
            except (ConfigError, KeyError) as exc:
                msg = exc.message if isinstance(exc, ConfigError) else str(exc)
                raise ConfigError(f"draft model {name!r}: {msg}", f"{ctx.where}.draft_model") from None
        dist = None
        if params.acceptance != "constant":
            key = drafter_key(name, target_model)
            table = ACCEPTANCE.get(key)
            if table is None:
                raise ConfigError(f"no published acceptance for draft {name!r} on {target_model!r}; pairs: "
                                  f"{sorted(ACCEPTANCE)} (or use acceptance: constant)", f"{ctx.where}.draft_model")
            mean, std = table[params.acceptance]
            dist = (mean, params.acceptance_std if params.acceptance_std is not None else std)
        self._pass_memo: dict | bool | None = None  # replica id -> (n, context, draft passes): _draft_passes
        # the draft model's pure-decode prices by context as a list, where it has them (analytic)
        self._draft_row = getattr(self.draft_cost_model, "decode_row_s", None)
        self.truth = AcceptanceModel(ctx.rng, params.acceptance_rate, dist, params.position_decay,
                                     params.confidence_correlation)
        if params.acceptance != "constant" or params.position_decay != 1.0:
            self.own_draws = True

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]:
        raise NotImplementedError

    def kv_cost_model(self, cost_model: Any) -> Any:
        """The cost model the pool's KV manager is sized with (engine use, at build time):
        ``cost_model`` itself, or with a draft model sharing the GPUs (``draft_kv``, a cost model
        of ``memory_by_model``) one whose KV capacity leaves the draft's weights and KV their
        share (``policies/speculators/draft_memory.py``)."""
        draft = self.draft_cost_model
        if draft is None or not self.params.draft_kv or not getattr(cost_model, "memory_by_model", False):
            return cost_model
        from policies.speculators.draft_memory import DraftKVSizing

        return DraftKVSizing(cost_model, draft)

    def first_round_k(self) -> int:
        """Draft tokens a request proposes in the round its prefill step runs (``draft_first_round``):
        a speculator whose k does not depend on the state names it; 0 (the default): its k is
        chosen in the decode step, and the prefill step runs no round."""
        return 0

    def draft_prefill_time_s(self, chunks: Sequence[tuple[int, int]], requests: Sequence[RequestView],
                             ks: Sequence[int], prompts_done: Sequence[int]) -> float:
        """Seconds a draft model adds to a step for its prompt chunks (engine use): ``chunks`` are
        (new tokens, offset) per chunk, ``requests`` / ``ks`` the step's decodes and their granted
        draft tokens, ``prompts_done`` the prompt length of each request whose prompt the step
        completes. vLLM's proposer runs every scheduled token in its first pass, so the chunks
        join pass 0 of the decodes' drafts (``draft_prefill``); and it drafts for the next step
        before the step's tokens are returned, so a request whose prompt completes also drafts
        passes 1 .. ``first_round_k()`` - 1 of its first round here, with the decodes' passes
        (``draft_first_round``). Each pass is priced with and without these additions; the
        difference is added. 0 without a draft model or with ``draft_prefill`` off."""
        cost = self.draft_cost_model
        p = self.params
        if cost is None or not chunks or not p.draft_prefill:
            return 0.0
        m = len(prompts_done) if p.draft_first_round else 0
        k_new = self.first_round_k() if m else 0
        passes = _leading_passes(requests, ks, max(k_new, 1))
        prompt_tokens = sum(prompts_done)
        total = 0.0
        n0 = passes[0][0] if passes else 0
        if k_new > 1 and (not passes or (len(passes) >= k_new and all(q[0] == n0 for q in passes[:k_new]))):
            # the same decodes in every pass the new requests join: both sides are pure-decode runs
            # (contexts stepping by the batch), priced as runs (bit-identical to step_time_s per pass)
            if passes:
                total += cost.step_time_s(chunks, n0, n0, passes[0][1]) - cost.step_time_s((), n0, n0, passes[0][1])
            else:
                total += cost.step_time_s(chunks, 0, 0, 0)
            c1 = passes[1][1] if passes else 0
            with_new = cost.decode_step_times_list(n0 + m, c1 + prompt_tokens + 2 * m, k_new - 1)
            if not n0:
                for t in with_new:
                    total += t
                return total
            for t, t0 in zip(with_new, cost.decode_step_times_list(n0, c1, k_new - 1), strict=True):
                total += t - t0
            return total
        for j in range(max(len(passes), k_new, 1)):
            n, context = passes[j] if j < len(passes) else (0, 0)
            joining = m if 0 < j < k_new else 0  # a new request's pass j over its prompt + j + 1 tokens
            if j and not joining:
                continue
            added = cost.step_time_s(chunks if j == 0 else (), n + joining, n + joining,
                                     context + (prompt_tokens + joining * (j + 1) if joining else 0))
            total += added - cost.step_time_s((), n, n, context) if n else added
        return total

    def acceptance_rate(self, req: RequestView) -> float:
        """The ground-truth acceptance rate for requests without their own (engine use)."""
        return self.params.acceptance_rate

    def draft_confidence(self, req: RequestView, j: int) -> float:
        """The draft's confidence in draft position ``j`` of ``req`` this step (what a draft model's
        token probability tells a policy; correlated with the outcome, see drafts.py)."""
        return self.truth.confidence(req.id, j)

    def draft_confidences(self, requests: Sequence[RequestView], j: int) -> list[float]:
        """``[draft_confidence(r, j) for r in requests]`` (the same draws, in one call)."""
        if type(self).draft_confidence is not SpeculatorBase.draft_confidence:
            return [self.draft_confidence(r, j) for r in requests]
        return self.truth.confidences([r.id for r in requests], j)

    def accepted_tokens(self, requests: Sequence[RequestView], ks: Sequence[int],
                        given: Sequence[float | None]) -> list[int] | None:
        """Accepted draft tokens per request of ``ks`` proposed (engine use, before the step runs);
        ``given`` are the requests' own rates (None: drawn). None: the replica draws them."""
        if not self.own_draws:
            return None
        truth = self.truth
        if len(requests) == 1 and len(ks) == 1 and len(given) == 1:
            return [truth.accepted(requests[0].id, ks[0], given[0])]
        return [truth.accepted(r.id, k, g) for r, k, g in zip(requests, ks, given, strict=True)]

    def verify_tokens(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int],
                      accepted: Sequence[int]) -> list[int] | None:
        """Tokens the verify pass computes per request (None: k + 1 each, no pruning)."""
        return None

    def observe(self, req: RequestView, proposed: int, accepted: int) -> None:
        """``req`` proposed ``proposed`` draft tokens and ``accepted`` of them were accepted."""

    def observe_steps(self, requests: Sequence[RequestView], proposed: int, accepted: np.ndarray) -> None:
        """``observe`` for each step of a speculative stretch (``accepted[s, i]``, an int array:
        request i in step s, all proposing ``proposed``), step by step in request order (engine
        use); nothing to call when ``observe`` is this class's no-op."""
        if type(self).observe is SpeculatorBase.observe:
            return
        observe = self.observe
        for row in accepted.tolist():
            for req, a in zip(requests, row, strict=True):
                observe(req, proposed, a)

    def forget(self, req: RequestView) -> None:
        """``req`` finished: drop what was kept for it (its drawn rate; engine use)."""
        self.truth.forget(req.id)

    def target_step_s(self, rep: ReplicaView, requests: Sequence[RequestView], tokens: int) -> float:
        """The target's verify pass for ``requests`` computing ``tokens`` tokens in all (a policy's
        own estimate: the pool's cost model, decode only)."""
        n = len(requests)
        context = tokens
        for r in requests:
            context += r.num_computed_tokens
        return self.ctx.cost_model.verify_step_time_s(n, tokens, context)

    def draft_time_s(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int]) -> float:
        """Seconds of drafting before the verify pass (see the module docstring)."""
        cost = self.draft_cost_model
        if cost is None:
            if self.eagle_fraction and ks:
                return self._eagle_time_s(requests, ks)
            return 0.0
        if not ks:
            return 0.0
        total = 0.0
        k0 = ks[0]
        if k0 > 0 and all(k == k0 for k in ks):
            # every request drafts k0 tokens: pass j holds all of them at context S + n (j + 1), a
            # pure-decode run the cost model prices at once, bit-identical to step by step
            n = len(requests)
            context = n
            for r in requests:
                context += r.num_computed_tokens
            for t in cost.decode_step_times_list(n, context, k0):
                total += t
            return total
        for n, context in draft_passes(requests, ks):
            total += cost.step_time_s((), n, n, context)
        return total

    def stretch_k(self, rep: ReplicaView) -> int | None:
        """The k (> 0) every decoding request proposes in every step, whatever the state, when the
        replica draws acceptance and ``observe`` does not change later proposals: the replica may
        then plan a batch's steps at once and run them as one event (sim/engine/spec_stretch.py),
        telling ``observe`` the outcomes step by step when the steps are applied (at a sync or the
        stretch's end), so such an ``observe`` must not read the requests' progress. None (the
        default): no."""
        return None

    def uniform_draft_times_at_s(self, n: int, computed: np.ndarray, k: int) -> np.ndarray | None:
        """``draft_time_s`` of ``n`` requests all drafting ``k`` tokens, for each entry of ``computed``
        (the requests' summed computed tokens, one per step) at once and bit-identical; None when
        it cannot be priced so (a subclass's own ``draft_time_s``, a cost model without arrays)."""
        if type(self).draft_time_s is not SpeculatorBase.draft_time_s or k <= 0 or n <= 0:
            return None
        cost = self.draft_cost_model
        if cost is not None:  # pass j at the summed context + n (j + 1): a k-step decode run, summed in order
            return cost.decode_run_sums_s(n, computed + n, k)
        if not self.eagle_fraction:
            return np.zeros(len(computed), dtype=np.float64)
        # pass j: every request drafts over its context + j + 1 tokens
        contexts = computed[:, None] + n * np.arange(1, k + 1, dtype=np.int64)
        times = self.ctx.cost_model.decode_times_at_s(n, n, contexts)
        if times is None:
            return None
        total = times[:, 0].copy()  # passes summed in order, as ``draft_time_s`` sums them
        for j in range(1, k):
            total += times[:, j]
        return total * self.eagle_fraction

    def uniform_draft_table_s(self, n: int, k: int, max_computed: int) -> np.ndarray | None:
        """``uniform_draft_times_at_s(n, c, k)`` at every int c in [0, ``max_computed``] as one array
        indexed by c (a view of the draft cost model's table, longer), valid until the next call,
        for a plan that indexes it itself; None where ``uniform_draft_times_at_s`` must be asked
        (no draft cost model with tables, or one of its own ``draft_time_s`` or
        ``uniform_draft_times_at_s``)."""
        cls = type(self)
        if cls.draft_time_s is not SpeculatorBase.draft_time_s or k <= 0 or n <= 0 \
                or cls.uniform_draft_times_at_s is not SpeculatorBase.uniform_draft_times_at_s:
            return None
        table = getattr(self.draft_cost_model, "run_sums_table_s", None)
        if table is None:
            return None
        tab = table(n, k, max_computed + n)  # pass j at the summed context + n (j + 1), as there
        return None if tab is None else tab[n:]

    def uniform_draft_times_s(self, rep: ReplicaView, requests: Sequence[RequestView], k_max: int,
                              computed: int | None = None) -> list[float]:
        """Draft time when every request drafts k tokens, for k = 0..k_max (a policy's estimate);
        ``computed``: the requests' summed computed tokens, if the caller has it."""
        out = [0.0]
        if not requests or k_max <= 0:
            return out + [0.0] * max(k_max, 0)
        n = len(requests)
        if computed is None:
            computed = 0
            for r in requests:
                computed += r.num_computed_tokens
        context = n + computed
        cost = self.draft_cost_model
        if cost is not None:
            row = self._draft_row(1, context + k_max) if n == 1 and self._draft_row is not None else None
            # a batch of one: its passes at contexts context .. context + k_max - 1, read off the row
            passes = row[context:context + k_max] if row is not None \
                else self._draft_passes(rep, cost, n, context, k_max)
        elif self.eagle_fraction:
            target = self.ctx.cost_model
            passes = [target.step_time_s((), n, n, context + j * n) * self.eagle_fraction for j in range(k_max)]
        else:
            return out + [0.0] * k_max
        out.extend(accumulate(passes))  # the running sum, one add per pass left to right (0.0 + t0 is t0)
        return out

    def _draft_passes(self, rep: ReplicaView, cost: Any, n: int, context: int, k_max: int) -> list[float]:
        """``cost.decode_step_times_list(n, context, k_max)`` (the draft passes at contexts ``context
        + j n``), reusing the passes this replica's previous call priced at the same contexts: a
        decoding batch's next step starts a few tokens further on, so most of its passes were
        priced one step before. Exact only for a model whose decode step time is a function of the
        batch size and context alone: one that prices decode steps as arrays at any contexts
        (``decode_times_grid_s`` not None, a bit-identical contract), and this speculator's own
        instance (nothing else changes its state); otherwise every call prices all passes."""
        memo = self._pass_memo
        if memo is None:
            pure = cost.decode_times_grid_s(1, np.zeros(1, dtype=np.int64)) is not None
            memo = self._pass_memo = {} if pure else False
        if memo is False:
            return cost.decode_step_times_list(n, context, k_max)
        last = memo.get(rep.id)
        if last is not None and last[0] == n:
            d, rem = divmod(context - last[1], n)
            prev = last[2]
            if not rem and 0 <= d < len(prev):
                passes = prev[d:d + k_max]
                m = k_max - len(passes)
                if m > 0:
                    passes += cost.decode_step_times_list(n, context + len(passes) * n, m)
                memo[rep.id] = (n, context, passes)
                return passes
        passes = cost.decode_step_times_list(n, context, k_max)
        memo[rep.id] = (n, context, passes)
        return passes

    def _eagle_time_s(self, requests: Sequence[RequestView], ks: Sequence[int]) -> float:
        target = self.ctx.cost_model
        total = 0.0
        for n, context in draft_passes(requests, ks):
            if n:
                total += target.step_time_s((), n, n, context)
        return total * self.eagle_fraction


def draft_passes(requests: Sequence[RequestView], ks: Sequence[int]):
    """Per draft pass j = 0..max(k) - 1: (requests still drafting, their summed context), a
    request with k_i > j drafting its (j + 1)-th token over its context + j + 1 tokens."""
    for j in range(max(ks)):
        n = 0
        context = 0
        for r, k in zip(requests, ks, strict=True):
            if k > j:
                n += 1
                context += r.num_computed_tokens + j + 1
        yield n, context


def _leading_passes(requests: Sequence[RequestView], ks: Sequence[int], num_passes: int) -> list[tuple[int, int]]:
    """The first ``num_passes`` of ``draft_passes(requests, ks)`` (fewer if the drafts end sooner),
    in one sum when every request drafts the same k (pass j: n requests over the summed context
    + n (j + 1), the same ints)."""
    if not ks:
        return []
    k0 = ks[0]
    if all(k == k0 for k in ks):
        n = len(ks)
        context = 0
        for r in requests:
            context += r.num_computed_tokens
        return [(n, context + n * (j + 1)) for j in range(min(num_passes, k0))]
    return list(islice(draft_passes(requests, ks), num_passes))


def eagle_cost_fraction(model: Any, layers: int) -> float:
    """Share of ``model``'s parameters an EAGLE-style head of ``layers`` decoder layers and the
    model's LM head holds (its cost per draft pass relative to a target decode step)."""
    layer = model.attention_params + model.mlp_params
    return min(1.0, (layers * layer + model.lm_head_params) / model.num_params)
