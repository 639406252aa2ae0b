"""Every seam between the engine and its policies, in one place: protocols, the build
context, and the actions controllers return.

Every policy of every kind is built the same way, ``cls(params, ctx)``::

    BuildContext
      rng        its own numpy Generator (one SeedSequence child per policy instance)
      cluster    ClusterView (live)                 pool / cost_model / hardware: its pool's,
      shared     dict for cluster-wide state          None for cluster-wide policies
      predictor  output-length predictor (None until one is configured)
      oracle     whether its config says ``oracle: true``

and then sees only views (``sim.engine.views``). What each kind is asked::

    Router.route(request, replicas)          -> ReplicaView | None (None rejects)
    Scheduler.schedule(replica_ops)          -> StepPlan  (acts through replica_ops only)
    Speculator.propose(replica, requests)    -> k per decoding request (draft tokens)
    Handoff.on_prefilled(src, request)       -> True if the request leaves src
    Controller.act(cluster, now_s)           -> [Action]  (applied by the engine)
    Predictor.predict(request)               -> predicted output tokens (ctx.predictor)
    KVManager.allocate(req, new, lookahead)  -> blocks taken | None (no room): the facade

A request view's true output length is hidden; ``ctx.output_tokens(view)`` reads it when
the policy's parameter block has ``oracle: true`` and raises ``OracleError`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from sim.engine.views import ClusterView, OracleError, PoolView, ReplicaView, RequestView
from sim.errors import ConfigError

if TYPE_CHECKING:
    from sim.engine.ops import ReplicaOps
    from sim.engine.plan import StepPlan


@dataclass
class BuildContext:
    """What every policy is built with, besides its parameters."""

    rng: np.random.Generator
    cluster: ClusterView | None = None
    pool: PoolView | None = None
    cost_model: Any = None
    hardware: Any = None
    shared: dict[str, Any] = field(default_factory=dict)
    predictor: Any = None
    oracle: bool = False
    where: str = ""

    def output_tokens(self, req: RequestView) -> int:
        """The true output length of ``req``: only for policies configured with ``oracle: true``."""
        if not self.oracle:
            raise OracleError(
                f"{self.where or 'policy'}: reads the true output length of request {req.id}; "
                "set 'oracle: true' in its config to allow it")
        return req._r.output_tokens

    def require_predictor(self, who: str, hint: str = "", where: str = "cluster.predictor") -> Any:
        """The run's output-length predictor, or a one-line ConfigError saying ``who`` needs one."""
        if self.predictor is None:
            raise ConfigError(f"{who} needs an output-length predictor: set cluster.predictor{hint}", where)
        return self.predictor

    def shared_state(self, key: str, factory: Any) -> Any:
        """Cluster-wide state under ``key`` (made by ``factory()`` on first use), shared by every
        policy built for this run: e.g. a router and the schedulers it coordinates."""
        state = self.shared.get(key)
        if state is None:
            state = self.shared[key] = factory()
        return state


def is_oracle(params: Any) -> bool:
    """Whether a parameter block grants the oracle (``oracle: true``)."""
    return bool(getattr(params, "oracle", False))


# ---------------------------------------------------------------------------- protocols

@runtime_checkable
class Router(Protocol):
    """Chooses the replica for an arriving request.

    Optional (``RouterBase`` has the default): ``min_requests_before(replica, replicas) -> int``,
    a lower bound on how many further routed requests must come before ``route`` could pick
    ``replica`` from ``replicas`` (0: the next one could go there)."""

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None: ...


@runtime_checkable
class Scheduler(Protocol):
    """Forms one iteration's plan on its replica, acting only through ``ReplicaOps``."""

    fast_forward_safe: bool

    def schedule(self, rep: ReplicaOps) -> StepPlan: ...

    def wants_cut(self, rep: ReplicaView) -> bool: ...

    def may_resume(self, rep: ReplicaView) -> bool: ...

    def holds_back(self, rep: ReplicaView) -> bool: ...


@runtime_checkable
class KVManager(Protocol):
    """The KV facade a replica and its scheduler use (policies/kv/paged.py is the reference):
    questions, then ``allocate`` answering None for "no room", then releases."""

    block_size: int
    num_blocks: int
    num_used: int
    watermark_blocks: int
    max_tokens: int

    @property
    def num_available(self) -> int: ...

    def blocks_for(self, num_tokens: int) -> int: ...

    def blocks_needed(self, req: Any, num_new_tokens: int, lookahead: int = 0) -> int: ...

    def never_fits(self, req: Any, reserve_blocks: int = 0) -> bool: ...

    def covered_tokens(self, req: Any) -> int: ...

    def cached_prefix_tokens(self, req: Any) -> int: ...

    def allocate(self, req: Any, num_new_tokens: int, lookahead: int = 0, reserve_blocks: int = 0,
                 reserve_tokens: int = 0, match_prefix: bool = False, covered: int | None = None) -> int | None: ...

    def grow(self, req: Any, num_new_tokens: int, lookahead: int = 0) -> int | None:
        """``allocate(req, num_new_tokens, lookahead)`` for a running request (``ReplicaOps.grow``)."""
        ...

    def trim(self, req: Any, keep_tokens: int) -> int: ...

    def share(self, src: Any, dst: Any, num_tokens: int) -> int: ...

    def free(self, req: Any) -> None: ...

    def free_preempted(self, req: Any) -> None:
        """``free(req)`` for a recompute preemption (a manager may keep the blocks cached for it)."""
        ...

    def commit_prefix(self, req: Any) -> None: ...

    def detach(self, req: Any) -> Any: ...

    def free_detached(self, handle: Any) -> None: ...


