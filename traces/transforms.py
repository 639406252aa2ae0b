"""Request-stream transforms, composable in YAML as a ``transforms:`` list.

Each transform is registered in ``TRANSFORMS`` and maps a stream of requests (in arrival
order) to another stream, lazily, so traces of any size stream through::

    transforms:
      - {name: window, start_s: 600, duration_s: 300}
      - {name: rate_scale, factor: 2.0}
      - {name: clip_lengths, max_context_tokens: 8192}
      - {name: assign_clients, num_clients: 8, zipf_a: 1.2}

They run in list order; ids are renumbered 0..N-1 afterwards by the workload. ``counts``
holds what a transform did (``num_clipped`` ...) for the workload's ``describe()``.
Random choices use the generator handed to ``apply`` (one per transform per run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.config import PolicySpec
from sim.engine.request import Request
from sim.errors import ConfigError
from sim.registry import Registry
from sim.schema import param

TRANSFORMS = Registry("transform")
Stream = Iterator[Request]


class Transform:
    """Base class: ``apply(stream, rng)`` yields the transformed stream; ``counts`` reports."""

    def __init__(self, params: object):
        self.params = params
        self.counts: Counter = Counter()

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        raise NotImplementedError


class ChunkedChoice:
    """Weighted random indices drawn a chunk at a time (fast per-request choices)."""

    def __init__(self, rng: np.random.Generator, weights: list[float] | np.ndarray, chunk: int = 4096):
        w = np.asarray(weights, dtype=np.float64)
        self.rng, self.p, self.chunk = rng, w / w.sum(), chunk
        self._buf: list[int] = []

    def __call__(self) -> int:
        if not self._buf:
            self._buf = self.rng.choice(len(self.p), size=self.chunk, p=self.p).tolist()[::-1]
        return self._buf.pop()


def _check_weights(weights: list[float] | None, n: int, key: str = "weights") -> None:
    if weights is None:
        return
    if len(weights) != n:
        raise ConfigError(f"needs {n} entries, got {len(weights)}", key)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("weights must be >= 0 with a positive sum", key)


# ---------------------------------------------------------------------------- time
@dataclass
class WindowParams:
    """Keep the requests arriving in [start_s, start_s + duration_s)."""

    start_s: float = param(0.0, ge=0, doc="window start, seconds on the trace clock")
    duration_s: float | None = param(None, gt=0, doc="window length (null: to the end)")
    rebase: bool = param(True, doc="shift arrivals so the window starts at 0")


@TRANSFORMS.register("window")
class Window(Transform):
    """A time slice of the stream (stops reading the file once past the end)."""

    Params = WindowParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        end = None if p.duration_s is None else p.start_s + p.duration_s
        shift = p.start_s if p.rebase else 0.0
        for req in stream:
            if req.arrival_s < p.start_s:
                self.counts["num_before_window"] += 1
                continue
            if end is not None and req.arrival_s >= end:
                return
            req.arrival_s -= shift
            if req.deadline_s is not None:
                req.deadline_s -= shift
            yield req


@dataclass
class RateScaleParams:
    """Multiply the arrival rate: inter-arrival times are divided by ``factor``."""

    factor: float = param(1.0, gt=0, doc="> 1 compresses time (more load), < 1 stretches it")


@TRANSFORMS.register("rate_scale")
class RateScale(Transform):
    """Compress or stretch the arrival clock (deadlines move with it)."""

    Params = RateScaleParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        f = self.params.factor
        for req in stream:
            req.arrival_s /= f
            if req.deadline_s is not None:
                req.deadline_s /= f
            yield req


# ---------------------------------------------------------------------------- count
@dataclass
class SubsampleParams:
    """Keep each request independently with probability ``fraction``."""

    fraction: float = param(0.5, gt=0, le=1, doc="share of requests kept")


@TRANSFORMS.register("subsample")
class Subsample(Transform):
    """Bernoulli thinning: lowers the rate, keeps the burst shape."""

    Params = SubsampleParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        keep = ChunkedChoice(rng, [1 - self.params.fraction, self.params.fraction])
        for req in stream:
            if keep():
                yield req
            else:
                self.counts["num_subsampled_out"] += 1


@dataclass
class MaxRequestsParams:
    """Stop after ``count`` requests."""

    count: int = param(1000, ge=1, doc="requests kept")


@TRANSFORMS.register("max_requests")
class MaxRequests(Transform):
    """Truncate the stream (stops reading the file)."""

    Params = MaxRequestsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        n = self.params.count
        if n <= 0:
            return
        for i, req in enumerate(stream, start=1):
            yield req
            if i >= n:
                return


# ---------------------------------------------------------------------------- lengths
@dataclass
class ClipLengthsParams:
    """Fit requests into a model's context (prompt truncated first, by default)."""

    max_context_tokens: int | None = param(None, ge=2, doc="limit on input + output tokens")
    max_input_tokens: int | None = param(None, ge=1, doc="limit on the prompt")
    max_output_tokens: int | None = param(None, ge=1, doc="limit on the answer")
    shorten: Literal["input", "output"] = param("input", doc="over the context: truncate this one first")
    drop: bool = param(False, doc="drop over-long requests instead of clipping them")

    def validate(self) -> None:
        if self.max_context_tokens is None and self.max_input_tokens is None and self.max_output_tokens is None:
            raise ConfigError("set at least one of max_context_tokens, max_input_tokens, max_output_tokens")


