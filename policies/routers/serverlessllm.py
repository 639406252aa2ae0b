"""ServerlessLLM's startup-time-optimised, locality-aware scheduler (Fu et al., OSDI'24).

ServerlessLLM keeps checkpoints in a multi-tier store per server (GPU memory, host DRAM, SSD)
and loads them with a fast, pipelined loader; its scheduler sends a cold request to the server
whose *estimated start time* is lowest: the time the checkpoint takes to load from the fastest
tier that holds it on that server (``q + n / b``: queued loads plus size over the tier's
bandwidth), plus the wait for the server to be free. Here::

    warm replica of m with spare concurrency    -> the least loaded (no start needed)
    else for every replica r:  start(r) = switch_s(r, m)                 (ClusterView.model_switch_s:
                                        + busy_s x requests on r          load from r's fastest tier
                                                                          holding m, queued loads included)
    -> argmin start(r), ties by id

``serving.weights_home: tiered`` gives the multi-tier store (a host-memory checkpoint cache
per chip, LRU, then local NVMe at the loader's 22.9 GB/s). Live migration of running
inferences, the paper's other half, is not modelled; a busy server is priced by ``busy_s``
per request it holds (unknown: a parameter, 2 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.routers.model_affinity import gate_example, load, runs
from sim.engine.seams import RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class ServerlessLLMParams:
    """Concurrency target and the wait priced per request a busy replica holds."""

    max_concurrency: int = param(16, ge=1, doc="requests on a warm replica before another one starts the model")
    busy_s: float = param(2.0, ge=0, doc="estimated seconds per request a busy replica must finish first")


@ROUTERS.register("serverlessllm")
class ServerlessLLMRouter(RouterBase):
    """A warm replica with spare concurrency, else the lowest estimated start time."""

    Params = ServerlessLLMParams

    @classmethod
    def example_config(cls) -> dict:
        """4 H100s serving 4 models (Zipf) from a tiered checkpoint store, startup-time-optimised."""
        data = gate_example("serverlessllm")
        data["cluster.pools[0].serving"] = dict(data["cluster.pools[0].serving"], weights_home="tiered",
                                                dram_cache_gb=20.0)
        return data

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None:
        model = req.model
        p = self.params
        warm = [r for r in replicas if runs(r, model) and load(r) < p.max_concurrency]
        if warm:
            return min(warm, key=lambda r: (load(r), r.id))
        cluster = self.ctx.cluster

        def start(r: ReplicaView) -> tuple[float, int]:
            wait = p.busy_s * load(r) / (p.max_concurrency if runs(r, model) else 1)
            return cluster.model_switch_s(r, model) + wait, r.id

        return min(replicas, key=start)
