"""Step plans: a layer range (layered prefill) parks after its last layer and resumes later,
paying exactly the rest; cut and hold plans are covered by the PecSched and strict-priority tests."""

from __future__ import annotations

import pytest

from policies.schedulers.vllm_v0 import VllmV0Scheduler
from sim import simulate
from sim.registry import SCHEDULERS
from tests.conftest import make_config


class HalfLayerPrefill(VllmV0Scheduler):
    """vLLM v0, but every new prefill plan computes the first half of the layers, parks, and
    finishes the second half in a later iteration."""

    def schedule(self, rep):
        plan = super().schedule(rep)
        if plan.prefill and not plan.decode:
            plan.stop_at_layer = 16
        return plan


@pytest.fixture
def half_layer():
    SCHEDULERS.register("test_half_layer_prefill")(HalfLayerPrefill)
    yield "test_half_layer_prefill"
    SCHEDULERS._entries.pop("test_half_layer_prefill")


def test_layer_range_costs_the_same_in_two_halves(half_layer):
    one = {"name": "synthetic", "num_requests": 6, "rate_rps": 0.2, "input_tokens": 800, "output_tokens": 20}
    cost = {"name": "constant", "step_s": 0.02, "per_prefill_token_s": 1e-4}
    base = simulate(make_config(scheduler="vllm", workload=one, cost=cost)).requests
    split = simulate(make_config(scheduler=half_layer, workload=one, cost=cost,
                                 output={"record_steps": True}))
    assert split.requests["ttft_s"].to_numpy() == pytest.approx(base["ttft_s"].to_numpy(), rel=1e-12)
    steps = split.steps
    halves = steps[steps["prefill_tokens"] > 0]
    assert len(halves) == 2 * 6
    full = 0.02 + 800 * 1e-4
    assert halves["step_s"].to_numpy() == pytest.approx([full / 2] * 12, rel=1e-12)
