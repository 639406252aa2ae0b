"""Replica lifecycle: cold starts, draining, removal, stable ids, billing by lifetime, actions."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.cold_start import SOURCES, cold_start
from sim import simulate
from sim.config import ColdStartConfig, HardwareConfig, PoolConfig, from_dict
from sim.engine.actions import set_knob
from sim.engine.cluster import Cluster, build_cost_model
from sim.engine.recorder import Recorder
from sim.errors import ConfigError
from sim.tools.output import read_frame, write_run
from tests.conftest import make_config_dict
from tests.plugins.scripted_controller import NAME as SCRIPTED

# 16e9 bytes at 8 GB/s + 3 s: a 5 s cold start
COLD = {"source": "custom", "load_gbps": 8.0, "engine_start_s": 3.0}
WEIGHTS = 16e9
COLD_S = WEIGHTS / (8.0 * 1e9) + 3.0


def lifecycle_config(num_replicas: int = 1, rate_rps: float = 10.0, num_requests: int = 200, **kw: Any) -> dict:
    data = make_config_dict(num_replicas=num_replicas, workload={
        "name": "synthetic", "num_requests": num_requests, "rate_rps": rate_rps,
        "input_tokens": 64, "input_tokens_max": 256, "output_tokens": 8, "output_tokens_max": 64}, **kw)
    pool = data["cluster"]["pools"][0]
    pool["cost_model"]["weight_bytes_per_gpu"] = WEIGHTS
    pool["cold_start"] = dict(COLD)
    return data


def build(data: dict) -> Cluster:
    config = from_dict(copy.deepcopy(data))
    cluster = Cluster(config, config.workload.build(), Recorder(), np.random.SeedSequence(config.seed))
    cluster.start()
    return cluster


def at_time(cluster: Cluster, t: float, fn) -> None:
    """Run ``fn()`` at simulated time ``t``."""
    def proc():
        yield cluster.env.timeout(t - cluster.env.now)
        fn()
    cluster.env.process(proc())


# ---------------------------------------------------------------------------- cold start model

def test_cold_start_of_llama3_8b_on_h100_from_each_source():
    hw = HardwareConfig(device="H100-SXM", model="Llama-3-8B")
    model = build_cost_model(PoolConfig(hardware=hw), "pool")
    expected_s = {"host_memory": 14.66, "storage_fast": 14.90, "remote": 17.41, "storage": 18.60}
    for source, total in expected_s.items():
        cs = cold_start(ColdStartConfig(source=source), model, hw)
        assert cs.weight_bytes_per_gpu == pytest.approx(16.06e9, rel=1e-3)
        assert cs.total_s == pytest.approx(total, abs=0.01), source
    assert cold_start(ColdStartConfig(source="host_memory"), model, hw).load_gbps == 35.0  # H100's measured PCIe5
    assert set(SOURCES) == {"storage", "storage_fast", "host_memory", "remote", "custom"}


def test_cold_start_scales_with_the_shard_per_gpu():
    one = HardwareConfig(device="H100-SXM", model="Llama-3-70B", tp=1)
    four = HardwareConfig(device="H100-SXM", model="Llama-3-70B", tp=4)
    cfg = ColdStartConfig(source="storage_fast", engine_start_s=0.0)
    m1 = build_cost_model(PoolConfig(hardware=one, kv={"name": "paged", "num_blocks": 10}), "p")
    m4 = build_cost_model(PoolConfig(hardware=four), "p")
    assert cold_start(cfg, m4, four).total_s == pytest.approx(cold_start(cfg, m1, one).total_s / 4)


def test_custom_source_needs_a_bandwidth():
    with pytest.raises(ConfigError, match="load_gbps"):
        from_dict(make_config_dict(cluster__pools=[{"name": "main", "cold_start": {"source": "custom"}}]))


# ---------------------------------------------------------------------------- add / drain / remove

def test_added_replica_serves_only_after_its_cold_start():
    cluster = build(lifecycle_config(rate_rps=20.0, router="round_robin"))
    seen: dict[str, Any] = {}

    def add():
        seen["id"] = cluster.add_replica("main")
        rep = cluster.replica_by_id[seen["id"]]
        seen["at_add"] = (rep.lifecycle, rep.start_s, [v.id for v in cluster.entry_views])

    at_time(cluster, 2.0, add)
    at_time(cluster, 2.0 + COLD_S - 1e-6, lambda: seen.setdefault("before", cluster.replica_by_id[1].lifecycle))
    cluster.env.run(until=cluster.all_done)
    rep = cluster.replica_by_id[seen["id"]]
    assert seen["id"] == 1
    assert seen["at_add"] == ("starting", 2.0, [0])
    assert seen["before"] == "starting"
    assert rep.lifecycle == "active"
    assert rep.ready_s == pytest.approx(2.0 + COLD_S, abs=1e-9)  # 16e9 B / 8 GB/s + 3 s = 5 s
    df = cluster.recorder.requests_frame()
    mine = df[df["replica"] == 1]
    assert len(mine) > 0 and mine["first_scheduled_s"].min() >= rep.ready_s


def test_draining_replica_takes_no_new_work_and_leaves_when_empty():
    cluster = build(lifecycle_config(num_replicas=2, rate_rps=30.0, router="round_robin"))
    at_time(cluster, 3.0, lambda: cluster.drain_replica(0))
    cluster.env.run(until=cluster.all_done)
    df = cluster.recorder.requests_frame()
    rep0 = cluster.replica_by_id[0]
    on0 = df[df["replica"] == 0]
    assert on0["arrival_s"].max() <= 3.0           # nothing routed to it after the drain
    assert len(df[(df["replica"] == 1) & (df["arrival_s"] > 3.0)]) > 0
    assert rep0.lifecycle == "removed"
    assert rep0.end_s == on0["finish_s"].max()     # removed the moment its last request finished
    assert rep0.end_s > 3.0
    assert 0 not in [v.id for v in cluster.view.replicas]
    assert [v.id for v in cluster.view.pool("main").replicas] == [1]
    with pytest.raises(KeyError):
        cluster.view.replica(0)
    assert len(on0) > 0  # its requests stay in the results


def test_draining_an_empty_or_starting_replica_removes_it_at_once():
    cluster = build(lifecycle_config(num_replicas=1, rate_rps=5.0, num_requests=40))
    ids = {}

    def add_then_drain():
        ids["a"] = cluster.add_replica("main")
        cluster.drain_replica(ids["a"])  # still starting: removed at once, never serves

    at_time(cluster, 1.0, add_then_drain)
    cluster.env.run(until=cluster.all_done)
    rep = cluster.replica_by_id[ids["a"]]
    assert (rep.lifecycle, rep.start_s, rep.end_s, rep.ready_s) == ("removed", 1.0, 1.0, None)
    assert rep.num_steps == 0


def test_replica_ids_are_stable_and_never_reused():
    cluster = build(lifecycle_config(num_replicas=2, rate_rps=10.0, num_requests=100))
    got = []

    def script():
        got.append(cluster.add_replica("main"))
        yield cluster.env.timeout(COLD_S + 1)
        cluster.drain_replica(got[0])
        yield cluster.env.timeout(2.0)
        got.append(cluster.add_replica("main"))
        got.append(cluster.add_replica("main"))

    cluster.env.process(script())
    cluster.env.run(until=cluster.all_done)
    assert got == [2, 3, 4]
    assert sorted(cluster.replica_by_id) == [0, 1, 2, 3, 4]
    assert cluster.replica_by_id[2].lifecycle == "removed"
    assert [r.id for r in cluster.replicas] == [0, 1, 2, 3, 4]


def test_the_last_active_replica_of_a_pool_cannot_be_drained():
    from sim.engine.actions import ActionError

    cluster = build(lifecycle_config(num_replicas=1, num_requests=10))
    with pytest.raises(ActionError, match="last active"):
        cluster.drain_replica(0)


def test_added_decode_replica_becomes_a_handoff_target():
    data = lifecycle_config(num_replicas=1, rate_rps=20.0, num_requests=300, router="least_outstanding")
    prefill = data["cluster"]["pools"][0]
    prefill["role"] = "prefill"
    decode = copy.deepcopy(prefill)
    decode.update(name="decode", role="decode")
    data["cluster"]["pools"].append(decode)
    data["cluster"]["handoff"] = {"name": "distserve"}
    cluster = build(data)
    at_time(cluster, 1.0, lambda: cluster.add_replica("decode"))
    cluster.env.run(until=cluster.all_done)
    new = cluster.replica_by_id[2]
    assert (new.role, new.lifecycle) == ("decode", "active")
    assert new.view in cluster.handoff.targets
    df = cluster.recorder.requests_frame()
    assert (df["replica"] == 2).sum() > 0 and (df["state"] == "finished").all()
    assert set_knob(cluster, "handoff", "waiting_blocks_threshold", 0.5) == "waiting_blocks_threshold = 0.5"
    assert cluster.handoff.params.waiting_blocks_threshold == 0.5
    assert cluster.config.cluster.handoff.params.waiting_blocks_threshold == 0.05  # the config keeps its value


# ---------------------------------------------------------------------------- billing

@pytest.mark.parametrize("tp", [1, 2])
def test_fixed_cluster_is_billed_for_the_span_as_before(tp):
    data = make_config_dict(num_replicas=3, cost={"name": "analytic"}, kv={"num_blocks": 2000})
    data["cluster"]["pools"][0]["hardware"] = {"device": "H100-SXM", "model": "Llama-3-8B", "tp": tp}
    s, df = (res := simulate(data)).summary, res.requests
    span = float(np.nanmax(df["finish_s"]) - df["arrival_s"].min())
    assert s["num_gpus"] == 3 * tp
    assert s["gpu_hours"] == (3 * tp) * span / 3600.0  # bit for bit the formula of a fixed cluster
    assert s["replica_seconds"] == span * 3 and s["num_replicas_peak"] == 3


def test_fixed_cluster_summary_keys_and_replica_seconds():
    res = simulate(lifecycle_config(num_replicas=3))
    s, df = res.summary, res.requests
    span = float(np.nanmax(df["finish_s"]) - df["arrival_s"].min())
    assert s["num_replicas_peak"] == 3
    assert s["replica_seconds"] == span * 3
    assert s["num_actions"] == 0 and s["num_invalid_actions"] == 0
    assert list(res.actions.columns) == ["time_s", "controller", "kind", "target", "detail", "applied"]


def test_gpu_hours_of_an_added_replica_are_its_gpus_times_its_lifetime():
    from sim.api import _energy_and_cost

    data = scripted([[2.0, "add", "main"], [8.0, "drain", 1]], num_replicas=1, rate_rps=8.0, num_requests=150)
    pool = data["cluster"]["pools"][0]
    pool["hardware"] = {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 2}
    pool["cost_model"] = {"name": "analytic"}
    pool["kv"] = {"name": "paged", "num_blocks": 4000}
    config = from_dict(data)
    cluster = Cluster(config, config.workload.build(), Recorder(), np.random.SeedSequence(0))
    cluster.run()
    df = cluster.recorder.requests_frame()
    t0, t1 = float(df["arrival_s"].min()), float(np.nanmax(df["finish_s"]))
    added = cluster.replica_by_id[1]
    assert added.lifecycle == "removed" and added.start_s == 2.0
    # removed at the drain (8 s) if empty then, else when its last request finished
    assert added.end_s == max(8.0, df.loc[df["replica"] == 1, "finish_s"].max())
    lifetime = added.end_s - 2.0
    out = _energy_and_cost(cluster, df)
    assert out["gpu_hours"] == pytest.approx(2 * ((t1 - t0) + lifetime) / 3600.0, rel=1e-12)
    # idle power only while alive: idle seconds = lifetime - busy, per replica
    model = cluster.pools[0].cost_model
    energy = 0.0
    for rep, alive in ((cluster.replica_by_id[0], t1 - t0), (added, lifetime)):
        idle = alive - rep.busy_prefill_s - rep.busy_decode_s
        energy += 2 * (model.power_w("prefill") * rep.busy_prefill_s + model.power_w("decode") * rep.busy_decode_s
                       + model.power_w("idle") * idle)
    assert out["energy_j"] == pytest.approx(energy, rel=1e-9)
    res = simulate(data)
    assert res.summary["gpu_hours"] == out["gpu_hours"]
    assert res.summary["replica_seconds"] == pytest.approx((t1 - t0) + lifetime, rel=1e-12)
    assert res.summary["num_replicas_peak"] == 2 and res.summary["num_gpus"] == 4
    assert list(res.actions["kind"]) == ["add_replica", "drain_replica"] and res.actions["applied"].all()


def test_run_end_does_not_wait_for_idle_or_starting_replicas():
    data = lifecycle_config(num_replicas=1, rate_rps=5.0, num_requests=30)
    data["cluster"]["controllers"] = [{"name": SCRIPTED, "period_s": 0.5,
                                       "script": [[5.5, "add", "main"]]}]
    res = simulate(data)
    df = res.requests
    last = float(np.nanmax(df["finish_s"]))
    assert res.summary["simulated_duration_s"] == pytest.approx(last - df["arrival_s"].min())
    assert last < 5.5 + COLD_S  # the new replica was still starting when the work ran out
    assert res.summary["replica_seconds"] == pytest.approx((last - df["arrival_s"].min()) + (last - 5.5))


# ---------------------------------------------------------------------------- controller actions

def scripted(script: list[list[Any]], **kw: Any) -> dict:
    data = lifecycle_config(**kw)
    data["cluster"]["controllers"] = [{"name": SCRIPTED, "period_s": 1.0, "script": script}]
    return data


def test_invalid_actions_are_counted_recorded_and_ignored():
    data = scripted([[1.0, "add", "nope"], [1.0, "drain", 99], [1.0, "drain", 0], [2.0, "bogus"],
                     [2.0, "knob", "router", "x", 1], [2.0, "knob", "main", "max_num_seqs", "lots"],
                     [2.0, "knob", "main", "max_num_seqs", -3], [2.0, "knob", "handoff", "x", 1],
                     [3.0, "add", "main"], [4.0, "drain", 1], [5.0, "drain", 1]],
                    num_replicas=1, num_requests=100)
    res = simulate(data)
    acts = res.actions
    bad = acts[~acts["applied"]]
    assert res.summary["num_invalid_actions"] == len(bad) == 9
    assert res.summary["num_actions"] == 2
    reasons = " | ".join(bad["detail"])
    for fragment in ("unknown pool 'nope'", "unknown replica 99", "last active replica", "not a controller action",
                     "no parameter block", "expected an integer", "must be >= 1", "no hand-off",
                     "replica 1 was removed"):
        assert fragment in reasons, fragment
    assert set(acts["controller"]) == {"Scripted"}
    assert (res.requests["state"] == "finished").all()


def test_set_knob_changes_the_live_policy_not_the_config():
    data = scripted([[2.0, "knob", "main", "max_num_seqs", 2]], num_replicas=1, rate_rps=50.0, num_requests=300)
    res = simulate(data)
    assert res.actions["applied"].all() and res.actions["detail"][0] == "max_num_seqs = 2"
    assert res.config.cluster.pools[0].scheduler.params.max_num_seqs != 2  # the config is untouched
    unchanged = simulate(lifecycle_config(num_replicas=1, rate_rps=50.0, num_requests=300))
    assert res.summary["mean_batch_size"] < unchanged.summary["mean_batch_size"]


def test_set_knob_reaches_replicas_added_later():
    data = scripted([[1.0, "knob", "main", "max_num_seqs", 3], [1.0, "add", "main"]], num_replicas=1,
                    rate_rps=50.0, num_requests=200)
    config = from_dict(data)
    cluster = Cluster(config, config.workload.build(), Recorder(), np.random.SeedSequence(0))
    cluster.run()
    assert cluster.replica_by_id[1].scheduler.params.max_num_seqs == 3
    assert cluster.replica_by_id[0].scheduler.params is cluster.replica_by_id[1].scheduler.params


def test_a_controllers_migrate_action_moves_a_decoding_request():
    data = scripted([[1.0, "migrate", 0, 1]], num_replicas=2, num_requests=20, rate_rps=5.0)
    data["workload"].update(output_tokens=400, output_tokens_max=400)
    res = simulate(data)
    assert res.actions["applied"].all(), res.actions
    row = res.requests.set_index("id").loc[0]
    assert row["num_migrations"] == 1 and row["state"] == "finished" and row["replica"] == 1
    visits = res.visits[res.visits["request"] == 0] if "request" in res.visits else res.visits[res.visits["id"] == 0]
    assert list(visits["left"].astype(str)) == ["migrated", "finished"]


def test_weight_load_goes_through_a_transfer_service_when_there_is_one():
    data = lifecycle_config(num_replicas=1, rate_rps=5.0, num_requests=60)
    data["cluster"]["pools"][0]["cold_start"]["transfer_link"] = "pcie5"
    cluster = build(data)
    copies = []

    class FakeTransfer:
        def copy(self, num_bytes, link):
            copies.append((cluster.env.now, num_bytes, link))
            return cluster.env.timeout(1.5)

    cluster.transfer = FakeTransfer()
    at_time(cluster, 1.0, lambda: cluster.add_replica("main"))
    cluster.env.run(until=cluster.all_done)
    assert copies == [(1.0, WEIGHTS, "pcie5")]
    assert cluster.replica_by_id[1].ready_s == pytest.approx(1.0 + 1.5 + 3.0)


def test_actions_are_written_with_the_run(tmp_path):
    res = simulate(scripted([[1.0, "add", "main"], [1.0, "add", "nope"]], num_replicas=1, num_requests=50))
    files = write_run(res, tmp_path / "run")
    back = read_frame(files["actions"])
    pd.testing.assert_frame_equal(back, res.actions, check_dtype=False)
    assert list(back["applied"]) == [True, False]
    plain = write_run(simulate(lifecycle_config(num_requests=20)), tmp_path / "plain")
    assert "actions" not in plain  # runs without controllers write what they wrote before


def test_same_seed_same_frames_with_actions():
    data = scripted([[1.0, "add", "main"], [7.0, "drain", 0]], num_replicas=1, rate_rps=30.0, num_requests=300)
    a, b = simulate(data), simulate(data)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.actions, b.actions)


# ---------------------------------------------------------------------------- invariants

def test_fast_path_equals_stepping_with_replicas_coming_and_going():
    script = [[1.0, "add", "main"], [2.0, "add", "main"], [6.0, "drain", 0], [9.0, "drain", 2], [10.0, "add", "main"]]
    data = scripted(script, num_replicas=1, rate_rps=40.0, num_requests=400)
    data["cluster"]["pools"][0]["cost_model"]["per_decode_token_s"] = 1e-4
    slow = copy.deepcopy(data)
    slow["engine"]["fast_forward"] = False
    a, b = simulate(data), simulate(slow)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.actions, b.actions)
    assert a.summary["replica_seconds"] == b.summary["replica_seconds"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(st.floats(0.0, 12.0), st.sampled_from(["add", "drain"]), st.integers(0, 6)),
                   max_size=8),
    rate=st.floats(5.0, 80.0),
    fast=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_requests_finish_once_and_lifetimes_hold_under_random_scaling(steps, rate, fast, seed):
    script = [[round(t, 1), what, "main" if what == "add" else rid] for t, what, rid in steps]
    data = scripted(script, num_replicas=2, rate_rps=rate, num_requests=150, seed=seed)
    data["engine"]["fast_forward"] = fast
    config = from_dict(data)
    cluster = Cluster(config, config.workload.build(), Recorder(), np.random.SeedSequence(seed))
    cluster.run()
    df = cluster.recorder.requests_frame()
    assert sorted(df["id"]) == list(range(150))            # every request exactly once
    assert (df["state"] == "finished").all()
    assert sorted(cluster.replica_by_id) == list(range(len(cluster.replicas)))  # ids 0..n-1, none reused
    for rep in cluster.replicas:
        assert rep.lifecycle in ("starting", "active", "draining", "removed")
        if rep.lifecycle == "removed":
            assert rep.end_s >= rep.start_s and rep.is_empty and rep.kv.num_used == 0
            served = df[df["replica"] == rep.id]
            assert served.empty or served["finish_s"].max() <= rep.end_s
        if rep.ready_s is not None:
            assert rep.ready_s == rep.start_s or rep.ready_s == pytest.approx(rep.start_s + COLD_S)
            mine = df[df["replica"] == rep.id]
            assert mine.empty or mine["first_scheduled_s"].min() >= rep.ready_s
    assert sum(1 for r in cluster.replicas if r.lifecycle == "active") >= 1


def test_views_show_starting_replicas_and_queueing_delays():
    cluster = build(lifecycle_config(num_replicas=1, rate_rps=200.0, num_requests=400, kv={"num_blocks": 60}))
    seen = {}

    def look():
        pool = cluster.view.pool("main")
        seen["by_pool"] = {k: [v.id for v in vs] for k, vs in cluster.view.replicas_by_pool.items()}
        seen["starting"] = [v.id for v in pool.starting_replicas]
        seen["active"] = [v.id for v in pool.active_replicas]
        seen["cold_start_s"] = pool.cold_start_s
        rep = cluster.view.replica(0)
        seen["waits"], seen["oldest"] = rep.waiting_delays_s, rep.oldest_wait_s
        seen["lifecycle"] = (rep.lifecycle, cluster.view.replica(1).lifecycle, cluster.view.replica(1).ready_s)

    at_time(cluster, 0.5, lambda: cluster.add_replica("main"))
    at_time(cluster, 1.0, look)
    cluster.env.run(until=cluster.all_done)
    assert seen["by_pool"] == {"main": [0, 1]} and seen["starting"] == [1] and seen["active"] == [0]
    assert seen["cold_start_s"] == pytest.approx(COLD_S)
    assert seen["waits"] and seen["oldest"] == max(seen["waits"]) and 0 < seen["oldest"] <= 1.0
    assert seen["lifecycle"] == ("active", "starting", None)
