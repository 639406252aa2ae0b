"""GoodServe's completion-time estimate of a request on an instance, from the instance's cost
model (pricing only) and a predicted output length; shared by the ``goodserve`` and
``fastest_first`` routers and the ``goodserve_rectify`` controller.

::

    estimate = wait + prompt / prefill_rate + L_pred x TPOT(load + 1)
      wait          prompt tokens queued (or left of prefills in progress) on the instance /
                    its prefill rate
      prefill_rate  tokens per second of one ``prefill_chunk_tokens`` chunk on its GPUs
      L_pred        predicted output tokens still to come (the predictor's total less those
                    emitted; at least 1)
      TPOT(b)       one decode iteration of b requests over the instance's KV in use plus this
                    request's context: b = running requests + 1

capability of an instance: 1 / TPOT(1) at a 1,024-token context (a faster GPU is more capable).
Step times are memoised per cost model and batch size (context rounded to 1,024 tokens).
"""

from __future__ import annotations

from typing import Any

from sim.engine.views import ReplicaView, RequestView

CONTEXT_ROUND_TOKENS = 1024


class CompletionEstimator:
    """Estimates per (instance, request), memoised per cost model."""

    def __init__(self, predictor: Any, default_output_tokens: int = 256, prefill_chunk_tokens: int = 2048):
        self.predictor = predictor
        self.default_output_tokens = default_output_tokens
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self._rate: dict[int, float] = {}
        self._tpot: dict[tuple[int, int, int], float] = {}

    def predicted_tokens(self, req: RequestView) -> int:
        """Total output tokens predicted (the default when no predictor is configured)."""
        if self.predictor is None:
            return self.default_output_tokens
        return int(self.predictor.predict(req))

    def remaining_tokens(self, req: RequestView) -> int:
        return max(1, self.predicted_tokens(req) - req.num_output_tokens)

    def prefill_rate(self, rep: ReplicaView) -> float:
        """Prompt tokens per second on ``rep``'s GPUs."""
        cm = rep.cost_model
        rate = self._rate.get(id(cm))
        if rate is None:
            n = self.prefill_chunk_tokens
            rate = self._rate[id(cm)] = n / cm.step_time_s([(n, 0)], 0, 0, 0)
        return rate

    def tpot_s(self, rep: ReplicaView, batch: int, context_tokens: int) -> float:
        """One decode iteration of ``batch`` requests holding ``context_tokens`` in all."""
        cm = rep.cost_model
        ctx = max(1, round(context_tokens / CONTEXT_ROUND_TOKENS)) * CONTEXT_ROUND_TOKENS
        key = (id(cm), batch, ctx)
        t = self._tpot.get(key)
        if t is None:
            t = self._tpot[key] = cm.step_time_s([], batch, batch, ctx)
        return t

    def capability(self, rep: ReplicaView) -> float:
        return 1.0 / self.tpot_s(rep, 1, CONTEXT_ROUND_TOKENS)

    def estimate_s(self, rep: ReplicaView, req: RequestView, extra_wait_s: float = 0.0, moving: bool = False) -> float:
        """Seconds until ``req`` would finish on ``rep`` if it were sent there now (``moving``: it
        is not on ``rep`` yet but has started elsewhere, so its context must be recomputed or
        copied: ``extra_wait_s`` is that cost and no prompt prefill is added)."""
        rate = self.prefill_rate(rep)
        wait = rep.pending_prefill_tokens / rate + extra_wait_s
        prefill = 0.0 if moving or req.is_decoding else req.remaining_prefill_tokens / rate
        used_tokens = rep.kv.num_used_blocks * rep.kv.block_size
        on_rep = req.replica == rep.id and not moving
        batch = rep.num_running + (0 if on_rep else 1)
        ctx = used_tokens + (0 if on_rep else req.context_tokens)
        return wait + prefill + self.remaining_tokens(req) * self.tpot_s(rep, max(1, batch), ctx)
