"""An out-of-tree router that uses the run's output-length predictor (``ctx.predictor``).

``tests.plugins.predicted_shortest:PredictedLoadRouter`` sends a request to the replica with
the fewest predicted tokens still to generate, and records every prediction it saw, so the
predictor tests can check what policies are handed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.engine.request import State
from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView

NAME = "tests.plugins.predicted_shortest:PredictedLoadRouter"
_ENDED = (State.FINISHED, State.REJECTED)
BUILT: list[PredictedLoadRouter] = []  # every instance, newest last (the tests read it)


class PredictedLoadRouter:
    """Least predicted remaining tokens; ties to the lowest index."""

    Params = None

    def __init__(self, params: None, ctx: BuildContext):
        self.predictor = ctx.require_predictor("this router", where=ctx.where)
        self.seen: dict[int, int] = {}
        self.assigned: dict[int, list[RequestView]] = {}
        BUILT.append(self)

    def _load(self, rep: ReplicaView) -> int:
        live = [r for r in self.assigned.get(rep.id, []) if r.state not in _ENDED]
        self.assigned[rep.id] = live
        return sum(max(0, self.predictor.predict(r) - r.num_output_tokens) for r in live)

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None:
        self.seen[req.id] = self.predictor.predict(req)
        best = min(replicas, key=lambda rep: (self._load(rep), rep.id))
        self.assigned.setdefault(best.id, []).append(req)
        return best