@runtime_checkable
class Speculator(Protocol):
    """Proposes draft tokens per decoding request for the next iteration."""

    def propose(self, rep: ReplicaView, requests: Sequence[RequestView]) -> list[int]: ...

    def acceptance_rate(self, req: RequestView) -> float: ...

    def observe(self, req: RequestView, proposed: int, accepted: int) -> None: ...

    def draft_time_s(self, rep: ReplicaView, requests: Sequence[RequestView], ks: Sequence[int]) -> float: ...


@runtime_checkable
class Handoff(Protocol):
    """Decides where a prefilled request's KV goes (P/D disaggregation)."""

    def on_prefilled(self, src: ReplicaView, req: RequestView) -> bool: ...

    def on_request_done(self, replica: ReplicaView, req: RequestView) -> None: ...


@runtime_checkable
class Predictor(Protocol):
    """Predicts a request's output length for policies (``ctx.predictor``); told the truth at finish."""

    def predict(self, req: RequestView) -> int: ...

    def observe(self, req: RequestView, output_tokens: int) -> None: ...


@runtime_checkable
class Controller(Protocol):
    """Observes the cluster every ``period_s`` and returns actions for the engine to apply."""

    period_s: float

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]: ...


# ---------------------------------------------------------------------------- controller actions

@dataclass(frozen=True)
class Action:
    """Something a controller asks the engine to do."""

    kind: ClassVar[str] = "action"


@dataclass(frozen=True)
class Migrate(Action):
    """Move a live request to another replica (``live``: multi-stage pre-copy; else stop and copy;
    ``recompute``: no copy, its KV is dropped and recomputed at the destination)."""

    kind: ClassVar[str] = "migrate"
    request_id: int
    dst_replica: int
    live: bool = True
    recompute: bool = False


@dataclass(frozen=True)
class AddReplica(Action):
    """Start a new replica in ``pool`` (it serves after its cold start)."""

    kind: ClassVar[str] = "add_replica"
    pool: str


@dataclass(frozen=True)
class DrainReplica(Action):
    """Stop sending work to a replica; it leaves the cluster once empty."""

    kind: ClassVar[str] = "drain_replica"
    replica: int


@dataclass(frozen=True)
class SetKnob(Action):
    """Set a policy parameter at run time: ``target`` is 'router', 'handoff' or a pool name
    (its schedulers), ``name`` an attribute of that policy's parameter block."""

    kind: ClassVar[str] = "set_knob"
    target: str
    name: str
    value: Any


@dataclass(frozen=True)
class SetStreaming(Action):
    """Set a weight-streaming replica's rho (share of weight reads over the host link; clamped to
    what its HBM allows) and, if given, its scheduler's ``max_num_batched_tokens`` (the chunk)."""

    kind: ClassVar[str] = "set_streaming"
    replica: int
    rho: float
    chunk_tokens: int | None = None


# ---------------------------------------------------------------------------- bases

class PolicyBase:
    """Optional base for policies: keeps ``params`` and ``ctx``; ``example_config()`` gives the
    CI gate scenario (None: the kind's default scenario with this policy in it)."""

    Params: ClassVar[Any] = None

    def __init__(self, params: Any, ctx: BuildContext):
        self.params = params
        self.ctx = ctx

    @classmethod
    def example_config(cls) -> dict | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


class RouterBase(PolicyBase):
    """Base for routers: ``route(request, replicas) -> replica view or None``."""

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView | None:
        raise NotImplementedError

    def min_requests_before(self, replica: ReplicaView, replicas: Sequence[ReplicaView]) -> int:
        """A LOWER bound on how many further requests routed over ``replicas`` (as they are now,
        with this router's state as it is now) must come before ``route`` could pick ``replica``:
        0 (the default, for a router that cannot tell) says the next one could go there. Never
        more than the truth: the cluster bounds how far ahead a replica plans a decode stretch by
        the arrival time of that many requests ahead in the arrival stream (an early bound only
        costs a re-plan; results are exact either way: ``Cluster.arrival_bound_s``). The cluster
        asks only routers that override this, and only while nothing but this router places
        requests on ``replicas`` and they do not change (no controllers, hand-off or models)."""
        return 0


class ControllerBase(PolicyBase):
    """Base for controllers: every ``params.period_s`` seconds ``act`` returns actions."""

    @property
    def period_s(self) -> float:
        return float(self.params.period_s)

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        raise NotImplementedError

    @staticmethod
    def check_pool_names(names: Sequence[str], ctx: BuildContext) -> None:
        """A ConfigError naming ``<where>.pools[i]`` for a pool the cluster does not have."""
        known = [p.name for p in ctx.cluster.pools] if ctx.cluster is not None else []
        for i, name in enumerate(names):
            if known and name not in known:
                raise ConfigError(f"unknown pool {name!r} (pools: {', '.join(known)})", f"{ctx.where}.pools[{i}]")


__all__ = [
    "Action", "AddReplica", "BuildContext", "ClusterView", "Controller", "ControllerBase", "DrainReplica",
    "Handoff", "KVManager", "Migrate", "OracleError", "PolicyBase", "PoolView", "ReplicaView", "RequestView", "Router",
    "RouterBase", "Scheduler", "SetKnob", "SetStreaming", "Speculator", "is_oracle",
]
