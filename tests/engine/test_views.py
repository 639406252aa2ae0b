"""Policies see views: the true output length is hidden, views are read-only, no policy module
reaches into the engine, and the counts views serve are exact."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from sim import simulate
from sim.engine.replica import Replica
from sim.engine.request import Request
from sim.engine.seams import BuildContext
from sim.engine.views import OracleError
from sim.registry import SCHEDULERS
from tests.conftest import make_config

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ENGINE_INTERNALS = {"sim.engine.replica", "sim.engine.cluster", "sim.engine.fast_path", "sim.engine.pausable"}


def test_request_view_hides_the_true_output_length():
    req = Request(3, 0.0, 100, 42)
    view = req.view
    assert view.input_tokens == 100 and view.num_output_tokens == 0
    with pytest.raises(OracleError, match="oracle: true"):
        _ = view.output_tokens
    with pytest.raises(AttributeError):
        view.input_tokens = 5
    with pytest.raises(AttributeError):
        _ = view.spec_acceptance


def test_only_an_oracle_context_reads_the_true_length():
    req = Request(0, 0.0, 10, 7)
    with pytest.raises(OracleError, match="oracle"):
        BuildContext(rng=np.random.default_rng(0), where="cluster.pools[0].scheduler").output_tokens(req.view)
    assert BuildContext(rng=np.random.default_rng(0), oracle=True).output_tokens(req.view) == 7


def test_orca_reservations_that_read_lengths_need_the_oracle():
    from sim.errors import ConfigError

    with pytest.raises(ConfigError, match="oracle: true"):
        simulate(make_config(scheduler={"name": "orca", "reservation": "pow2"}))
    s = simulate(make_config(scheduler={"name": "orca", "reservation": "pow2", "oracle": True})).summary
    assert s["num_completed"] == s["num_requests"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("path", sorted(POLICIES.rglob("*.py")), ids=lambda p: str(p.relative_to(POLICIES)))
def test_no_policy_imports_the_engine_or_unwraps_a_view(path):
    assert not (_imports(path) & ENGINE_INTERNALS), "policies see views, not replicas or the cluster"
    source = path.read_text()
    for attr in ("._rep", "._r.", "._c.", ".waiting.append", ".running.append", ".running.pop",
                 ".waiting.popleft", ".running.remove", ".paused = "):
        assert attr not in source, f"{path.name} touches engine state through {attr!r}"


class _CountingReplica(Replica):
    """A replica that checks its incremental counters against a recount after every step."""

    def _account(self, plan, step_s):
        super()._account(plan, step_s)
        assert self.num_pending_prefill_tokens == self.pending_prefill_tokens_recount()
        self.kv.check_invariants()


@pytest.mark.parametrize("scheduler", SCHEDULERS.names())
@pytest.mark.parametrize("kv", [{}, {"preemption_mode": "swap"}])
def test_pending_prefill_tokens_kept_incrementally(monkeypatch, scheduler, kv):
    import sim.engine.cluster as cluster_mod

    if kv.get("preemption_mode") == "swap" and not SCHEDULERS.get(scheduler).supports_swap:
        pytest.skip(f"{scheduler} preempts by recompute only")
    monkeypatch.setattr(cluster_mod, "Replica", _CountingReplica)
    workload = {"name": "synthetic", "num_requests": 250, "rate_rps": 150.0, "input_tokens": 32,
                "input_tokens_max": 900, "output_tokens": 10, "output_tokens_max": 200}
    cfg = make_config(scheduler=scheduler, router="least_pending_tokens", num_replicas=2, workload=workload,
                      num_blocks=300, kv=kv)
    s = simulate(cfg).summary
    assert s["num_completed"] + s["num_rejected"] == s["num_requests"]


def _protocol_methods(proto) -> list[str]:
    return [n for n, v in vars(proto).items() if not n.startswith("_") and callable(v)]


@pytest.mark.parametrize("kind", ["router", "scheduler", "kv", "speculator", "handoff", "controller"])
def test_every_registered_policy_implements_its_seam(kind):
    from sim.engine import seams
    from sim.registry import CONTROLLERS, HANDOFFS, KV_MANAGERS, ROUTERS, SPECULATORS

    registry, proto = {"router": (ROUTERS, seams.Router), "scheduler": (SCHEDULERS, seams.Scheduler),
                       "kv": (KV_MANAGERS, seams.KVManager), "speculator": (SPECULATORS, seams.Speculator),
                       "handoff": (HANDOFFS, seams.Handoff), "controller": (CONTROLLERS, seams.Controller)}[kind]
    assert registry.names(), f"no {kind} registered"
    for name in registry.names():
        cls = registry.get(name)
        missing = [m for m in _protocol_methods(proto) if not callable(getattr(cls, m, None))]
        assert not missing, f"{kind} {name!r} lacks {missing}"
