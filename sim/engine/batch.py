"""What a scheduler returns for one iteration: prefill chunks, decodes, KV copies."""

from __future__ import annotations

from sim.engine.request import Request


class Batch:
    """One iteration's work on one replica.

    ``prefill`` holds (request, new tokens) chunks whose offsets are the requests'
    ``num_computed_tokens`` at scheduling time; ``decode`` requests compute one token each
    (``decode_tokens`` each with speculation). ``swap_bytes`` is KV copied between device
    and host before the forward pass (vLLM does the copies inside the step).

    Optional marks a scheduler may set (see sim/engine/replica.py, "Pausable iterations"):

    - ``preemptible``: the iteration may be cut at a layer boundary when new work arrives and
      the scheduler's ``wants_preempt(replica)`` says so; ``done_layers`` of the model's
      layers are then finished and only the rest is paid when the batch resumes.
    - ``step_s``: the full iteration time, when the scheduler prices it itself (e.g. a
      sequence-parallel prefill); otherwise the replica asks its cost model.
    - ``gang``: other replicas held busy for the whole iteration (sequence parallelism);
      cutting the iteration releases them all. ``on_finish(batch)`` runs when it completes.
    """

    __slots__ = ("prefill", "decode", "num_prefill_tokens", "swap_bytes", "decode_tokens",
                 "preemptible", "done_layers", "step_s", "gang", "on_finish")

    def __init__(self) -> None:
        self.prefill: list[tuple[Request, int]] = []
        self.decode: list[Request] = []
        self.num_prefill_tokens = 0
        self.swap_bytes = 0
        self.decode_tokens: list[int] | None = None  # per decode request, when speculating
        self.preemptible = False
        self.done_layers = 0                # layers already computed before a cut
        self.step_s: float | None = None    # full iteration time, if priced by the scheduler
        self.gang: list | None = None       # helper replicas held for this iteration
        self.on_finish = None               # (batch) -> None, after the batch is applied

    @property
    def requests(self) -> list[Request]:
        """Requests in the batch, prefill chunks first."""
        return [r for r, _n in self.prefill] + self.decode

    def add_prefill(self, req: Request, num_tokens: int) -> None:
        """Schedule a prefill chunk of ``num_tokens`` tokens for ``req``."""
        self.prefill.append((req, num_tokens))
        self.num_prefill_tokens += num_tokens

    @property
    def size(self) -> int:
        """Requests in the batch."""
        return len(self.prefill) + len(self.decode)

    @property
    def num_tokens(self) -> int:
        """Tokens computed in the iteration."""
        return self.num_prefill_tokens + len(self.decode)

    def __bool__(self) -> bool:
        return bool(self.prefill or self.decode)
