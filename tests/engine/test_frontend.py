"""The serving front end (sim/engine/frontend.py): Lindley's recursion, servers, accounting, exactness."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.api import simulate
from sim.engine.frontend import FrontEnd


class _Req:
    def __init__(self, n: int):
        self.input_tokens = n


def _releases(arrivals, tokens, servers, request_s, token_s):
    """Drive a FrontEnd on its own Environment; the time each request is handed on."""
    env = simpy.Environment()
    out = {}
    fe = FrontEnd(env, servers, request_s, token_s, lambda r: out.__setitem__(id(r), env.now))
    reqs = [_Req(n) for n in tokens]
    for t, r in zip(arrivals, reqs, strict=True):
        ev = env.timeout(t)
        ev.callbacks.append(lambda _e, r=r: fe.admit(r, env.now))
    env.run()
    return np.array([out[id(r)] for r in reqs]), fe


def test_one_server_is_lindleys_recursion():
    rng = np.random.default_rng(3)
    arrivals = np.cumsum(rng.exponential(0.010, 300))
    tokens = rng.integers(10, 600, 300)
    rel, fe = _releases(arrivals, tokens, 1, 0.004, 10e-6)
    service = 0.004 + 10e-6 * tokens
    wait = np.zeros(300)  # W_{n+1} = max(0, W_n + S_n - (A_{n+1} - A_n))
    for n in range(299):
        wait[n + 1] = max(0.0, wait[n] + service[n] - (arrivals[n + 1] - arrivals[n]))
    np.testing.assert_allclose(rel, arrivals + wait + service, rtol=0, atol=1e-12)
    assert fe.num == 300 and fe.wait_sum_s == pytest.approx(wait.sum(), abs=1e-9)
    assert wait.max() > 0.02  # the load (rho ~ 0.8) does queue: the check is not vacuous


@pytest.mark.parametrize("servers", [1, 2, 4])
def test_servers_scale_a_burst(servers):
    # 40 requests at once: the k-th (0-based) leaves at (k // servers + 1) x service
    rel, _ = _releases([0.0] * 40, [512] * 40, servers, 0.01, 0.0)
    np.testing.assert_allclose(np.sort(rel), (np.arange(40) // servers + 1) * 0.01, atol=1e-12)


def test_c_servers_match_an_explicit_first_free_server_queue():
    rng = np.random.default_rng(5)
    arrivals = np.cumsum(rng.exponential(0.004, 200))
    tokens = rng.integers(1, 2000, 200)
    rel, _ = _releases(arrivals, tokens, 3, 0.003, 5e-6)
    free = [0.0, 0.0, 0.0]
    want = []
    for t, n in zip(arrivals, tokens, strict=True):
        k = int(np.argmin(free))
        free[k] = max(t, free[k]) + 0.003 + 5e-6 * n
        want.append(free[k])
    np.testing.assert_allclose(rel, want, atol=1e-12)


def _config(tmp_path, fe_s=None, servers=None, max_time_s=None, fast_forward=True, n=120, gap=0.004):
    path = tmp_path / "trace.csv"
    rng = np.random.default_rng(0)
    arr = np.cumsum(rng.exponential(gap, n))
    path.write_text("arrival_s,input_tokens,output_tokens\n"
                    + "".join(f"{a:.6f},{int(i)},{int(o)}\n" for a, i, o in
                              zip(arr, rng.integers(50, 800, n), rng.integers(5, 60, n), strict=True)))
    cost = {"name": "analytic", "stack": "trtllm"}
    if fe_s is not None:
        cost["frontend_request_s"] = fe_s
    if servers is not None:
        cost["frontend_servers"] = servers
    cfg = {"seed": 0, "workload": {"name": "trace", "path": str(path)},
           "engine": {"fast_forward": fast_forward},
           "cluster": {"pools": [{"name": "main", "role": "mixed", "num_replicas": 1,
                                  "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
                                  "cost_model": cost, "scheduler": "vllm_v1", "kv": {"name": "paged"}}]}}
    if max_time_s is not None:
        cfg["engine"]["max_time_s"] = max_time_s
    return cfg, arr


def test_off_is_bit_identical_and_adds_no_keys(tmp_path):
    cfg, _ = _config(tmp_path)
    a = simulate(cfg)
    b = simulate(_config(tmp_path, fe_s=0.0)[0])
    assert not any(k.startswith("frontend_") for k in a.summary)
    for k in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "num_events", "duration_s"):
        if k in a.summary:
            assert a.summary[k] == b.summary[k]
    pd_a, pd_b = a.requests, b.requests
    assert np.array_equal(pd_a["ttft_s"].to_numpy(), pd_b["ttft_s"].to_numpy())


def test_in_a_run_requests_reach_the_replica_at_their_release(tmp_path):
    cfg, arr = _config(tmp_path, fe_s=0.006)
    res = simulate(cfg)
    df = res.requests.sort_values("id")
    wait = np.zeros(len(arr))
    for k in range(len(arr) - 1):
        wait[k + 1] = max(0.0, wait[k] + 0.006 - (arr[k + 1] - arr[k]))
    release = df["arrival_s"].to_numpy() + wait + 0.006
    assert np.all(df["first_scheduled_s"].to_numpy() >= release - 1e-9)
    assert np.all(df["ttft_s"].to_numpy() >= wait + 0.006 - 1e-9)
    s = res.summary
    assert s["frontend_requests"] == len(arr) == s["num_completed"]
    assert s["frontend_wait_mean_s"] == pytest.approx(wait.mean(), rel=1e-6)
    assert s["frontend_delay_mean_s"] == pytest.approx(wait.mean() + 0.006, rel=1e-6)
    # two servers: less waiting, and the per-replica queueing is gone at this load
    s2 = simulate(_config(tmp_path, fe_s=0.006, servers=2)[0]).summary
    assert s2["frontend_servers"] == 2 and s2["frontend_wait_mean_s"] < 0.5 * s["frontend_wait_mean_s"]
    assert s2["ttft_p50_s"] < s["ttft_p50_s"]


def test_exact_with_and_without_fast_forward(tmp_path):
    a = simulate(_config(tmp_path, fe_s=0.005)[0]).requests.sort_values("id")
    b = simulate(_config(tmp_path, fe_s=0.005, fast_forward=False)[0]).requests.sort_values("id")
    np.testing.assert_allclose(a["finish_s"].to_numpy(), b["finish_s"].to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a["ttft_s"].to_numpy(), b["ttft_s"].to_numpy(), rtol=1e-9, atol=1e-9)


def test_requests_in_the_front_end_at_a_cut_are_unfinished(tmp_path):
    cfg, _ = _config(tmp_path, fe_s=0.02, max_time_s=0.3)  # 50 req/s in, 50 out: a queue builds
    res = simulate(cfg)
    s = res.summary
    df = res.requests
    assert s["truncated"]
    unfinished = df[~df["state"].isin(["finished", "rejected"])]
    assert (unfinished["first_replica"] == -1).sum() >= 1  # still in the front end
    assert s["num_completed"] + s.get("num_rejected", 0) + len(unfinished) + s["num_not_arrived"] \
        == s["num_workload_requests"] == 120


def test_stack_file_and_yaml_set_the_front_end(tmp_path):
    from hardware.analytic import AnalyticCostModel, AnalyticParams
    from hardware.stack_file import read_stack_file, write_stack_file
    from sim.config import HardwareConfig
    from sim.errors import ConfigError

    hw = HardwareConfig(device="H100-SXM", model="Llama-3-8B", tp=1)
    path = tmp_path / "stack.yaml"
    write_stack_file(path, "vllm_v1_engine", {"frontend_request_s": 0.004}, {"fitted_to": "test"})
    cm = AnalyticCostModel(AnalyticParams(stack="trtllm", stack_file=str(path)), hw)
    assert cm.frontend_request_s == 0.004 and cm.frontend_servers == 1
    assert AnalyticCostModel(AnalyticParams(stack="trtllm"), hw).frontend_request_s == 0.0  # off elsewhere
    cm = AnalyticCostModel(AnalyticParams(stack="vllm_v1_engine", frontend_servers=4), hw)
    assert cm.frontend_servers == 4 and cm.frontend_request_s > 0
    path.write_text("base_stack: vllm_v1_engine\nfrontend_servers: 0\n")
    with pytest.raises(ConfigError) as exc:
        read_stack_file(path)
    assert exc.value.where == "cost_model.stack_file.frontend_servers"


def test_a_draining_replica_waits_for_its_front_end(tmp_path):
    from sim.engine.clock import CONTROL, at
    from tests.cluster_run import run_cluster

    # a 1 s service, longer than any request's time in the engine: the drained replica's engine empties
    # between two releases of its front end, which must not let it leave with requests still in it
    cfg, _ = _config(tmp_path, fe_s=1.0)
    cfg["cluster"]["router"] = "round_robin"
    cfg["cluster"]["pools"][0]["num_replicas"] = 2
    seen = {}

    def drain_soon(cluster):
        def drain(_e):
            seen["queued"] = len(cluster.frontends[1].requests())
            cluster.drain_replica(1)
        at(cluster.env, 0.1, CONTROL).callbacks.append(drain)

    cluster = run_cluster(cfg, drain_soon)
    df = cluster.recorder.requests_frame()
    assert seen["queued"] > 0  # requests were in its front end when it was drained ...
    assert (df["state"] == "finished").all() and len(df) == 120  # ... and all were served, none lost
    assert cluster.replica_by_id[1].lifecycle == "removed"


@pytest.mark.parametrize("replicas", [1, 3])
def test_the_arrival_bound_with_a_front_end_changes_no_result(tmp_path, replicas):
    from tests.cluster_run import assert_same_run, run_cluster, unbounded

    cfg, _ = _config(tmp_path, fe_s=0.005, servers=2, gap=0.002)
    cfg["cluster"]["router"] = "round_robin"  # tells min_requests_before: bounded stretches on several replicas
    cfg["cluster"]["pools"][0]["num_replicas"] = replicas
    assert_same_run(run_cluster(cfg), run_cluster(cfg, unbounded))


def test_a_load_balancer_counts_requests_in_the_front_end(tmp_path):
    # a burst routed by least_outstanding to 4 replicas with a slow front end: while the requests wait
    # in the front ends they are outstanding at their replica (assigned there, not yet done), so the
    # burst spreads evenly; counted only once on the replica's queue, all would go to the first
    cfg, _ = _config(tmp_path, fe_s=0.05, n=40, gap=1e-6)
    cfg["cluster"]["router"] = "least_outstanding"
    cfg["cluster"]["pools"][0]["num_replicas"] = 4
    res = simulate(cfg)
    counts = res.requests["first_replica"].value_counts().sort_index().tolist()
    assert counts == [10, 10, 10, 10]
    assert res.summary["num_completed"] == 40
