"""Splitwise's reference-mode token-machine pick read through KV bounds: the machine (or None)
is the one the exhaustive pick gives, reading every machine's exact KV, ties included, and the
run is the same."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.routers.splitwise import SplitwiseRouter, SplitwiseRouterParams, SplitwiseState
from sim import simulate
from sim.engine.views import KVView
from sim.tools.bench import SCENARIOS


def exhaustive(router: SplitwiseRouter, replicas: list, need: int):
    """The pick as the router made it before the bounds: every machine's scheduled memory read
    exactly, the first of the least, None when the request would fill it."""
    mems = [r.kv.num_used_blocks * r.kv.block_size + router.state.reserved[r.id] for r in replicas]
    best_mem = min(mems)
    best = replicas[mems.index(best_mem)]
    return None if best_mem + need >= best.kv.max_tokens else best


@dataclass
class FakeKV:
    """A machine's KV as the router reads it: bounds, and the exact use (counting its reads)."""

    used: int
    lo: int
    hi: int
    block_size: int
    max_tokens: int
    reads: int = 0

    def used_blocks_bounds(self) -> tuple[int, int]:
        return self.lo, self.hi

    @property
    def num_used_blocks(self) -> int:
        self.reads += 1
        return self.used


@dataclass
class FakeMachine:
    id: int
    kv: FakeKV


def _router(reserved: dict[int, int]) -> SplitwiseRouter:
    router = SplitwiseRouter.__new__(SplitwiseRouter)  # the pick reads only its params and state
    router.params = SplitwiseRouterParams(mode="reference")
    router.state = SplitwiseState()
    router.state.reserved.update(reserved)
    return router


machine = st.tuples(
    st.integers(0, 40),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 30),
    st.sampled_from([1, 16]),
    st.integers(1, 1000),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(machine, min_size=1, max_size=7), st.integers(0, 300))
def test_pick_equals_the_exhaustive_pick(machines, need):
    # small ranges: ties between machines and bounds that touch are common
    reps, reserved = [], {}
    for i, (used, below, above, res, size, max_tokens) in enumerate(machines):
        reps.append(FakeMachine(10 + i, FakeKV(used, max(used - below, 0), used + above, size, max_tokens)))
        reserved[10 + i] = res
    got = _router(reserved)._best_token(reps, need)
    reads = sum(r.kv.reads for r in reps)
    for r in reps:
        r.kv.reads = 0
    assert got is exhaustive(_router(reserved), reps, need)
    assert reads <= sum(r.kv.lo < r.kv.hi for r in reps)  # exact reads only where bounds are open


def _config(num_requests: int) -> dict:
    cfg = SCENARIOS["splitwise-reference"]()
    cfg["workload"]["max_requests"] = num_requests
    return cfg


def test_pick_in_a_run_equals_the_exhaustive_pick(monkeypatch):
    seen = {"picks": 0, "open": 0}
    best_token = SplitwiseRouter._best_token

    def checked(self, replicas, need):
        seen["picks"] += 1
        seen["open"] += any(lo < hi for lo, hi in (r.kv.used_blocks_bounds() for r in replicas))
        got = best_token(self, replicas, need)
        assert got is exhaustive(self, replicas, need)  # reading exact KV is allowed at any moment
        return got

    monkeypatch.setattr(SplitwiseRouter, "_best_token", checked)
    simulate(_config(600))
    assert seen["picks"] >= 600 and seen["open"] > 100  # mid-stretch bounds were exercised


def test_bounds_leave_the_run_unchanged(monkeypatch):
    fast = simulate(_config(800))

    def wide(self):  # nothing decided by bounds: every machine read exactly
        return -(10**9), 10**9

    monkeypatch.setattr(KVView, "used_blocks_bounds", wide)
    slow = simulate(_config(800))
    drop = ("wall_s",)
    assert {k: v for k, v in fast.summary.items() if k not in drop and v == v} == {
        k: v for k, v in slow.summary.items() if k not in drop and v == v
    }
    assert fast.requests.equals(slow.requests)
