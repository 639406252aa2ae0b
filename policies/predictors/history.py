"""A predictor that knows only the past: a running quantile of recent outputs per app or client.

What a serving system can do without a learned model (GoodServe and JITServe fall back to
per-application history; agent frameworks keep per-tool statistics): the prediction for a new
request is the ``quantile`` of the last ``window`` finished outputs of the same ``key`` group
(its app, its client, or all requests), or ``default_tokens`` until ``min_samples`` outputs
of that group have finished. It never reads the true length of a live request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from policies.predictors.base import PredictorBase
from sim.engine.seams import BuildContext
from sim.engine.views import RequestView
from sim.registry import PREDICTORS
from sim.schema import param


@dataclass
class HistoryParams:
    """Grouping, window and quantile."""

    key: Literal["app", "client", "all"] = param("app", doc="group requests by app, by client, or not at all")
    quantile: float = param(0.5, ge=0, le=1, doc="quantile of the group's recent outputs to predict")
    window: int = param(1000, ge=1, doc="recent finished outputs kept per group")
    min_samples: int = param(10, ge=1, doc="outputs a group needs before its history is used")
    default_tokens: int = param(256, ge=1, doc="prediction for a group with too little history")


@PREDICTORS.register("history")
class HistoryPredictor(PredictorBase):
    """Quantile of each group's last ``window`` outputs."""

    Params = HistoryParams

    def __init__(self, params: HistoryParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._history: dict[str | None, deque[int]] = {}

    def _group(self, req: RequestView) -> str | None:
        return None if self.params.key == "all" else getattr(req, self.params.key)

    def _predict(self, req: RequestView) -> float:
        past = self._history.get(self._group(req))
        if past is None or len(past) < self.params.min_samples:
            return self.params.default_tokens
        return float(np.quantile(np.fromiter(past, dtype=np.float64, count=len(past)), self.params.quantile))

    def _learn(self, req: RequestView, output_tokens: int) -> None:
        group = self._group(req)
        past = self._history.get(group)
        if past is None:
            past = self._history[group] = deque(maxlen=self.params.window)
        past.append(output_tokens)
