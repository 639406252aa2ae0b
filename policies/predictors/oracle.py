"""The perfect predictor: the true output length. The upper bound of every length-aware policy."""

from __future__ import annotations

from policies.predictors.base import PredictorBase
from sim.engine.views import RequestView
from sim.registry import PREDICTORS


@PREDICTORS.register("oracle")
class OraclePredictor(PredictorBase):
    """Predicts exactly the true output length."""

    Params = None

    def _predict(self, req: RequestView) -> float:
        return self.truth(req)
