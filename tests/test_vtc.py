"""VTC: the counter rules, its options, counters shared by the vtc router, and its trend
against the strongest fair baseline (vLLM v1's FCFS with the same budget and KV)."""

from __future__ import annotations

import numpy as np
import pytest

from policies.schedulers.vtc import VTCParams, VTCState
from sim import simulate
from sim.config import from_dict
from sim.engine.cluster import Cluster
from sim.engine.recorder import Recorder
from sim.errors import ConfigError
from tests.conftest import make_config_dict

# one replica under load; clients 1..7 send 1 request each for 7 of the heavy client0's
HEAVY = [{"name": "assign_clients", "num_clients": 8, "weights": [7, 1, 1, 1, 1, 1, 1, 1]}]
LOAD = {"name": "synthetic", "num_requests": 500, "rate_rps": 30.0, "input_tokens": 64, "input_tokens_max": 1024,
        "output_tokens": 8, "output_tokens_max": 128, "transforms": HEAVY}


def _run(scheduler: str, workload: dict, **kw):
    data = make_config_dict(scheduler={"name": scheduler, **kw}, workload=workload, num_blocks=800,
                            kv={"block_size": 16})
    data["cluster"]["pools"][0]["cost_model"] = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5}
    return simulate(data)


def _others_p99(res) -> float:
    df = res.requests
    return float(df.loc[df["client"] != "client0", "ttft_s"].quantile(0.99))


def test_lift_to_the_smallest_counter_among_queued_clients():
    s = VTCState(VTCParams())
    s.counters.update(a=100.0, b=50.0, c=7.0)
    s.queued.update(a=1, b=0, c=0)
    s.queued_tokens[0] = {}

    class Rep:
        id = 0

        def sync(self):
            pass

    class Req:
        id, input_tokens = 7, 10

    s.arrive(Rep(), Req(), "c")  # only a is queued: c is lifted to a's counter
    assert s.counters["c"] == 100.0
    s.arrive(Rep(), Req(), "c")  # c was queued already: no second lift
    assert s.counters["c"] == 100.0
    s.queued.update(a=0, c=0)
    s.arrive(Rep(), Req(), "b")  # nobody else queued: no lift
    assert s.counters["b"] == 50.0
    s.arrive(Rep(), Req(), "d")  # a new client starts at the smallest queued counter (b's)
    assert s.counters["d"] == 50.0


def test_lift_counts_the_clients_own_running_tokens_first():
    from policies.schedulers.vtc import _Charge
    from sim.engine.states import State

    s = VTCState(VTCParams())
    s.counters.update(a=60.0, c=0.0)
    s.queued.update(a=1)

    class Running:
        num_output_tokens, state = 50, State.DECODE

    class Rep:
        id = 0

    class Req:
        id, input_tokens = 8, 10

    s.inflight[1] = _Charge(Running(), "c")
    s.arrive(Rep(), Req(), "c")  # c's 50 generated tokens (w_q = 2) put it above a: no lift
    assert s.counters["c"] == 100.0


def test_vtc_isolates_light_clients_from_a_heavy_hitter_and_stays_work_conserving():
    fcfs, vtc = _run("vllm_v1", LOAD), _run("vtc", LOAD)
    # FCFS: everyone queues behind the heavy client's backlog; VTC: the light clients do not
    assert _others_p99(fcfs) > 3 * _others_p99(vtc)
    assert vtc.summary["fair_service_diff_mean"] < fcfs.summary["fair_service_diff_mean"]
    assert vtc.summary["throughput_output_tps"] >= 0.98 * fcfs.summary["throughput_output_tps"]


def test_weighted_vtc_serves_backlogged_clients_in_proportion_to_weights():
    work = {"name": "synthetic", "num_requests": 400, "rate_rps": 1000.0, "input_tokens": 100,
            "input_tokens_max": 100, "output_tokens": 50, "output_tokens_max": 50,
            "transforms": [{"name": "assign_clients", "num_clients": 2}]}
    res = _run("vtc", work, weights={"client0": 3.0})
    df = res.requests
    early = df[df["first_scheduled_s"] <= df["first_scheduled_s"].quantile(0.5)]  # both still backlogged
    counts = early.groupby("client").size()
    assert 2.0 < counts["client0"] / counts["client1"] < 4.5


def test_length_predicted_vtc_needs_a_predictor_and_runs_with_one():
    with pytest.raises(ConfigError, match="predictor"):
        _run("vtc", LOAD, length_predicted=True)
    data = make_config_dict(scheduler={"name": "vtc", "length_predicted": True}, workload=LOAD, num_blocks=800)
    data["cluster"]["predictor"] = {"name": "noisy", "sigma": 0.5}
    res = simulate(data)
    assert (res.requests["state"] == "finished").all()
    assert _others_p99(res) < _others_p99(_run("vllm_v1", LOAD))


def test_vtc_router_shares_one_state_per_pool():
    for router, expect in (("vtc", 1), ("least_pending_tokens", 3)):
        cfg = from_dict(make_config_dict(scheduler="vtc", router=router, num_replicas=3, workload=LOAD))
        cluster = Cluster(cfg, cfg.workload.build(), Recorder(False, False), np.random.SeedSequence(0))
        cluster.run()
        assert len({id(r.scheduler.state) for r in cluster.replicas}) == expect
        assert all(not r.waiting and not r.running for r in cluster.replicas)
        assert cluster.num_done == LOAD["num_requests"]
