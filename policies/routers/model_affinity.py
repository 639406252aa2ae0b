"""Model affinity: the serverless router of dedicated-GPU serving and of GPU time-sharing.

For a request naming model ``m``, over the replicas that serve ``m`` (``sim.engine.multimodel``)::

    warm = replicas running m (or switching to it) with fewer than max_concurrency requests
    warm:     the least loaded of them                           (Knative: a warm instance
    else:     an idle replica (nothing assigned or queued),       below its concurrency target)
              m resident in its HBM first, then least recently switched, lowest id
    else:     the replica with m queued or running, else the one with the shortest
              queue (it switches to m when it empties)

This is the activator's rule of Knative-style serverless platforms (a request goes to a warm
instance with spare concurrency, else it cold-starts one); with ``serving.switch: restart``
and ``max_resident: 1`` it is dedicated-GPU serverless, with ``switch: swap`` GPU
time-sharing with model swapping. ``max_concurrency`` (Knative's container concurrency
target, 100 by default; LLM engines batch far fewer long requests) is a parameter: 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.engine.seams import RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param

MODELS = ["Llama-3.2-1B", "Qwen2.5-0.5B", "Qwen2.5-7B", "Llama-2-7B"]


def load(rep: ReplicaView) -> int:
    """Requests assigned to ``rep``: running, waiting, and queued for a switch."""
    return rep.num_outstanding + rep.num_model_queued


def runs(rep: ReplicaView, model: str) -> bool:
    """Whether ``rep`` runs ``model``, or is switching to it, and no other model waits there."""
    return rep.serving_model == model and all(m == model for m in rep.queued_models)


def is_idle(rep: ReplicaView) -> bool:
    return load(rep) == 0 and not rep.is_switching


def gate_example(router: str) -> dict:
    """A gate scenario for a multi-model router: 4 time-shared replicas, 4 models by Zipf."""
    return {
        "workload.rate_rps": 20.0,
        "workload.transforms": [{"name": "assign_models", "models": MODELS, "zipf_a": 1.0}],
        "cluster.router": {"name": router},
        "cluster.pools[0].hardware": {"device": "H100-SXM", "model": MODELS[0]},
        "cluster.pools[0].serving": {"models": MODELS[1:], "weights_home": "host_memory", "keep_alive_s": 5.0},
    }


@dataclass
class ModelAffinityParams:
    """Concurrency target of a warm replica."""

    max_concurrency: int = param(16, ge=1, doc="requests on a warm replica before another one starts the model")


@ROUTERS.register("model_affinity")
class ModelAffinityRouter(RouterBase):
    """A warm replica of the model with spare concurrency, else an idle one to cold-start."""

    Params = ModelAffinityParams

    @classmethod
    def example_config(cls) -> dict:
        """4 time-shared H100s serving 4 models (Zipf), model-affinity routing."""
        return gate_example("model_affinity")

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None:
        model = req.model
        cap = self.params.max_concurrency
        warm = [r for r in replicas if runs(r, model) and load(r) < cap]
        if warm:
            return min(warm, key=lambda r: (load(r), r.id))
        idle = [r for r in replicas if is_idle(r)]
        if idle:
            return min(idle, key=lambda r: (model not in r.resident_models, r.id))
        mine = [r for r in replicas if r.serving_model == model]
        if mine:
            return min(mine, key=lambda r: (load(r), r.id))
        return min(replicas, key=lambda r: (load(r), r.id))
