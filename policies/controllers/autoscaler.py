"""A reactive autoscaler: add replicas when queues or KV fill up, drain idle ones.

Every ``period_s``, for each target pool, from its replicas' views (``PoolView``)::

    pressure = max(mean wait / scale_up_mean_wait_s,      over requests waiting for their first
                   max wait  / scale_up_max_wait_s,       iteration on the pool's active replicas
                   mean KV usage / scale_up_kv_usage)     over its active replicas
    pressure > 1:  desired = max(active + 1, ceil(active x min(pressure, max_scale_up_rate)))
                   add desired - active - starting        (capped at max_replicas)
    otherwise:     drain the least-loaded active replica that has been underused for
                   scale_down_idle_s: nothing waiting, KV usage <= scale_down_kv_usage
                   (and <= scale_down_max_outstanding requests, if set)

Replicas still in their cold start count toward capacity, so one overload adds at most
``active x (max_scale_up_rate - 1)`` replicas until they serve: no storm of additions while
the queue keeps growing during a cold start. Never below ``min_replicas`` (topped up first)
nor above ``max_replicas`` (active + starting); one drain per pool and period, none while
replicas are starting or the pool is under pressure, and none within
``scale_down_cooldown_s`` of the pool's last scaling action.

Defaults and where they come from:

- ``period_s`` 2 s: the Knative Pod Autoscaler's tick interval (Kubernetes HPA syncs every 15 s).
- ``scale_up_max_wait_s`` 2 s: the scheduling-delay bound Sarathi-Serve's capacity metric uses
  (median scheduling delay <= 2 s); ``scale_up_mean_wait_s`` 1 s, half of it, reacts to a
  queue that builds up evenly before its head reaches the bound.
- ``scale_up_kv_usage`` 0.9: above this a vLLM-style replica starts preempting (its admission
  keeps a small watermark free), so queues are about to grow.
- ``max_scale_up_rate`` 2: the pool at most doubles per decision, the default scale-up
  policy of the Kubernetes HPA (100% per period).
- ``scale_down_idle_s`` 60 s: Knative's stable window (its last replica leaves only after a
  whole window without traffic); ``scale_down_cooldown_s`` 15 s: the HPA's scale-down
  policy period.
- ``scale_down_kv_usage`` 0.1: load measured as KV in use, as Llumnix's freeness is (it
  scales in when instances are mostly free); a replica holding under a tenth of its cache
  carries a sliver of what it could. A request count alone misleads: a load-balancing router
  spreads even a light load over every replica, so none is ever idle.
- ``scale_up_cooldown_s`` 0: the HPA's scale-up stabilisation window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sim.engine.seams import Action, AddReplica, BuildContext, ControllerBase, DrainReplica
from sim.engine.views import ClusterView, ReplicaView
from sim.errors import ConfigError
from sim.registry import CONTROLLERS
from sim.schema import param


@dataclass
class ReactiveAutoscalerParams:
    """Targets, thresholds, bounds and timings of the reactive autoscaler."""

    pools: list[str] = param(default_factory=list, doc="pools to scale (empty: every pool)")
    period_s: float = param(2.0, gt=0, doc="seconds between decisions (Knative's tick interval)")
    min_replicas: int = param(1, ge=1, doc="fewest replicas per pool (active + starting)")
    max_replicas: int = param(8, ge=1, doc="most replicas per pool (active + starting)")
    scale_up_mean_wait_s: float | None = param(1.0, gt=0, doc="scale up when the mean queueing delay so far of "
                                                             "waiting requests passes this (null: ignore)")
    scale_up_max_wait_s: float | None = param(2.0, gt=0, doc="scale up when the longest queueing delay so far "
                                                            "passes this (null: ignore)")
    scale_up_kv_usage: float | None = param(0.9, gt=0, le=1, doc="scale up when the mean KV usage of the active "
                                                               "replicas passes this (null: ignore)")
    max_scale_up_rate: float = param(2.0, gt=1, doc="at most this factor of the active replicas after one decision, "
                                                    "replicas still starting included (HPA: 100% per period)")
    scale_up_cooldown_s: float = param(0.0, ge=0, doc="seconds after a scale-up before the next one")
    scale_down_idle_s: float = param(60.0, ge=0, doc="a replica underused this long is drained (Knative's window)")
    scale_down_kv_usage: float = param(0.1, ge=0, le=1, doc="underused: KV usage at most this (0: idle)")
    scale_down_max_outstanding: int | None = param(None, ge=0, doc="underused: also at most this many requests "
                                                                   "assigned (null: any)")
    scale_down_cooldown_s: float = param(15.0, ge=0, doc="seconds after any scaling action of the pool before a drain")

    def validate(self) -> None:
        if self.min_replicas > self.max_replicas:
            raise ConfigError(f"must be <= max_replicas ({self.max_replicas})", "min_replicas")


@dataclass
class _PoolState:
    last_up_s: float = -math.inf
    last_scale_s: float = -math.inf
    underused_since: dict[int, float] = field(default_factory=dict)


@CONTROLLERS.register("reactive_autoscaler")
class ReactiveAutoscaler(ControllerBase):
    """Threshold autoscaling on queueing delay and KV usage, with cold starts counted."""

    Params = ReactiveAutoscalerParams

    def __init__(self, params: ReactiveAutoscalerParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.check_pool_names(params.pools, ctx)
        self.state: dict[str, _PoolState] = {}

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        names = self.params.pools or [p.name for p in cluster.pools]
        actions: list[Action] = []
        for name in names:
            actions.extend(self._act_on_pool(name, cluster.pool(name).replicas, now_s))
        return actions

    def pressure(self, active: list[ReplicaView]) -> float:
        """How far the pool's worst signal is past its threshold (> 1: scale up)."""
        p = self.params
        waits = [w for r in active for w in r.waiting_delays_s]
        signals = []
        if waits and p.scale_up_mean_wait_s is not None:
            signals.append(sum(waits) / len(waits) / p.scale_up_mean_wait_s)
        if waits and p.scale_up_max_wait_s is not None:
            signals.append(max(waits) / p.scale_up_max_wait_s)
        if active and p.scale_up_kv_usage is not None:
            signals.append(sum(r.kv.usage for r in active) / len(active) / p.scale_up_kv_usage)
        return max(signals, default=0.0)

    def _act_on_pool(self, name: str, replicas: list[ReplicaView], now: float) -> list[Action]:
        p = self.params
        st = self.state.setdefault(name, _PoolState())
        active = [r for r in replicas if r.lifecycle == "active"]
        num_starting = sum(1 for r in replicas if r.lifecycle == "starting")
        self._track_underused(st, active, now)
        total = len(active) + num_starting
        if total < p.min_replicas:
            return self._add(st, name, p.min_replicas - total, now)
        ratio = self.pressure(active)
        if ratio > 1.0:
            if now - st.last_up_s < p.scale_up_cooldown_s:
                return []
            desired = max(len(active) + 1, math.ceil(len(active) * min(ratio, p.max_scale_up_rate)))
            return self._add(st, name, min(desired, p.max_replicas) - total, now)
        if num_starting or len(active) <= p.min_replicas or now - st.last_scale_s < p.scale_down_cooldown_s:
            return []
        since = st.underused_since
        idle = [r for r in active if r.id in since and now - since[r.id] >= p.scale_down_idle_s]
        if not idle:
            return []
        victim = min(idle, key=lambda r: (r.num_outstanding, r.kv.usage, -r.id))  # newest first among equals
        st.underused_since.pop(victim.id, None)
        st.last_scale_s = now
        return [DrainReplica(victim.id)]

    def _add(self, st: _PoolState, name: str, count: int, now: float) -> list[Action]:
        if count <= 0:
            return []
        st.last_up_s = st.last_scale_s = now
        return [AddReplica(name) for _ in range(count)]

    def _track_underused(self, st: _PoolState, active: list[ReplicaView], now: float) -> None:
        """Remember since when each active replica has been underused (forget the others)."""
        p = self.params
        limit = p.scale_down_max_outstanding
        seen = set()
        for r in active:
            if r.num_waiting == 0 and r.kv.usage <= p.scale_down_kv_usage and (
                    limit is None or r.num_outstanding <= limit):
                st.underused_since.setdefault(r.id, now)
                seen.add(r.id)
        for rid in [rid for rid in st.underused_since if rid not in seen]:
            del st.underused_since[rid]

    @classmethod
    def example_config(cls) -> dict:
        """The CI gate scenario: a 6x rate step on a two-replica pool (constant cost model,
        5 s cold starts) that the autoscaler follows up to six replicas and back."""
        return burst_config(autoscale=True)


