"""Llumnix's freeness bounds (read without bringing a stretch's KV up to now): the exact freeness
lies between them at every tick and arrival, mid-stretch ones included, and routing and
migration that decide from them where they can give the same run as reading every instance."""

from __future__ import annotations

import math

from policies.controllers import llumnix_migration
from policies.llumnix_freeness import freeness, freeness_bounds, queued_demand_blocks
from policies.routers import llumnix as llumnix_router
from sim import simulate
from sim.engine.views import ReplicaView
from sim.tools.bench import SCENARIOS


def _config(num_requests: int) -> dict:
    cfg = SCENARIOS["azure-conv-16-llumnix"]()
    cfg["workload"]["max_requests"] = num_requests
    # past saturation (the bench's near-saturation 1.55 migrates 13 times in the first 1,500
    # requests, this 755 times): the bounds are exercised by many pairings and migrations
    cfg["workload"]["rate_scale"] = 2.0
    return cfg


def test_exact_freeness_within_bounds(monkeypatch):
    seen = {"reads": 0, "open": 0}
    may_pair = llumnix_migration.LlumnixMigration._may_pair

    def checked(self, reps, *args):
        for r in reps:
            lo, hi = freeness_bounds(r, self.params.queued)
            f = freeness(r, self.params.queued)  # syncs: allowed at any moment
            assert lo <= f <= hi or (math.isinf(f) and lo == hi == f)
            seen["reads"] += 1
            seen["open"] += lo < hi
        return may_pair(self, reps, *args)

    monkeypatch.setattr(llumnix_migration.LlumnixMigration, "_may_pair", checked)
    simulate(_config(400))
    assert seen["reads"] > 1000 and seen["open"] > 10  # mid-stretch bounds were exercised


def test_bounds_leave_the_run_unchanged(monkeypatch):
    fast = simulate(_config(1500))

    def undecided(*args, **kwargs):
        return -math.inf, math.inf  # nothing decided by bounds: every instance read exactly

    demand_bounds = ReplicaView.kv_demand_bounds

    def wide(self, head_only):  # the bounds the router and the migration tick read themselves
        terms = demand_bounds(self, head_only)
        return None if terms is None else (*terms[:3], -10**9, 10**9)

    monkeypatch.setattr(llumnix_migration, "freeness_bounds", undecided)
    monkeypatch.setattr(llumnix_router, "freeness_bounds", undecided)
    monkeypatch.setattr(ReplicaView, "kv_demand_bounds", wide)
    slow = simulate(_config(1500))
    drop = ("wall_s",)
    assert {k: v for k, v in fast.summary.items() if k not in drop and v == v} == \
        {k: v for k, v in slow.summary.items() if k not in drop and v == v}
    assert fast.requests.equals(slow.requests)
    assert fast.summary["num_migrations"] > 0


def test_kv_demand_bounds_agree_with_the_views(monkeypatch):
    seen = {"reads": 0}
    may_pair = llumnix_migration.LlumnixMigration._may_pair

    def checked(self, reps, *args):
        for r in reps:
            for queued in ("head", "all"):
                terms = r.kv_demand_bounds(queued == "head")
                blocks, count = queued_demand_blocks(r, queued)
                if terms is None:
                    assert r.num_running == count == 0
                    continue
                assert terms[:3] == (r.num_running, count, blocks)
                assert terms[3:] == r.kv.used_blocks_bounds()
                seen["reads"] += 1
        return may_pair(self, reps, *args)

    monkeypatch.setattr(llumnix_migration.LlumnixMigration, "_may_pair", checked)
    simulate(_config(400))
    assert seen["reads"] > 1000


def test_kept_verdicts_match_the_bounds(monkeypatch):
    """An instance whose decode stretch's stamp still holds is not read at a tick: its kept source
    and destination verdicts must be those its bounds give then (every tick, every instance)."""
    seen = {"kept": 0, "src": 0}
    may_pair = llumnix_migration.LlumnixMigration._may_pair

    def checked(self, reps, now_s):
        thr = self.params.migrate_out_threshold
        for r in reps:
            cert = self._certs.get(r.id)
            if r.lifecycle != "active" or cert is None or not r.kv_stamp_holds(cert[0]):
                continue
            num_running, count, blocks, lo, hi = r.kv_demand_bounds(True)
            cap, batch = float(self._cap(r)), num_running + count
            is_src = bool(num_running) and (cap - float(hi + blocks)) / batch < thr
            assert (now_s > cert[1]) == is_src
            assert cert[2] == ((cap - float(lo + blocks)) / batch > thr)
            seen["kept"] += 1
            seen["src"] += is_src
        return may_pair(self, reps, now_s)

    monkeypatch.setattr(llumnix_migration.LlumnixMigration, "_may_pair", checked)
    simulate(_config(1500))
    assert seen["kept"] > 1000 and seen["src"] > 0


def test_kept_router_bounds_match_the_bounds(monkeypatch):
    """The router's kept freeness bounds of an instance are those its bounds give at each arrival."""
    seen = {"kept": 0}
    route = llumnix_router.LlumnixRouter.route

    def checked(self, req, replicas):
        for r in replicas:
            cert = self._certs.get(r.id)
            if r.lifecycle != "active" or cert is None or not r.kv_stamp_holds(cert[0], cert[1]):
                continue
            num_running, count, blocks, lo, hi = r.kv_demand_bounds(self.params.queued == "head")
            cap, batch = float(self._capacity[r.id]), num_running + count
            assert cert[2:] == ((cap - float(hi + blocks)) / batch, (cap - float(lo + blocks)) / batch)
            seen["kept"] += 1
        return route(self, req, replicas)

    monkeypatch.setattr(llumnix_router.LlumnixRouter, "route", checked)
    simulate(_config(1500))
    assert seen["kept"] > 1000


def test_ranked_instances_give_the_same_pairs(monkeypatch):
    """The tick reads F only of the instances it can pair (``_ranked``): the (source, destination)
    pairs in order are those from every instance's F."""
    seen = {"ticks": 0, "left_out": 0}
    ranked = llumnix_migration.LlumnixMigration._ranked

    def pairs(free, thr):
        srcs = sorted(((f, r.id) for f, r in free if f < thr and r.num_running))
        dsts = sorted(((-f, r.id) for f, r in free if f > thr and r.lifecycle == "active"))
        return list(zip(srcs, dsts, strict=False))

    def checked(self, reps):
        free = ranked(self, reps)
        every = [(freeness(r, self.params.queued), r) for r in reps]
        assert pairs(free, self.params.migrate_out_threshold) == pairs(every, self.params.migrate_out_threshold)
        seen["ticks"] += 1
        seen["left_out"] += len(reps) - len(free)
        return free

    monkeypatch.setattr(llumnix_migration.LlumnixMigration, "_ranked", checked)
    simulate(_config(1500))
    assert seen["ticks"] > 50 and seen["left_out"] > 100
