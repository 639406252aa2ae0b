"""Applying controller actions, and the table of every action a run's controllers asked for.

``apply_actions(cluster, actions, controller)`` carries out, in order::

    AddReplica(pool)                  cluster.add_replica(pool)         -> new replica id
    DrainReplica(replica)             cluster.drain_replica(replica)
    SetKnob(target, name, value)      target 'router' | 'handoff' | a pool (its replicas' schedulers):
                                      a fresh copy of its parameter block with ``name = value``,
                                      validated like the config (type, bounds); the config itself
                                      is never changed; replicas added later to a pool get it too
    Migrate(request, dst, live)       cluster.migrate(...) (the transfer service); without one,
                                      a ServesimError: migration needs the transfer service

An action that cannot apply (unknown pool or replica, a removed or already draining replica,
the last active replica of a pool, an unknown or mistyped knob, an unknown action) raises
``ActionError`` inside; it is counted, recorded with ``applied = False`` and the reason,
and ignored. Every action lands in ``ActionLog``, one row each: ``time_s``, ``controller``,
``kind``, ``target``, ``detail``, ``applied`` (``Result.actions``, actions.parquet).

A knob is a policy's parameter field: it takes effect where the policy reads its params at
decision time (a value a policy copied into its own state at build time keeps its old value).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where the frame is built, after the run
    import pandas as pd

from sim.errors import ConfigError, ServesimError

ACTION_COLUMNS = ("time_s", "controller", "kind", "target", "detail", "applied")


class ActionError(ServesimError):
    """A controller action that cannot be applied now (it is ignored and counted)."""


class ActionLog:
    """The actions of a run, applied or not, as flat rows."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.num_applied = 0
        self.num_invalid = 0
        self.invalid_by_kind: Counter = Counter()

    def record(self, time_s: float, controller: str, kind: str, target: str, detail: str, applied: bool) -> None:
        """Append one row."""
        self.rows.append((time_s, controller, kind, target, detail, applied))
        if applied:
            self.num_applied += 1
        else:
            self.num_invalid += 1
            self.invalid_by_kind[kind] += 1

    def frame(self) -> pd.DataFrame:
        """One row per action, in the order they were asked for (typed columns even when empty)."""
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=list(ACTION_COLUMNS))
        return df.astype({"time_s": "float64", "controller": "object", "kind": "object", "target": "object",
                          "detail": "object", "applied": "bool"})


def controller_name(controller: Any) -> str:
    """The name a controller's rows carry: its registered name (or class name, or the string given)."""
    if controller is None:
        return ""
    if isinstance(controller, str):
        return controller
    return getattr(type(controller), "registered_name", type(controller).__name__)


def apply_actions(cluster: Any, actions: Any, controller: Any = None) -> None:
    """Carry out ``actions`` on ``cluster`` in order, recording each in ``cluster.action_log``."""
    from sim.engine.seams import Action

    log, now, name = cluster.action_log, cluster.env.now, controller_name(controller)
    for action in actions:
        kind = getattr(action, "kind", type(action).__name__)
        try:
            if not isinstance(action, Action):
                raise ActionError(f"not a controller action: {action!r}")
            target, detail = _apply_one(cluster, action)
        except ActionError as exc:
            log.record(now, name, kind, _target_of(action), str(exc), False)
            continue
        log.record(now, name, kind, target, detail, True)


def _target_of(action: Any) -> str:
    for attr in ("pool", "replica", "target", "request_id"):
        if hasattr(action, attr):
            return str(getattr(action, attr))
    return ""


def _apply_one(cluster: Any, action: Any) -> tuple[str, str]:
    from sim.engine.seams import AddReplica, DrainReplica, Migrate, SetKnob, SetStreaming

    if isinstance(action, AddReplica):
        rid = cluster.add_replica(action.pool)
        rep = cluster.replica_by_id[rid]
        return action.pool, f"replica {rid}, serving at {rep.start_s + rep.cold_start.total_s:.3f} s"
    if isinstance(action, DrainReplica):
        cluster.drain_replica(action.replica)
        rep = cluster.replica_by_id[action.replica]
        return str(action.replica), "removed at once" if rep.lifecycle == "removed" else "draining"
    if isinstance(action, SetKnob):
        return action.target, set_knob(cluster, action.target, action.name, action.value)
    if isinstance(action, Migrate):
        migrate = getattr(cluster, "migrate", None)
        if migrate is None:
            raise ServesimError("a Migrate action needs the transfer service (Cluster.migrate), which this build "
                                "lacks")
        try:
            if action.recompute:
                migrate(action.request_id, action.dst_replica, live=False, recompute=True)
            else:
                migrate(action.request_id, action.dst_replica, live=action.live)
        except (KeyError, ValueError) as exc:
            raise ActionError(f"cannot migrate request {action.request_id}: {exc}") from None
        cluster.check_draining()
        how = "recompute" if action.recompute else "live" if action.live else "stop-copy"
        return str(action.request_id), f"to replica {action.dst_replica} ({how})"
    if isinstance(action, SetStreaming):
        return str(action.replica), set_streaming(cluster, action)
    raise ActionError(f"unknown action {type(action).__name__}")


def set_streaming(cluster: Any, action: Any) -> str:
    """Apply a SetStreaming action to one weight-streaming replica."""
    rep = cluster.live_replica(action.replica)
    hub = getattr(cluster, "models", None)
    if hub is None or getattr(rep, "models", None) is None or rep.step_hook is None:
        raise ActionError(f"replica {action.replica} does not stream weights (serving.stream)")
    if not 0.0 <= action.rho <= 1.0:
        raise ActionError(f"rho {action.rho!r} is outside [0, 1]")
    hub.set_rho(rep, float(action.rho))
    detail = f"rho = {rep.models.rho_target:.3f}"
    if action.chunk_tokens is not None:
        params = rep.scheduler.params
        if params is None or not hasattr(params, "max_num_batched_tokens") or action.chunk_tokens < 1:
            raise ActionError(f"replica {action.replica}: cannot set a chunk of {action.chunk_tokens!r} tokens")
        if params.max_num_batched_tokens != action.chunk_tokens:
            rep.scheduler.params = dataclasses.replace(params, max_num_batched_tokens=int(action.chunk_tokens))
        detail += f", chunk = {action.chunk_tokens}"
    return detail


def _knob_policies(cluster: Any, target: str) -> list[Any]:
    if target == "router":
        return [cluster.router]
    if target == "handoff":
        if cluster.handoff is None:
            raise ActionError("this cluster has no hand-off policy")
        return [cluster.handoff]
    pool = cluster.pool_named(target)  # ActionError naming the pools
    return [r.scheduler for r in pool.replicas if r.lifecycle != "removed"]


def set_knob(cluster: Any, target: str, name: str, value: Any) -> str:
    """Give ``target``'s policies a copy of their parameter block with ``name = value``."""
    from sim import schema

    policies = _knob_policies(cluster, target)
    if not policies:
        raise ActionError(f"pool {target!r} has no replica")
    params = policies[0].params
    if params is None or not dataclasses.is_dataclass(params):
        raise ActionError(f"{target}: {type(policies[0]).__name__} has no parameter block")
    fields = [f.name for f in dataclasses.fields(params) if f.init]
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ActionError(f"{target}: {type(params).__name__} has no field {name!r}{hint}")
    try:
        new = schema.parse(type(params), {**schema.to_dict(params), name: value}, target)
    except ConfigError as exc:
        raise ActionError(str(exc)) from None
    for policy in policies:
        policy.params = new
    if target not in ("router", "handoff"):
        cluster.knob_params[target] = new
    return f"{name} = {value!r}"
