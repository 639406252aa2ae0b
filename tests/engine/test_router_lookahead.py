"""Routers that know their picks ahead (``RouterBase.min_requests_before``) bound the decode
stretches of several entry replicas (``Cluster.arrival_bound_s``, sim/engine/fast_path.py).

Round robin tells how many requests come before its cursor reaches a replica; the cluster
bounds that replica's stretch by the arrival time of the request that many places ahead in the
stream. Checked: every bound given is a true lower bound on the next request the replica
actually gets (also when requests are rejected before routing, which leaves the cursor), and a
run with the bounds equals, to the bit, the same run with them disabled and a stepped run.
"""

from __future__ import annotations

import copy

import pytest

from sim.engine.replica import Replica
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster, unbounded


def _config(num_replicas: int = 3, fast_forward: bool = True, router: str = "round_robin") -> dict:
    lengths = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}
    workload = {"name": "synthetic", "num_requests": 400, "rate_rps": 1.5, "lengths": lengths}
    pool = {"name": "main", "num_replicas": num_replicas,
            "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": "vllm",
            "kv": {"name": "paged", "num_blocks": 400}}  # 6,400 tokens: some requests never fit (rejected)
    return {"seed": 5, "workload": workload, "cluster": {"router": router, "pools": [pool]},
            "output": {"record_token_times": True},
            "engine": {"progress": False, "fast_forward": fast_forward}}


def _spy(log: list):
    """Log every bound a replica is given and every request it is given, in event order."""
    def before_run(cluster) -> None:
        for rep in cluster.replicas:
            bound = rep.arrival_bound

            def logged(rep=rep, bound=bound):
                b = bound()
                held = cluster._held
                log.append(("bound", rep.id, cluster.env.now, b, held.arrival_s if held is not None else None))
                return b
            rep.arrival_bound = logged
    return before_run


def test_round_robin_bound_is_a_lower_bound_and_changes_nothing(monkeypatch):
    log: list = []
    enqueue = Replica.enqueue

    def logged_enqueue(self, req, reason=None):
        log.append(("enqueue", self.id, self.env.now))
        return enqueue(self, req, reason)

    monkeypatch.setattr(Replica, "enqueue", logged_enqueue)
    bounded = run_cluster(copy.deepcopy(_config()), before_run=_spy(log))
    bounds = [e for e in log if e[0] == "bound"]
    assert bounds and all(e[3] is not None for e in bounds if e[4] is not None)
    # most bounds look past the next arrival (it goes to another replica)
    assert sum(1 for e in bounds if e[4] is not None and e[3] > e[4]) > len(bounds) / 2
    checked = 0
    for i, entry in enumerate(log):
        if entry[0] != "bound" or entry[3] is None:
            continue
        nxt = next((e for e in log[i + 1:] if e[0] == "enqueue" and e[1] == entry[1]), None)
        if nxt is not None:
            assert nxt[2] >= entry[3], (entry, nxt)
            checked += 1
    assert checked > 100
    frame = bounded.recorder.requests_frame()
    assert (frame["state"] == "rejected").any() and (frame["state"] == "finished").sum() > 300
    monkeypatch.setattr(Replica, "enqueue", enqueue)
    whole = run_cluster(copy.deepcopy(_config()), before_run=unbounded)
    stepped = run_cluster(copy.deepcopy(_config(fast_forward=False)))
    assert_same_run(bounded, whole)
    assert_same_run(bounded, stepped)
    assert next(bounded.env._eid) < next(whole.env._eid)  # fewer events: stretches end where cut


@pytest.mark.parametrize("router", ["least_outstanding", "random"])
def test_routers_that_cannot_tell_give_no_bound(router):
    log: list = []
    run_cluster(_config(router=router), before_run=_spy(log))
    assert log and all(e[3] is None for e in log)


def test_truncated_run_counts_peeked_requests():
    config = _config()
    config["engine"]["max_time_s"] = 60.0
    bounded = run_cluster(copy.deepcopy(config))
    whole = run_cluster(copy.deepcopy(config), before_run=unbounded)
    assert bounded.truncated and bounded.num_not_arrived == whole.num_not_arrived > 0
    assert bounded.num_arrived + bounded.num_not_arrived == 400
    assert_same_run(bounded, whole)
