"""The incremental least-outstanding index (sim/engine/load_index.py) picks exactly what a full
scan picks: ``min(views, key=num_outstanding)``, the first of the fewest in list order, with
ties, with the list changed under it, and in a real run whose autoscaler adds and drains
replicas (every arrival checked against the scan)."""

from __future__ import annotations

import random

from policies.routers.basic import LeastOutstandingRouter
from sim.engine.load_index import EntryViews
from sim.tools.bench import autoscale_config
from tests.cluster_run import run_cluster


class _Rep:
    def __init__(self, n: int):
        self.num_outstanding = n
        self.load_index = None

    def change(self, delta: int) -> None:  # as Replica does at each enqueue / finish
        self.num_outstanding += delta
        if self.load_index is not None:
            self.load_index.moved(self)


class _View:
    __slots__ = ("_rep",)

    def __init__(self, rep: _Rep):
        self._rep = rep

    @property
    def num_outstanding(self) -> int:
        return self._rep.num_outstanding


def _scan(views):
    return min(views, key=lambda v: v.num_outstanding)


def test_index_matches_scan_under_random_changes_and_list_edits():
    rng = random.Random(7)
    reps = [_Rep(rng.randint(0, 3)) for _ in range(40)]
    views = EntryViews(_View(r) for r in reps[:16])
    picks = set()
    for step in range(20_000):
        live = [v._rep for v in views]
        op = rng.random()
        if op < 0.45:
            rng.choice(live).change(1)  # an arrival
        elif op < 0.9:
            r = rng.choice(live)
            if r.num_outstanding:
                r.change(-1)  # a finish
        elif op < 0.93:
            rng.choice(reps).change(rng.choice([1, -1, 5]) if rng.random() < 0.5 else 1)  # also off the list
        elif op < 0.95:
            views.append(_View(rng.choice(reps)))  # may repeat a replica already listed
        elif op < 0.97 and len(views) > 2:
            del views[rng.randrange(len(views))]
        elif op < 0.98:
            views[:] = [_View(r) for r in rng.sample(reps, rng.randint(1, len(reps)))]  # as refresh_entry does
        elif op < 0.99:
            views.reverse()
        pick = views.least_outstanding()
        assert pick is _scan(views), step
        picks.add(views.index(pick))
    assert len(picks) > 10  # ties broken by position all over the list, not one favourite


def test_released_index_stops_listening():
    reps = [_Rep(0), _Rep(0)]
    views = EntryViews([_View(reps[0]), _View(reps[1])])
    assert views.least_outstanding()._rep is reps[0]
    assert reps[0].load_index is not None
    views[:] = [_View(reps[1])]
    assert reps[0].load_index is None and reps[1].load_index is None  # rebuilt on the next pick
    reps[0].change(3)
    assert views.least_outstanding()._rep is reps[1]


def test_router_picks_as_a_scan_while_an_autoscaler_adds_and_drains(monkeypatch):
    monkeypatch.setattr(LeastOutstandingRouter, "index_from", 1)  # the index at every size (2..8 replicas)
    config = autoscale_config()
    arrival = config["workload"]["arrival"]
    arrival["durations_s"] = [30.0, 150.0, 200.0]
    rates = zip(arrival["rates_rps"], arrival["durations_s"], strict=True)
    config["workload"]["num_requests"] = int(sum(r * d for r, d in rates))
    seen = {"routed": 0, "sizes": set(), "indexed": 0}
    route = LeastOutstandingRouter.route

    def checked(self, req, replicas):
        pick = route(self, req, replicas)
        assert isinstance(replicas, EntryViews)
        assert pick is min(replicas, key=lambda v: v.num_outstanding)
        seen["routed"] += 1
        seen["sizes"].add(len(replicas))
        seen["indexed"] += replicas._index is not None
        return pick

    def wrap(cluster):
        cluster.router.route = checked.__get__(cluster.router)

    cluster = run_cluster(config, wrap)
    assert seen["routed"] == config["workload"]["num_requests"]
    assert len(seen["sizes"]) >= 3  # replicas were added and drained while it routed
    assert seen["indexed"] > seen["routed"] // 2  # the picks came from the index
    assert cluster.num_done == cluster.num_arrived
