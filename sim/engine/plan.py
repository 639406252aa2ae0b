"""What a scheduler returns for one iteration: a step plan.

::

    StepPlan
      prefill   [(request, prompt tokens to compute)]      offsets = the requests' computed tokens
      decode    [request]  + decode_tokens [k_i + 1]       tokens proposed per decode (1 without
                                                           speculation; k draft + 1 with it)
      layers    done_layers .. stop_at_layer (or all)      a layer range: resumes after a cut or
                                                           a partial (layered) prefill
      holds     preemptible (cut at a layer boundary), hold (other replicas held for the whole
                step: a sequence-parallel gang), step_s (priced by the policy), on_finish

Schedulers fill a plan with ``add_prefill`` / ``add_decode`` (request views or requests) and
the replica executes it: prices it (the cost model, or ``step_s``), waits, emits accepted + 1
tokens per decode, grows KV and releases rejected speculative slots.

- ``preemptible``: the step may be cut at a layer boundary when new work arrives and the
  scheduler's ``wants_cut(replica)`` says so; ``done_layers`` of the model's layers are then
  finished and only the rest is paid when the plan resumes (layered prefill, PecSched).
- ``hold``: replicas (views) held busy for the whole step; cutting the step releases them.
"""

from __future__ import annotations

from typing import Any

from sim.engine.request import Request


def _req(x: Any) -> Request:
    r = getattr(x, "_r", None)
    return r if r is not None else x


class StepPlan:
    """One iteration's work on one replica."""

    __slots__ = ("prefill", "decode", "num_prefill_tokens", "decode_tokens", "preemptible",
                 "done_layers", "stop_at_layer", "step_s", "hold", "on_finish", "draft_s",
                 "spec_accepted", "verify_tokens")

    def __init__(self) -> None:
        self.prefill: list[tuple[Request, int]] = []
        self.decode: list[Request] = []
        self.num_prefill_tokens = 0
        self.decode_tokens: list[int] | None = None  # per decode request, when speculating
        self.preemptible = False
        self.done_layers = 0                # layers already computed before a cut
        self.stop_at_layer: int | None = None  # run layers done_layers..this one, then park
        self.step_s: float | None = None    # full iteration time, if priced by the scheduler
        self.hold: list | None = None       # replicas held for this iteration (gang)
        self.on_finish = None               # (plan) -> None, after the plan is applied
        self.draft_s = 0.0                  # draft-model time of a speculative step
        self.spec_accepted: list[int] | None = None  # accepted drafts per decode, drawn by the speculator
        self.verify_tokens: list[int] | None = None  # tokens verified per decode when fewer than k + 1

    @property
    def requests(self) -> list[Request]:
        """Requests in the plan, prefill chunks first."""
        return [r for r, _n in self.prefill] + self.decode

    def add_prefill(self, req: Any, num_tokens: int) -> None:
        """Compute ``num_tokens`` prompt tokens of ``req`` (a request view or request)."""
        try:
            r = req._r
        except AttributeError:
            r = req
        self.prefill.append((r, num_tokens))
        self.num_prefill_tokens += num_tokens

    def add_decode(self, req: Any) -> None:
        """Decode one token of ``req`` (more when the pool speculates)."""
        try:
            self.decode.append(req._r)
        except AttributeError:
            self.decode.append(req)

    def remove(self, req: Any) -> None:
        """Drop ``req`` from the plan (it was preempted after being scheduled)."""
        r = _req(req)
        if r in self.decode:
            self.decode.remove(r)
            return
        for k, (q, n) in enumerate(self.prefill):
            if q is r:
                del self.prefill[k]
                self.num_prefill_tokens -= n
                return

    @property
    def prefill_requests(self) -> list:
        """Views of the requests with a prefill chunk in the plan (for policies)."""
        return [r.view for r, _n in self.prefill]

    @property
    def decode_requests(self) -> list:
        """Views of the decoding requests in the plan (for policies)."""
        return [r.view for r in self.decode]

    @property
    def num_prefill(self) -> int:
        return len(self.prefill)

    @property
    def num_decode(self) -> int:
        return len(self.decode)

    @property
    def size(self) -> int:
        """Requests in the plan."""
        return len(self.prefill) + len(self.decode)

    @property
    def num_tokens(self) -> int:
        """Tokens computed in the iteration (without speculation)."""
        return self.num_prefill_tokens + len(self.decode)

    def __bool__(self) -> bool:
        return bool(self.prefill or self.decode)
