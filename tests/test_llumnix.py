"""Llumnix: freeness from virtual usage, migration pairing, live-migration downtime, autoscaling
with migrations out of drained replicas, and the trend against least outstanding."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from experiments.llumnix_azure import config as azure_config
from experiments.llumnix_azure import latency_row
from experiments.migration_downtime import downtime
from policies.llumnix_freeness import freeness, mean_freeness
from sim import simulate
from sim.tools.gates import scenario

# ---------------------------------------------------------------------------- freeness


class FakeKV:
    block_size = 16

    def __init__(self, num_blocks=1000, used=0, watermark=10):
        self.num_blocks, self.num_used_blocks, self.watermark_blocks = num_blocks, used, watermark

    def blocks_for(self, n):
        return -(-n // 16)


def req(context, priority=0):
    return SimpleNamespace(context_tokens=context, priority=priority)


def fake_rep(used=0, running=(), waiting=(), swapped=(), lifecycle="active"):
    running = list(running)
    return SimpleNamespace(kv=FakeKV(used=used), running=running, waiting=list(waiting), swapped=list(swapped),
                           num_running=len(running), lifecycle=lifecycle,
                           pending_prefill_tokens=sum(r.context_tokens for r in waiting), sync=lambda: None)


def test_freeness_counts_head_of_line_demand_and_batch():
    rep = fake_rep(used=500, running=[req(100)] * 4, waiting=[req(320), req(1600)])
    # head of line: (1000 - 10 - 500 - 20) / (4 + 1)
    assert freeness(rep, "head") == pytest.approx(470 / 5)
    # every queued request, from the prompt tokens still to compute: (990 - 500 - 120) / 6
    assert freeness(rep, "all") == pytest.approx(370 / 6)
    # swapped requests resume first: the head is the swapped one
    rep = fake_rep(used=500, running=[req(100)], waiting=[req(320)], swapped=[req(160)])
    assert freeness(rep, "head") == pytest.approx((990 - 500 - 10) / 2)


def test_freeness_of_empty_draining_and_priority_headroom():
    assert freeness(fake_rep()) == math.inf
    assert freeness(fake_rep(used=10, running=[req(100)], lifecycle="draining")) == -math.inf
    plain = fake_rep(used=200, running=[req(100, priority=1), req(100, priority=0)])
    assert freeness(plain) == pytest.approx(790 / 2)
    # a high-priority request (priority <= 0) on it: the instance counts the headroom more
    assert freeness(plain, headroom_blocks=400, high_priority_max=0) == pytest.approx(390 / 2)
    low = fake_rep(used=200, running=[req(100, priority=1)] * 2)
    assert freeness(low, headroom_blocks=400, high_priority_max=0) == pytest.approx(790 / 2)


def test_mean_freeness_pools_capacity_and_batch():
    reps = [fake_rep(used=900, running=[req(10)] * 9), fake_rep(used=100, running=[req(10)])]
    assert mean_freeness(reps) == pytest.approx((1980 - 1000) / 10)
    assert mean_freeness(reps, extra_capacity_blocks=990) == pytest.approx((2970 - 1000) / 10)
    assert mean_freeness(reps, drop_capacity_blocks=990) == pytest.approx((990 - 1000) / 10)
    assert mean_freeness([fake_rep()]) == math.inf


# ---------------------------------------------------------------------------- migration


def test_migration_controller_moves_requests_live_and_every_move_is_a_visit():
    res = simulate(scenario("controller", "llumnix_migration"))
    s = res.summary
    assert s["num_migrations"] > 20 and s["num_completed"] == s["num_requests"] == 500
    migrates = res.actions[res.actions["kind"] == "migrate"]
    assert migrates["applied"].all() and migrates["detail"].str.endswith("(live)").all()
    assert not s["migrations_refused_by_reason"]  # the controller leaves busy and full replicas out
    v = res.visits
    assert (v["left"] == "migrated").sum() == (v["reason"] == "migrated").sum() == s["num_migrations"]
    assert res.requests["num_migrations"].sum() == s["num_migrations"]
    assert s["migration_stop_max_s"] < 1e-3  # last stages of <= 16 blocks over 50 GB/s


def test_one_migration_in_or_out_of_a_replica_at_a_time():
    from tests.cluster_run import run_cluster

    data = scenario("controller", "llumnix_migration")
    data["workload"]["num_requests"] = 200
    cluster = run_cluster(data)
    recs = [r for r in cluster.transfer.records if r["outcome"] == "migrated"]
    assert recs
    for a in recs:
        for b in recs:
            if a is not b and a["start_s"] < b["end_s"] and b["start_s"] < a["end_s"]:
                assert not ({a["src"], a["dst"]} & {b["src"], b["dst"]}), (a, b)


def decoding(rid, context, priority=0):
    return SimpleNamespace(id=rid, context_tokens=context, priority=priority, is_decoding=True)


def test_pairing_least_free_with_freest_and_shortest_request_first():
    from policies.controllers.llumnix_migration import LlumnixMigration, LlumnixMigrationParams

    def rep(rid, used, running, lifecycle="active"):
        r = fake_rep(used=used, running=running, lifecycle=lifecycle)
        r.id = rid
        r.kv.num_free_blocks = r.kv.num_blocks - used
        return r

    reps = [rep(0, 985, [decoding(1, 3000), decoding(2, 800), decoding(3, 2000, priority=1)]),  # F = 1.7
            rep(1, 990, [decoding(4, 300), decoding(5, 900)]),                                    # F = 0
            rep(2, 100, [decoding(6, 100)]),                                                      # F = 890
            rep(3, 500, [decoding(7, 100)]),                                                      # F = 490
            rep(4, 900, [decoding(8, 100)] * 10)]                                                 # F = 9
    cluster = SimpleNamespace(is_migrating=lambda rid: rid == 4, max_migrations_per_replica=1,
                              num_migrations_at=lambda rid: 0)
    ctl = LlumnixMigration(LlumnixMigrationParams(), SimpleNamespace(cluster=None, where="c"))
    actions = ctl._pair(cluster, [(freeness(r), r) for r in reps])
    # least free (1) -> freest (2): request 4 is migrating already, so the next shortest (5); then
    # 0 -> 3: its lowest-priority request (3); replica 4 (F = 9) is neither source nor destination
    assert [(a.request_id, a.dst_replica) for a in actions] == [(5, 2), (3, 3)]
    assert all(a.live for a in actions)
    # a draining replica is always a source
    reps[2].lifecycle = "draining"
    actions = ctl._pair(cluster, [(freeness(r), r) for r in reps])
    assert (actions[0].request_id, actions[0].dst_replica) == (6, 3)


@pytest.mark.parametrize("live", [True, False])
def test_downtime_against_sequence_length(live):
    """Live pre-copy: downtime near constant as the sequence grows 16x; stop and copy: grows with it."""
    recs = [downtime(n, live) for n in (1024, 4096, 16384)]
    times = [r["downtime_s"] for r in recs]
    assert all(r["outcome"] == "migrated" for r in recs)
    if live:
        assert max(times) < 2.5 * min(times) and max(times) < 2e-3
        assert all(r["num_stages"] >= 2 for r in recs)
    else:
        assert times[1] > 2.0 * times[0] and times[2] > 3.0 * times[1]


def test_live_downtime_is_a_small_fraction_of_stop_and_copy():
    live, stop = downtime(16384, True), downtime(16384, False)
    assert live["downtime_s"] < 0.01 * stop["downtime_s"]


# ---------------------------------------------------------------------------- autoscaling


def test_autoscaler_scales_with_cold_starts_and_migrates_drained_replicas_empty():
    res = simulate(scenario("controller", "llumnix_autoscaler"))
    a = res.actions
    adds, drains = a[a["kind"] == "add_replica"], a[a["kind"] == "drain_replica"]
    assert len(adds) >= 2 and len(drains) >= 2 and a["applied"].all()
    assert res.summary["num_replicas_peak"] > 2
    assert res.summary["num_completed"] == res.summary["num_requests"]
    # requests left drained replicas by migration (a replica draining has freeness -inf)
    drained = {int(t) for t in drains["target"]}
    v = res.visits
    assert ((v["left"] == "migrated") & v["replica"].isin(drained)).any()


# ---------------------------------------------------------------------------- trend


def run_azure(router, controllers, scale):
    return latency_row(simulate(azure_config("conv", 4, scale, 0.0, 600.0, router, controllers)), 600.0)


def test_llumnix_beats_least_outstanding_near_saturation():
    """Azure conv, 4 A10G x Llama-2-7B: fewer preemptions below saturation, and at saturation
    least outstanding tips into long queues while Llumnix's migration keeps p99 TTFT low.

    The loads were 0.40 and 0.45 with the A10G at its 24 GiB nameplate; at its CUDA-visible
    22.06 GiB a replica holds 0.775x the KV (7.78 -> 6.03 GiB), so saturation comes at 0.775x the
    load and both loads are scaled by it (0.31, 0.35); the assertions are unchanged."""
    mig = [{"name": "llumnix_migration"}]
    lo, ll = run_azure("least_outstanding", [], 0.31), run_azure("llumnix", mig, 0.31)
    assert ll["preemptions"] < lo["preemptions"] and ll["ttft_p99_s"] <= lo["ttft_p99_s"]
    lo, ll = run_azure("least_outstanding", [], 0.35), run_azure("llumnix", mig, 0.35)
    assert ll["ttft_p99_s"] < lo["ttft_p99_s"] / 10 and ll["preemptions"] < lo["preemptions"] / 5
