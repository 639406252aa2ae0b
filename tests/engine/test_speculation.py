"""Speculative decoding wired end to end: proposals, verify pricing, acceptance, KV slots."""

from __future__ import annotations

import pytest

from sim import simulate
from tests.conftest import make_config

LONG = {"name": "synthetic", "num_requests": 40, "rate_rps": 4.0, "input_tokens": 128,
        "output_tokens": 1500}
COST = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5}


def _run(speculation=None, workload=LONG, cost=COST, **kw):
    overrides = {}
    if speculation is not None:
        overrides["cluster__pools[0]__speculation"] = speculation
    cfg = make_config(workload=workload, cost=cost, num_blocks=20_000, **overrides, **kw)
    return simulate(cfg)


def test_mean_emitted_per_step_matches_the_geometric_formula():
    alpha, k = 0.8, 4
    s = _run({"name": "fixed", "k": k, "acceptance_rate": alpha}).summary
    expected = (1 - alpha ** (k + 1)) / (1 - alpha)
    assert s["spec_mean_proposed_tokens"] == k
    assert s["spec_mean_emitted_per_step"] == pytest.approx(expected, rel=0.01)
    # accepted / proposed of a truncated geometric run: sum_{j=1..k} a^j / k
    assert s["spec_acceptance_rate"] == pytest.approx(sum(alpha ** j for j in range(1, k + 1)) / k, rel=0.01)
    assert s["num_completed"] == 40


def test_speculation_cuts_tpot_by_the_tokens_per_step():
    base = _run().summary
    spec = _run({"name": "fixed", "k": 4, "acceptance_rate": 0.8}).summary
    assert spec["tpot_mean_s"] < base["tpot_mean_s"] / 2.5
    assert spec["num_completed"] == base["num_completed"]


def test_acceptance_zero_model_free_changes_nothing_but_costs_nothing():
    """Model-free drafting with nothing accepted emits one token per step at the same cost
    (the constant cost model charges nothing per verify token here)."""
    base = _run()
    spec = _run({"name": "fixed", "k": 4, "acceptance_rate": 0.0})
    assert spec.summary["spec_mean_emitted_per_step"] == 1.0
    cols = ["first_token_s", "finish_s", "num_output_tokens"]
    assert (spec.requests[cols] == base.requests[cols]).all().all()


def test_acceptance_zero_with_a_draft_model_is_slower_by_the_draft_cost():
    """One request at a time: every decode step pays k draft passes (the draft model priced
    by the same constant cost model: step_s each) on top of the verify pass."""
    one = {"name": "synthetic", "num_requests": 5, "rate_rps": 0.05, "input_tokens": 64, "output_tokens": 200}
    k = 3
    base = _run(workload=one).requests.iloc[0]
    spec = _run({"name": "fixed", "k": k, "acceptance_rate": 0.0, "draft_model": "Llama-3.2-1B"},
                workload=one).requests.iloc[0]
    decode_steps = base["num_output_tokens"] - 1
    slower = (spec["finish_s"] - spec["first_token_s"]) - (base["finish_s"] - base["first_token_s"])
    assert slower == pytest.approx(decode_steps * k * COST["step_s"], rel=1e-9)


def test_analytic_draft_model_costs_less_than_the_target():
    hw = {"cluster__pools[0]__hardware": {"device": "H100-SXM", "model": "Llama-3-8B"}}
    one = {"name": "synthetic", "num_requests": 5, "rate_rps": 0.05, "input_tokens": 64, "output_tokens": 200}
    analytic = {"name": "analytic"}
    base = _run(workload=one, cost=analytic, **hw).summary
    spec = _run({"name": "fixed", "k": 1, "acceptance_rate": 0.0, "draft_model": "Llama-3.2-1B"},
                workload=one, cost=analytic, **hw).summary
    extra = spec["tpot_mean_s"] - base["tpot_mean_s"]
    assert 0 < extra < 0.5 * base["tpot_mean_s"]


def test_rejected_slots_are_released_and_runs_repeat():
    spec = {"name": "fixed", "k": 6, "acceptance_rate": 0.5}
    a = _run(spec, num_replicas=2, router="least_outstanding")
    b = _run(spec, num_replicas=2, router="least_outstanding")
    assert a.requests.equals(b.requests)
    assert a.summary["num_completed"] == 40


def test_unknown_draft_model_is_a_config_error():
    from sim.errors import ConfigError

    with pytest.raises(ConfigError, match="draft_model"):
        _run({"name": "fixed", "draft_model": "No-Such-Model"})
