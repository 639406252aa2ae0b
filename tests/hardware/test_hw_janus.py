"""JANUS's analytic model: the steady-batch fixed point, feasibility and scaling direction."""

import math

import pytest

from hardware.janus import JanusModel, MonolithicModel, Workload, feasible, max_rate, steady_batch


def test_steady_batch_is_the_littles_law_fixed_point():
    tpot = lambda b: 0.01 + 1e-4 * b  # noqa: E731
    b = steady_batch(tpot, rate_rps=20.0, output_tokens=100)
    assert b == pytest.approx(20.0 * 100 * tpot(b), rel=1e-6)
    assert steady_batch(lambda b: 0.01 * b, 20.0, 100) == math.inf  # TPOT grows too fast: no steady state


@pytest.fixture(scope="module")
def janus_4_4():
    return JanusModel("H100-SXM", "Qwen3-30B-A3B", 4, 4, routing={"routing": "zipf", "realisations": 4})


def test_janus_tpot_grows_with_batch_and_more_attention_gpus_serve_more(janus_4_4):
    small = JanusModel("H100-SXM", "Qwen3-30B-A3B", 1, 4, routing={"routing": "zipf", "realisations": 4})
    assert janus_4_4.tpot_s(256, 1000) > janus_4_4.tpot_s(16, 1000)
    load = Workload(1.0, 200, 1200)
    assert max_rate(janus_4_4, load, 0.05) > max_rate(small, load, 0.05) > 0


def test_feasibility_checks_slo_and_kv(janus_4_4):
    ok, b, t = feasible(janus_4_4, Workload(5.0, 200, 1200), 0.05)
    assert ok and t <= 0.05 and b > 0
    ok, _b, _t = feasible(janus_4_4, Workload(5.0, 200, 5e7), 10.0)  # contexts far beyond the KV
    assert not ok


def test_monolithic_needs_an_ep_degree_dividing_the_experts():
    assert not MonolithicModel("H100-SXM", "Qwen3-30B-A3B", 6).fits
    assert MonolithicModel("H100-SXM", "Qwen3-30B-A3B", 8).fits
