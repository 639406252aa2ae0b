"""What every speculator shares: the ground-truth acceptance rate and the draft cost.

A speculator is built per pool as ``cls(params, ctx)`` and asked, every iteration with
decodes, ``propose(replica, requests) -> [k_i]``: draft tokens per decoding request. The
replica then prices the step as the speculator's ``draft_time_s`` plus one verify pass of
``sum(k_i + 1)`` tokens on the target model, draws acceptance per proposed token (the first
rejection ends the run) and emits accepted + 1 tokens; ``observe(request, k, accepted)``
tells the speculator what happened (adaptive policies learn from it).

Draft cost::

    draft_model: null      model-free drafting (n-gram / prompt lookup, EAGLE-style heads
                           counted in the verify pass): no draft time
    draft_model: NAME      a draft model on the same GPU(s), priced by the pool's cost model
                           class with that catalog model: pass j (0..max k - 1) decodes the
                           n_j requests with k_i > j over their contexts + j tokens

Not modelled (stated so nobody trusts them): the draft model's own prefill of new prompt
tokens and its KV memory (the target's KV capacity is not reduced), tree/multi-candidate
verification. ``acceptance_rate`` is the simulation's ground truth (per proposed token, used
for requests that carry no ``spec_acceptance`` of their own); a policy must not read it to
decide, unless its config says ``oracle: true``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sim.engine.seams import BuildContext, PolicyBase
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.schema import param


@dataclass
class DraftParams:
    """Fields every speculator's parameter block has (its own block inherits them)."""

    acceptance_rate: float = param(0.7, ge=0, le=1,
                                   doc="ground truth: chance each draft token is accepted (per token)")
    draft_model: str | None = param(None, doc="catalog model drafting on the same GPUs (null: model-free, no cost)")


class SpeculatorBase(PolicyBase):
    """Ground-truth acceptance, draft pricing and the no-op ``observe``."""

    def __init__(self, params: Any, ctx: BuildContext):
        super().__init__(params, ctx)
        self.draft_cost_model = None
        if params.draft_model is not None:
            from hardware.models import get_model

            try:
                get_model(params.draft_model)
            except (ConfigError, KeyError) as exc:
                msg = exc.message if isinstance(exc, ConfigError) else str(exc.args[0])
                raise ConfigError(f"unknown draft model: {msg}", f"{ctx.where}.draft_model") from None
            target = ctx.cost_model
            hardware = dataclasses.replace(ctx.hardware, model=params.draft_model)
            try:
                self.draft_cost_model = type(target)(target.params, hardware)
            except (ConfigError, KeyError) as exc:
                msg = exc.message if isinstance(exc, ConfigError) else str(exc)
                raise ConfigError(f"draft model {params.draft_model!r}: {msg}", f"{ctx.where}.draft_model") from None

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]:
        raise NotImplementedError

    def acceptance_rate(self, req: RequestView) -> float:
        """The ground-truth acceptance rate for requests without their own (engine use)."""
        return self.params.acceptance_rate

    def observe(self, req: RequestView, proposed: int, accepted: int) -> None:
        """``req`` proposed ``proposed`` draft tokens and ``accepted`` of them were accepted."""

    def draft_time_s(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int]) -> float:
        """Seconds of drafting before the verify pass (see the module docstring)."""
        cost = self.draft_cost_model
        if cost is None or not ks:
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
            for t in cost.decode_step_times_s(n, context, k0).tolist():
                total += t
            return total
        for j in range(max(ks)):
            n = 0
            context = 0
            for r, k in zip(requests, ks, strict=True):
                if k > j:
                    n += 1
                    context += r.num_computed_tokens + j + 1
            total += cost.step_time_s((), n, n, context)
        return total
