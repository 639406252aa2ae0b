"""C2CServe's hierarchical placement of models on MIG slices (C2CServe, 2026) [abstract].

C2CServe keeps every model in Grace memory and lets any MIG slice of a GH200 run it at once,
streaming the weights over NVLink-C2C (``serving.stream``); all slices of a chip share that
one link. Placement is hierarchical::

    warm slice running m with spare concurrency        -> the least loaded of them
    else chip level:  the chip whose link is least demanded now
                      (sum of rho over its busy slices: what they stream; ties: fewer busy slices)
         slice level: an idle slice of that chip, most of m already in its HBM first
                      (no idle slice there: the next chip)
    else (every slice busy): the slice running m, else the shortest queue

Chunk size and rho per slice are the controller's (``c2cserve_rho``). The paper's exact
placement scores are not public here: the link-demand rule is ours, and
``max_concurrency`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.routers.model_affinity import gate_example, is_idle, load, runs
from sim.engine.seams import RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class C2CServeRouterParams:
    """Concurrency target of a warm slice."""

    max_concurrency: int = param(16, ge=1, doc="requests on a warm slice before another slice runs the model")


def chip_demand(replicas: Sequence[ReplicaView]) -> dict:
    """Per chip: (sum of rho over its busy slices, busy slices)."""
    out: dict = {}
    for r in replicas:
        rho, busy = out.get(r.chip, (0.0, 0))
        if load(r) or r.is_switching:
            out[r.chip] = (rho + r.rho, busy + 1)
        else:
            out[r.chip] = (rho, busy)
    return out


@ROUTERS.register("c2cserve")
class C2CServeRouter(RouterBase):
    """Warm slice, else an idle slice on the least C2C-demanded chip."""

    Params = C2CServeRouterParams

    @classmethod
    def example_config(cls) -> dict:
        """4 GH200 1g.24gb slices (2 chips) streaming 4 models from Grace, C2CServe placement."""
        data = gate_example("c2cserve")
        data["cluster.pools[0].hardware"] = {"device": "GH200-96GB:1g.24gb", "model": "Llama-3.2-1B"}
        data["cluster.pools[0].serving"] = dict(data["cluster.pools[0].serving"], weights_home="grace",
                                                stream=True, rho=0.5, slices_per_chip=2)
        return data

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None:
        model = req.model
        warm = [r for r in replicas if runs(r, model) and load(r) < self.params.max_concurrency]
        if warm:
            return min(warm, key=lambda r: (load(r), r.id))
        idle = [r for r in replicas if is_idle(r)]
        if idle:
            demand = chip_demand(replicas)
            return min(idle, key=lambda r: (demand[r.chip], model not in r.resident_models, r.id))
        mine = [r for r in replicas if r.serving_model == model]
        if mine:
            return min(mine, key=lambda r: (load(r), r.id))
        return min(replicas, key=lambda r: (load(r), r.id))