@TRANSFORMS.register("clip_lengths")
class ClipLengths(Transform):
    """Clip (or drop) requests longer than the limits; counts ``num_clipped``/``num_dropped_long``."""

    Params = ClipLengthsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        self.counts["num_dropped_long" if p.drop else "num_clipped"] = 0
        for req in stream:
            n_in, n_out = req.input_tokens, req.output_tokens
            if p.max_input_tokens is not None:
                n_in = min(n_in, p.max_input_tokens)
            if p.max_output_tokens is not None:
                n_out = min(n_out, p.max_output_tokens)
            limit = p.max_context_tokens
            if limit is not None and n_in + n_out > limit:
                if p.shorten == "input":  # truncate the prompt, keep the answer if it fits
                    n_in = max(1, limit - n_out)
                    n_out = min(n_out, limit - n_in)
                else:
                    n_out = max(1, limit - n_in)
                    n_in = min(n_in, limit - n_out)
            if (n_in, n_out) != (req.input_tokens, req.output_tokens):
                if p.drop:
                    self.counts["num_dropped_long"] += 1
                    continue
                self.counts["num_clipped"] += 1
                req.input_tokens, req.output_tokens = n_in, n_out
            yield req


# ---------------------------------------------------------------------------- labels
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


class TransformSpec(PolicySpec):
    """``{name: <transform>, ...params}`` in YAML."""

    registry = TRANSFORMS


class Pipeline:
    """A list of transforms applied in order, with their counts merged for ``describe()``."""

    def __init__(self, specs: list[TransformSpec]):
        self.transforms: list[Transform] = [spec.build() for spec in specs]

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        """The stream through every transform; each gets its own child generator."""
        children = rng.spawn(len(self.transforms)) if self.transforms else []
        for transform, child in zip(self.transforms, children, strict=True):
            transform.counts.clear()
            stream = transform.apply(stream, child)
        return stream

    def counts(self) -> dict[str, int]:
        """Every transform's counts, summed by key."""
        total: Counter = Counter()
        for transform in self.transforms:
            total.update(transform.counts)
        return dict(total)


# ---------------------------------------------------------------------------- multi-tenant load
@dataclass
class HeavyHitterParams:
    """Add a heavy client on top of the trace: ``rate_multiple`` x one client's rate, or bursts."""

    client: str = param("heavy", doc="name of the added client")
    rate_multiple: float = param(4.0, gt=0, doc="its rate as a multiple of one of num_other_clients' rate")
    num_other_clients: int = param(8, ge=1, doc="clients sharing the trace's own rate")
    burst_on_s: float | None = param(None, gt=0, doc="bursting: it sends only during on-periods of this length")
    burst_off_s: float = param(0.0, ge=0, doc="bursting: silent periods between on-periods")
    start_s: float = param(0.0, ge=0, doc="it starts sending at this time")


@TRANSFORMS.register("heavy_hitter")
class HeavyHitter(Transform):
    """Interleaves a heavy client's requests with the trace (which is left as it is).

    Its arrivals are Poisson at rate_multiple x (the trace's rate / num_other_clients) while it
    sends: each trace request spawns Poisson(rate_multiple / num_other_clients) copies (its
    lengths, the heavy client's name) at uniform times since the previous arrival, so the
    added load follows the trace's own rate. With bursts the rate during on-periods is raised
    so the mean stays the same. Counts ``num_heavy_hitter``."""

    Params = HeavyHitterParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        mean = p.rate_multiple / p.num_other_clients
        period = None
        if p.burst_on_s is not None:
            period = p.burst_on_s + p.burst_off_s
            mean *= period / p.burst_on_s
        self.counts["num_heavy_hitter"] = 0
        prev = None
        for req in stream:
            t = req.arrival_s
            lo = t if prev is None else prev
            prev = t
            k = int(rng.poisson(mean))
            if k:
                times = np.sort(rng.uniform(lo, t, k)) if t > lo else np.full(k, t)
                for at_s in times.tolist():
                    if at_s < p.start_s or (period is not None and (at_s - p.start_s) % period >= p.burst_on_s):
                        continue
                    self.counts["num_heavy_hitter"] += 1
                    yield Request(req.id, at_s, req.input_tokens, req.output_tokens, client=p.client,
                                  app=req.app)
            yield req


@dataclass
class GroupInteractionsParams:
    """Group each client's consecutive requests into multi-call interactions (sets ``session``)."""

    calls: int = param(3, ge=1, doc="calls per interaction (the last one of a client may have fewer)")
    max_gap_s: float | None = param(None, gt=0, doc="a longer gap between a client's calls starts a new interaction")


@TRANSFORMS.register("group_interactions")
class GroupInteractions(Transform):
    """Sets ``session`` so that every ``calls`` consecutive requests of a client form one
    interaction (open loop: the calls keep the trace's arrival times). Counts ``num_interactions``."""

    Params = GroupInteractionsParams

    def apply(self, stream: Stream, rng: np.random.Generator) -> Stream:
        p = self.params
        current: dict[str | None, list] = {}  # client -> [session id, calls so far, last arrival]
        self.counts["num_interactions"] = 0
        for req in stream:
            cur = current.get(req.client)
            if cur is None or cur[1] >= p.calls or (p.max_gap_s is not None and req.arrival_s - cur[2] > p.max_gap_s):
                cur = current[req.client] = [self.counts["num_interactions"], 0, req.arrival_s]
                self.counts["num_interactions"] += 1
            req.session = cur[0]
            cur[1] += 1
            cur[2] = req.arrival_s
            yield req
