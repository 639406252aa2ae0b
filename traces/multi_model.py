"""Multi-model workloads: give each request a model from a catalog by long-tail popularity.

``assign_models`` keeps a trace's arrivals and lengths and sets ``model``::

    weight of model k (k = 0, 1, ...) = k+1 ^ -zipf_a          (or explicit weights)
                                      x burst_factor while k is in a burst
    model k alternates: off for Exp(off_mean_s), in a burst for Exp(on_mean_s)

Most models are invoked rarely (the Azure Functions / serverless long tail), and each has
bursts of its own, so a replica's idle models expire and come back cold. A trace with its
own ``model`` column needs no transform (``overwrite: false`` keeps it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sim.engine.request import Request
from sim.errors import ConfigError
from sim.schema import param
from traces.transforms import TRANSFORMS, Transform, _check_weights


@dataclass
class AssignModelsParams:
    """Models by Zipf popularity with per-model on/off bursts."""

    models: list[str] = param(default_factory=lambda: ["Llama-3-8B"], doc="model names (hardware catalog)")
    zipf_a: float = param(1.0, ge=0, doc="popularity skew: model k gets weight (k+1)^-a")
    weights: list[float] | None = param(None, doc="explicit popularity weights (override zipf_a)")
    burst_factor: float = param(1.0, ge=1, doc="a model's weight is multiplied by this in a burst (1: none)")
    on_mean_s: float = param(30.0, gt=0, doc="mean burst length, seconds")
    off_mean_s: float = param(300.0, gt=0, doc="mean time between a model's bursts, seconds")
    overwrite: bool = param(True, doc="replace a model the trace already names")

    def validate(self) -> None:
        if not self.models:
            raise ConfigError("at least one model is needed", "models")
        _check_weights(self.weights, len(self.models))


@TRANSFORMS.register("assign_models")
class AssignModels(Transform):
    """Sets ``model``: drawn by popularity, each model's weight raised while it bursts."""

    Params = AssignModelsParams

    def apply(self, stream: Iterator[Request], rng: np.random.Generator) -> Iterator[Request]:
        p = self.params
        n = len(p.models)
        base = np.asarray(p.weights if p.weights is not None
                          else [(k + 1.0) ** -p.zipf_a for k in range(n)], dtype=np.float64)
        bursty = p.burst_factor > 1.0
        on = np.zeros(n, dtype=bool)
        switch_at = rng.exponential(p.off_mean_s, size=n) if bursty else None
        for req in stream:
            if req.model is not None and not p.overwrite:
                yield req
                continue
            w = base
            if bursty:
                t = req.arrival_s
                for k in np.flatnonzero(switch_at <= t):
                    while switch_at[k] <= t:
                        on[k] = not on[k]
                        switch_at[k] += rng.exponential(p.on_mean_s if on[k] else p.off_mean_s)
                w = np.where(on, base * p.burst_factor, base)
            c = np.cumsum(w)
            k = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
            req.model = p.models[min(k, n - 1)]
            self.counts["num_model_assigned"] += 1
            yield req