def burst_config(autoscale: bool = True, num_replicas: int = 2, max_replicas: int = 6, base_rps: float = 3.0,
                 burst_rps: float = 18.0, phases_s: tuple[float, float, float] = (30.0, 90.0, 90.0),
                 seed: int = 0) -> dict[str, Any]:
    """A burst (``base_rps`` -> ``burst_rps`` -> ``base_rps``) on a small pool of the constant cost
    model, autoscaled from ``num_replicas`` up to ``max_replicas`` or, with ``autoscale=False``,
    fixed at ``num_replicas``. One replica serves about 4 requests/s here; a cold start takes
    16.06 GB / 16 GB/s + 4 s = 5.0 s. vLLM v1 admits arrivals into the running batch until KV
    runs out, so an overload shows first as KV filling up, then as a queue: the KV threshold
    is lowered to 0.5 to catch it a few seconds earlier."""
    rates = [base_rps, burst_rps, base_rps]
    num_requests = int(sum(r * d for r, d in zip(rates, phases_s, strict=True)))
    pool = {
        "name": "main", "num_replicas": num_replicas,
        "cost_model": {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-4, "per_decode_token_s": 3e-3},
        "scheduler": {"name": "vllm_v1"},
        "kv": {"name": "paged", "block_size": 16, "num_blocks": 1000},
        "cold_start": {"source": "custom", "load_gbps": 16.0, "engine_start_s": 4.0},
    }
    cluster: dict[str, Any] = {"router": "least_outstanding", "pools": [pool]}
    if autoscale:
        cluster["controllers"] = [{"name": "reactive_autoscaler", "pools": ["main"], "period_s": 1.0,
                                   "min_replicas": num_replicas, "max_replicas": max_replicas, "scale_up_kv_usage": 0.5,
                                   "scale_down_idle_s": 10.0, "scale_down_cooldown_s": 5.0}]
    return {
        "seed": seed,
        "workload": {"name": "synthetic", "num_requests": num_requests,
                     "arrival": {"name": "phases", "rates_rps": rates, "durations_s": list(phases_s)},
                     "input_tokens": 64, "input_tokens_max": 512, "output_tokens": 16, "output_tokens_max": 128},
        "cluster": cluster,
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
        "engine": {"progress": False},
    }
