"""What every output-length predictor shares: one prediction per request, kept until it ends.

A predictor is built once per run as ``cls(params, ctx)`` (``cluster.predictor`` in the
config) and handed to every policy as ``ctx.predictor``. Policies call ``predict(view)`` and
get the predicted total output tokens (an int >= 1); the same request gets the same number on
every call, whichever policy asks first. The engine calls ``observe(view, output_tokens)``
when a request finishes (learning predictors use it) and ``discard(view)`` when it is
rejected.

A predictor is the simulation's model of a learned predictor: it may read the true length
(its context always grants the oracle) and degrades it as its parameters say. Policies see
only the prediction; a policy reading the truth itself still needs ``oracle: true``.
"""

from __future__ import annotations

from sim.engine.seams import BuildContext, PolicyBase
from sim.engine.views import RequestView


class PredictorBase(PolicyBase):
    """Caches one prediction per live request; subclasses implement ``_predict``."""

    def __init__(self, params, ctx: BuildContext):
        super().__init__(params, ctx)
        self._predictions: dict[int, int] = {}

    def predict(self, req: RequestView) -> int:
        """Predicted total output tokens of ``req`` (>= 1), stable for the request's life."""
        value = self._predictions.get(req.id)
        if value is None:
            value = self._predictions[req.id] = max(1, int(round(self._predict(req))))
        return value

    def _predict(self, req: RequestView) -> float:
        raise NotImplementedError

    def observe(self, req: RequestView, output_tokens: int) -> None:
        """``req`` finished with ``output_tokens``: drop its prediction, then learn."""
        self._predictions.pop(req.id, None)
        self._learn(req, output_tokens)

    def _learn(self, req: RequestView, output_tokens: int) -> None:
        """Learning predictors update here (default: nothing to learn)."""

    def discard(self, req: RequestView) -> None:
        """``req`` ended without finishing (rejected): forget its prediction."""
        self._predictions.pop(req.id, None)

    def truth(self, req: RequestView) -> int:
        """The true output length (predictors are built with the oracle)."""
        return self.ctx.output_tokens(req)
