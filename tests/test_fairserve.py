"""FairServe: app-length-weighted counters and interaction-aware throttling, against VTC (the
strongest fair baseline) and per-call throttling."""

from __future__ import annotations

import pytest

from policies.schedulers.fairserve import FairServeParams, FairServeState
from sim import simulate
from sim.errors import ConfigError
from tests.conftest import make_config_dict

# users of two apps with equal call rates; summarize calls carry 4x longer prompts
APPS = [{"name": "assign_clients", "num_clients": 8},
        {"name": "assign_apps", "apps": {"chat": 1.0, "summarize": 1.0}, "by": "client",
         "length_scale": {"summarize": [4.0, 1.0]}}]
LOAD = {"name": "synthetic", "num_requests": 500, "rate_rps": 20.0, "input_tokens": 64, "input_tokens_max": 512,
        "output_tokens": 8, "output_tokens_max": 64, "transforms": APPS}
HEAVY = {**LOAD, "rate_rps": 30.0, "transforms": [
    {"name": "assign_clients", "num_clients": 8},
    {"name": "heavy_hitter", "rate_multiple": 12, "num_other_clients": 8},
    {"name": "group_interactions", "calls": 4}]}


def _run(scheduler: dict, router: dict, workload: dict):
    data = make_config_dict(scheduler=scheduler, router=router, workload=workload, num_blocks=800)
    return simulate(data).requests


def _mean_ttft_by_app(df):
    return df[df["state"] == "finished"].groupby("app")["ttft_s"].mean()


def test_app_length_weighting_evens_latency_across_apps_versus_vtc():
    vtc = _mean_ttft_by_app(_run({"name": "vtc"}, {"name": "vtc"}, LOAD))
    fs = _mean_ttft_by_app(_run({"name": "fairserve"}, {"name": "fairserve", "overload_wait_s": 1e9}, LOAD))
    # VTC counts summarize users' long prompts as more service: they wait longer than chat users
    assert vtc["summarize"] > 1.5 * vtc["chat"]
    assert fs["summarize"] / fs["chat"] < 0.75 * (vtc["summarize"] / vtc["chat"])


def test_throttling_only_at_interaction_starts_and_only_when_overloaded():
    router = {"name": "fairserve", "overload_wait_s": 0.5, "usage_tau_s": 5.0}
    def mid_way(df):
        rejected = df["state"] == "rejected"
        let_in = df[~rejected].groupby("session")["arrival_s"].min()
        rej = df[rejected]
        return int(rej["session"].map(let_in).lt(rej["arrival_s"]).fillna(False).sum())

    fs = _run({"name": "fairserve"}, router, HEAVY)
    per_call = _run({"name": "vtc"}, {**router, "interaction_aware": False}, HEAVY)
    assert (fs["state"] == "rejected").sum() > 0 and mid_way(fs) == 0
    assert mid_way(per_call) > 0
    throttled = fs[fs["state"] == "rejected"]
    assert (throttled["client"] == "heavy").mean() > 0.9  # it is the heavy user who is throttled
    calm = _run({"name": "fairserve"}, {**router, "overload_wait_s": 1e9}, HEAVY)
    assert (calm["state"] == "finished").all()  # never overloaded: nothing throttled


def test_typical_lengths_fixed_learned_and_checked():
    s = FairServeState(FairServeParams(app_lengths={"chat": [100.0, 50.0]}))
    assert s.typical("chat") == (100.0, 50.0)
    assert s.typical("other") == (1000.0, 200.0)

    class Req:
        app, input_tokens, num_output_tokens = "other", 300, 30

    s.finished(Req())
    assert s.typical("other") == (300.0, 30.0)
    with pytest.raises(ConfigError, match="app_lengths"):
        make = make_config_dict(scheduler={"name": "fairserve", "app_lengths": {"chat": [1.0]}}, workload=LOAD)
        simulate(make)
