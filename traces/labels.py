"""Transforms that label requests: tenants (``assign_clients``), applications (``assign_apps``),
SLO classes (``slo_classes``) and priorities (``assign_priorities``).

Registered in ``traces.transforms.TRANSFORMS`` like every transform (``traces/transforms.py`` says how
they compose); kept apart so that a run imports the transforms it names only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.errors import ConfigError
from sim.schema import param
from traces.transforms import TRANSFORMS, ChunkedChoice, Stream, Transform, _check_weights


@dataclass
class AssignClientsParams:
    """Label requests with one of ``num_clients`` tenants (for fairness experiments)."""

    num_clients: int = param(4, ge=1, doc="number of tenants")
    zipf_a: float | None = param(None, gt=0, doc="skew: tenant k gets weight k^-a (null: equal shares)")
    weights: list[float] | None = param(None, doc="explicit tenant weights (overrides zipf_a)")
    prefix: str = param("client", doc="names are prefix + index: client0, client1, ...")
    by: Literal["random", "session"] = param("random", doc="session: all turns of a session share a tenant")
    overwrite: bool = param(True, doc="replace a client the trace already set")
    rate_dist: Literal["none", "lognormal", "exponential", "pareto"] = param(
        "none", doc="per-client rates drawn from this distribution (overridden by weights / zipf_a)")
    rate_sigma: float = param(1.0, gt=0, doc="lognormal sigma, or pareto shape, of rate_dist")
    heavy_factor: float | None = param(None, gt=0, doc="heavy hitter: client0 gets this multiple of one other's rate")

    def validate(self) -> None:
        _check_weights(self.weights, self.num_clients)


@TRANSFORMS.register("assign_clients")
class AssignClients(Transform):
    """Sets ``client`` at random (weighted) or by session id."""

    Params = AssignClientsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        weights = p.weights
        if weights is None and not p.zipf_a and p.rate_dist != "none":
            weights = client_rates(rng, p.num_clients, p.rate_dist, p.rate_sigma)
        if weights is None:
            weights = [1.0 / (k + 1) ** p.zipf_a if p.zipf_a else 1.0 for k in range(p.num_clients)]
        if p.heavy_factor is not None and p.num_clients > 1:
            weights = list(weights)
            weights[0] = p.heavy_factor * sum(weights[1:]) / (p.num_clients - 1)
        pick = ChunkedChoice(rng, weights)
        names = [f"{p.prefix}{k}" for k in range(p.num_clients)]
        by_session: dict[int, str] = {}
        for req in stream:
            if req.client is None or p.overwrite:
                if p.by == "session" and req.session is not None:
                    name = by_session.get(req.session)
                    if name is None:
                        name = by_session[req.session] = names[pick()]
                    req.client = name
                else:
                    req.client = names[pick()]
            yield req


def client_rates(rng: np.random.Generator, n: int, dist: str, sigma: float) -> list[float]:
    """``n`` per-client rate weights: lognormal(0, sigma), exponential(1) or pareto(shape sigma) + 1."""
    if dist == "lognormal":
        w = rng.lognormal(0.0, sigma, n)
    elif dist == "exponential":
        w = rng.exponential(1.0, n)
    else:
        w = rng.pareto(sigma, n) + 1.0
    return [float(x) for x in w]


@dataclass
class AssignAppsParams:
    """Label requests with an application name drawn by weight."""

    apps: dict[str, float] = param(default_factory=lambda: {"chat": 1.0}, doc="app name -> weight")
    by: Literal["random", "client"] = param("random", doc="client: each client uses one app (drawn once)")
    length_scale: dict[str, list[float]] = param(
        default_factory=dict, doc="app -> [input, output] multipliers: apps with their own typical lengths")

    def validate(self) -> None:
        _check_weights(list(self.apps.values()), len(self.apps), "apps")
        for app, pair in self.length_scale.items():
            if app not in self.apps or len(pair) != 2 or not all(x > 0 for x in pair):
                raise ConfigError(f"needs an app of 'apps' and [input, output] > 0, got {pair}", f"length_scale.{app}")


@TRANSFORMS.register("assign_apps")
class AssignApps(Transform):
    """Sets ``app`` at random with the given weights."""

    Params = AssignAppsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        names = list(p.apps)
        pick = ChunkedChoice(rng, list(p.apps.values()))
        by_client: dict[str | None, str] = {}
        for req in stream:
            if p.by == "client":
                app = by_client.get(req.client)
                if app is None:
                    app = by_client[req.client] = names[pick()]
                req.app = app
            else:
                req.app = names[pick()]
            scale = p.length_scale.get(req.app)
            if scale is not None:
                req.input_tokens = max(1, round(req.input_tokens * scale[0]))
                req.output_tokens = max(1, round(req.output_tokens * scale[1]))
            yield req


@dataclass
class SLOClass:
    """One SLO class: its share and its per-request objectives."""

    name: str = param(doc="class name (set as slo_class)")
    weight: float = param(1.0, ge=0, doc="share of requests (by: random)")
    ttft_s: float | None = param(None, gt=0, doc="time-to-first-token SLO")
    tpot_s: float | None = param(None, gt=0, doc="time-per-output-token SLO")
    e2e_s: float | None = param(None, gt=0, doc="deadline_s = arrival_s + e2e_s")
    priority: int | None = param(None, doc="priority given to the class's requests")


@dataclass
class SLOClassesParams:
    """Split requests into SLO classes, at random by weight or by their app."""

    classes: list[SLOClass] = param(default_factory=list, doc="the classes")
    by: Literal["random", "app"] = param("random", doc="app: a request's class is the one named like its app")
    default: str | None = param(None, doc="by app: class for apps with no class of their name")

    def validate(self) -> None:
        if not self.classes:
            raise ConfigError("at least one class is needed", "classes")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ConfigError("class names must be unique", "classes")
        _check_weights([c.weight for c in self.classes], len(self.classes), "classes")
        if self.default is not None and self.default not in names:
            raise ConfigError(f"{self.default!r} is not a class name", "default")


@TRANSFORMS.register("slo_classes")
class SLOClasses(Transform):
    """Sets ``slo_class``, ``ttft_slo_s``, ``tpot_slo_s``, ``deadline_s`` and ``priority``."""

    Params = SLOClassesParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        by_name = {c.name: c for c in p.classes}
        pick = ChunkedChoice(rng, [c.weight for c in p.classes])
        for req in stream:
            if p.by == "app":
                cls = by_name.get(req.app) or by_name.get(p.default)
                if cls is None:
                    self.counts["num_without_slo_class"] += 1
                    yield req
                    continue
            else:
                cls = p.classes[pick()]
            req.slo_class = cls.name
            req.ttft_slo_s = cls.ttft_s
            req.tpot_slo_s = cls.tpot_s
            if cls.e2e_s is not None:
                req.deadline_s = req.arrival_s + cls.e2e_s
            if cls.priority is not None:
                req.priority = cls.priority
            yield req


@dataclass
class AssignPrioritiesParams:
    """Give each request a priority level drawn by weight (lower = more urgent, by convention)."""

    levels: list[int] = param(default_factory=lambda: [0, 1], doc="priority values")
    weights: list[float] | None = param(None, doc="share of each level (null: equal)")

    def validate(self) -> None:
        if not self.levels:
            raise ConfigError("at least one level is needed", "levels")
        _check_weights(self.weights, len(self.levels))


@TRANSFORMS.register("assign_priorities")
class AssignPriorities(Transform):
    """Sets ``priority`` at random with the given weights."""

    Params = AssignPrioritiesParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        pick = ChunkedChoice(rng, p.weights or [1.0] * len(p.levels))
        for req in stream:
            req.priority = p.levels[pick()]
            yield req
