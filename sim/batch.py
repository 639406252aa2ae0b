"""What a scheduler returns for one iteration: prefill chunks, decodes, KV copies."""

from __future__ import annotations

from sim.request import Request


class Batch:
    """One iteration's work on one replica.

    ``prefill`` holds (request, new tokens) chunks whose offsets are the requests'
    ``num_computed_tokens`` at scheduling time; ``decode`` requests compute one token each
    (``decode_tokens`` each with speculation). ``swap_bytes`` is KV copied between device
    and host before the forward pass (vLLM does the copies inside the step).
    """

    __slots__ = ("prefill", "decode", "num_prefill_tokens", "swap_bytes", "decode_tokens")

    def __init__(self) -> None:
        self.prefill: list[tuple[Request, int]] = []
        self.decode: list[Request] = []
        self.num_prefill_tokens = 0
        self.swap_bytes = 0
        self.decode_tokens: list[int] | None = None  # per decode request, when speculating

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
