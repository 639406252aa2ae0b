"""The cost-model seam: how long one iteration of a batch takes on a replica.

A cost model is registered in ``COST_MODELS`` and built as ``cls(params, hardware)`` where
``hardware`` is the pool's ``HardwareConfig`` (device, model, tp, pp, dtypes). The engine
describes a batch by plain numbers so that a call is cheap:

- ``prefill``: a sequence of ``(new_tokens, offset_tokens)`` pairs, one per prefill chunk;
  ``offset_tokens`` is how much of that request's context already has KV (earlier chunks or
  cached prefix), so chunk attention costs about ``new * (offset + new)``.
- ``num_decode_seqs`` sequences decode ``num_decode_tokens`` tokens in all (one each without
  speculation), reading ``decode_context_tokens`` tokens of KV in all (including the new ones).

Subclasses implement ``step_parts``; everything else has a default built on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Chunks = Sequence[tuple[int, int]]


class CostModel:
    """Base class of iteration-time models; subclasses implement ``step_parts``."""

    #: bytes of KV per token for the whole model (all layers, all heads), from the model
    kv_bytes_per_token: float = 0.0
    #: GPUs in one replica (tp x pp)
    num_gpus: int = 1
    #: bytes of weights each GPU of a replica holds (loaded at a cold start, hardware/cold_start.py)
    weight_bytes_per_gpu: float = 0.0
    #: ``kv_capacity_bytes`` is the device memory the hardware's model leaves (its weights out) and
    #: ``kv_bytes_per_token`` follows from its layers: a second model on the same GPUs (a speculator's
    #: draft model) then takes its own share of that memory. False (a model of given capacity): it does not
    memory_by_model: bool = False

    def step_parts(
        self, prefill: Chunks, num_decode_seqs: int, num_decode_tokens: int, decode_context_tokens: int
    ) -> dict[str, float]:
        """Seconds per part of the iteration (e.g. compute, memory, communication, overhead)
        with the total under the key ``total``."""
        raise NotImplementedError

    def step_time_s(
        self, prefill: Chunks, num_decode_seqs: int, num_decode_tokens: int, decode_context_tokens: int
    ) -> float:
        """Seconds for one iteration of the described batch."""
        return self.step_parts(prefill, num_decode_seqs, num_decode_tokens, decode_context_tokens)["total"]

    def decode_step_times_s(self, num_seqs: int, context_tokens: int, num_steps: int) -> np.ndarray:
        """Times of ``num_steps`` consecutive pure-decode iterations of ``num_seqs`` sequences
        whose total context starts at ``context_tokens`` and grows by ``num_seqs`` per step.

        Must equal calling ``step_time_s`` once per step, bit for bit (the fast path relies on
        it); override only with arithmetic in the same order.
        """
        step = self.step_time_s
        return np.array(
            [step((), num_seqs, num_seqs, context_tokens + i * num_seqs) for i in range(num_steps)],
            dtype=np.float64,
        )

    def decode_step_times_list(self, num_seqs: int, context_tokens: int, num_steps: int) -> list[float]:
        """``decode_step_times_s`` as a list of Python floats (the fast path's form)."""
        return self.decode_step_times_s(num_seqs, context_tokens, num_steps).tolist()

    def chunk_step_times_list(self, num_decode_seqs: int, context_tokens: int, offset_tokens: int,
                              cum_tokens: Sequence[int], num_steps: int) -> list[float]:
        """Times of ``num_steps`` iterations of one prompt in chunks beside ``num_decode_seqs``
        decodes (a mixed stretch, sim/engine/mixed_stretch.py): iteration j computes the prompt's
        ``cum_tokens[j + 1] - cum_tokens[j]`` tokens at offset ``offset_tokens + cum_tokens[j]``
        while the decodes, one token each, read ``context_tokens + j * num_decode_seqs`` tokens.

        Must equal ``step_time_s`` per iteration, bit for bit; override only with arithmetic in
        the same order."""
        step, num = self.step_time_s, num_decode_seqs
        return [step([(cum_tokens[j + 1] - cum_tokens[j], offset_tokens + cum_tokens[j])], num, num,
                     context_tokens + j * num) for j in range(num_steps)]

    def verify_step_time_s(self, num_seqs: int, num_tokens: int, context_tokens: int) -> float:
        """A decode-only iteration of ``num_seqs`` sequences computing ``num_tokens`` tokens in all
        (a speculative verify pass): ``step_time_s((), num_seqs, num_tokens, context_tokens)``; a
        model may override it with a faster form of the same arithmetic."""
        return self.step_time_s((), num_seqs, num_tokens, context_tokens)

    def decode_times_at_s(self, num_seqs: int, num_tokens: int, contexts: np.ndarray) -> np.ndarray | None:
        """``verify_step_time_s(num_seqs, num_tokens, c)`` for every ``c`` of the int array
        ``contexts`` at once, bit for bit, or None (the default) if the model cannot price them as
        an array (speculative stretches then step: sim/engine/spec_stretch.py)."""
        return None

    def decode_times_grid_s(self, num_seqs: int, contexts: np.ndarray) -> np.ndarray | None:
        """The pure-decode step times ``decode_step_times_s`` gives, at any int array of contexts,
        bit for bit, or None (the default) if the model cannot price them as an array."""
        return None

    def decode_run_sums_s(self, num_seqs: int, contexts: np.ndarray, num_steps: int) -> np.ndarray | None:
        """For each int context c of ``contexts`` (1-d), the times of a pure-decode run of
        ``num_steps`` steps from c (``decode_times_grid_s`` at c, c + n, ..., c + (num_steps - 1) n)
        added left to right, or None if the grid is None; a model may memoise it."""
        if num_steps <= 0:
            return np.zeros(len(contexts), dtype=np.float64)
        times = self.decode_times_grid_s(num_seqs, contexts[:, None] + num_seqs * np.arange(num_steps, dtype=np.int64))
        if times is None:
            return None
        total = times[:, 0].copy()
        for j in range(1, num_steps):
            total += times[:, j]
        return total

    def kv_capacity_bytes(self, gpu_memory_utilization: float) -> float:
        """Bytes left for KV on the whole replica after weights, activations and reserves."""
        raise NotImplementedError

    def prefill_time_s(self, num_tokens: int, batch: int = 1) -> float:
        """One prefill iteration of ``batch`` prompts of ``num_tokens`` each (for SLO budgeting)."""
        return self.step_time_s([(num_tokens, 0)] * batch, 0, 0, 0)

    def decode_time_s(self, batch: int, context_tokens: int) -> float:
        """One decode iteration of ``batch`` sequences with ``context_tokens`` context each."""
        return self.step_time_s((), batch, batch, batch * (context_tokens + 1))

    def swap_time_s(self, num_bytes: float) -> float:
        """Seconds to copy ``num_bytes`` of KV between device and host memory."""
        return 0.0

    def swap_copy_time_s(self, num_bytes: float, num_blocks: int) -> float:
        """Seconds to swap ``num_bytes`` of KV held in ``num_blocks`` paged blocks: ``swap_time_s``
        plus any per-copy-call overhead a model charges for scattered small blocks (default none)."""
        return self.swap_time_s(num_bytes)

    def power_w(self, phase: str) -> float:
        """Average power per GPU in ``phase`` ('prefill', 'decode', 'idle'); 0 if unknown."""
        return 0.0

    def price_per_gpu_hour(self) -> float:
        """Dollars per GPU-hour; 0 if unknown."""
        return 0.0
