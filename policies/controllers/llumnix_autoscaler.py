"""Llumnix's autoscaling on the pool's mean freeness (Sun et al., OSDI'24; AlibabaPAI/llumnix
v0.1.0, ``scaling_scheduler.py``, policy ``avg_load``).

Every ``period_s`` (10 s, the code's ``SCALING_INTERVAL``), per pool, the pool is taken as one
instance: its freeness F = (sum of M - sum of virtual usage) / (sum of batch sizes) over its
active replicas, every queued request counting its demand (``policies.llumnix_freeness``)::

    F < scale_up_threshold (10)      add the fewest replicas that bring F (with them empty, and
                                     those still starting, counted at full capacity) back to
                                     the threshold, at most max_scale_up_per_check per check
    F' > scale_down_threshold (60)   F' = the pool's freeness without one replica's capacity
                                     (its requests stay): drain the freest replica. It gets F =
                                     -inf, so Llumnix's migration (``llumnix_migration``) moves its
                                     decoding requests off; it leaves once empty

New replicas pay their cold start (``cold_start`` of the pool). Never below ``min_replicas``
nor above ``max_replicas`` (active + starting); no drain while replicas are starting.

Where this departs from the code: the code counts an empty instance as infinitely free when
sizing a scale-up (it adds one instance per check); here an added replica has the capacity of
the pool's replicas, and ``max_scale_up_per_check`` (default 1, as the code) caps the step.
The code scales down the last instance by id; here the freest one (fewest requests to move).
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.llumnix_freeness import freeness, mean_freeness
from sim.engine.seams import Action, AddReplica, BuildContext, ControllerBase, DrainReplica
from sim.engine.views import ClusterView
from sim.errors import ConfigError
from sim.registry import CONTROLLERS
from sim.schema import param


@dataclass
class LlumnixAutoscalerParams:
    """Thresholds, period and bounds of Llumnix's scaling."""

    pools: list[str] = param(default_factory=list, doc="pools to scale (empty: every pool)")
    period_s: float = param(10.0, gt=0, doc="seconds between decisions (Llumnix: 10 s)")
    scale_up_threshold: float = param(10.0, doc="scale up when the pool's freeness is below this (Llumnix: 10)")
    scale_down_threshold: float = param(60.0, doc="scale down when the pool's freeness without one replica is "
                                                  "above this (Llumnix: 60)")
    min_replicas: int = param(1, ge=1, doc="fewest replicas per pool (active + starting)")
    max_replicas: int = param(16, ge=1, doc="most replicas per pool (active + starting)")
    max_scale_up_per_check: int = param(1, ge=1, doc="most replicas added per check (Llumnix's code: 1)")

    def validate(self) -> None:
        if self.min_replicas > self.max_replicas:
            raise ConfigError(f"must be <= max_replicas ({self.max_replicas})", "min_replicas")
        if self.scale_down_threshold <= self.scale_up_threshold:
            raise ConfigError(f"must be above scale_up_threshold ({self.scale_up_threshold})", "scale_down_threshold")


@CONTROLLERS.register("llumnix_autoscaler")
class LlumnixAutoscaler(ControllerBase):
    """Add replicas when the pool's mean freeness is low, drain one when it is high."""

    Params = LlumnixAutoscalerParams

    def __init__(self, params: LlumnixAutoscalerParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.check_pool_names(params.pools, ctx)
        self.history: list[tuple[float, str, float]] = []  # (time, pool, freeness) at each check

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        names = self.params.pools or [p.name for p in cluster.pools]
        actions: list[Action] = []
        for name in names:
            actions.extend(self._act_on_pool(name, cluster, now_s))
        return actions

    def _act_on_pool(self, name: str, cluster: ClusterView, now_s: float) -> list[Action]:
        p = self.params
        replicas = cluster.pool(name).replicas
        active = [r for r in replicas if r.lifecycle == "active"]
        starting = [r for r in replicas if r.lifecycle == "starting"]
        total = len(active) + len(starting)
        if total < p.min_replicas:
            return [AddReplica(name) for _ in range(p.min_replicas - total)]
        if not active:
            return []
        cap = active[0].kv.num_blocks - active[0].kv.watermark_blocks  # one replica's capacity
        f = mean_freeness(active, extra_capacity_blocks=cap * len(starting))
        self.history.append((now_s, name, f))
        if f < p.scale_up_threshold:
            room = p.max_replicas - total
            n = 0
            while n < min(room, p.max_scale_up_per_check) and \
                    mean_freeness(active, extra_capacity_blocks=cap * (len(starting) + n)) < p.scale_up_threshold:
                n += 1
            return [AddReplica(name) for _ in range(n)]
        if starting or len(active) <= p.min_replicas:
            return []
        if mean_freeness(active, drop_capacity_blocks=cap) > p.scale_down_threshold:
            victim = max(active, key=lambda r: (freeness(r, "all"), -r.num_outstanding, r.id))
            return [DrainReplica(victim.id)]
        return []

    @classmethod
    def example_config(cls) -> dict:
        """A 6x rate step on two replicas (constant cost model, 5 s cold starts, 1,000 KV blocks each)
        that Llumnix's autoscaler follows, with its router and migration emptying drained replicas."""
        from policies.controllers.autoscaler import burst_config

        data = burst_config(autoscale=False)
        data["cluster"]["router"] = {"name": "llumnix"}
        data["cluster"]["transfer"] = {"link": "ib-ndr"}
        data["cluster"]["controllers"] = [
            {"name": "llumnix_autoscaler", "pools": ["main"], "period_s": 2.0, "min_replicas": 2, "max_replicas": 6},
            {"name": "llumnix_migration"}]
        return data

