"""Same config and seed -> identical frames; fast path on and off -> identical frames."""

from __future__ import annotations

import pandas as pd
import pytest

from sim import simulate
from sim.registry import ROUTERS, SCHEDULERS
from tests.conftest import make_config

WORKLOADS = {
    "light": {"name": "synthetic", "num_requests": 300, "rate_rps": 10.0, "input_tokens": 32,
              "input_tokens_max": 600, "output_tokens": 1, "output_tokens_max": 200},
    "overload": {"name": "synthetic", "num_requests": 300, "rate_rps": 200.0, "input_tokens": 32,
                 "input_tokens_max": 900, "output_tokens": 20, "output_tokens_max": 300},
}


@pytest.mark.parametrize("scheduler", SCHEDULERS.names())
@pytest.mark.parametrize("router", ROUTERS.names())
def test_same_seed_same_frames(scheduler, router):
    kwargs = dict(scheduler=scheduler, router=router, num_replicas=2, seed=7, workload=WORKLOADS["overload"],
                  num_blocks=400)
    a = simulate(make_config(**kwargs)).requests
    b = simulate(make_config(**kwargs)).requests
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("scheduler", SCHEDULERS.names())
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("kv", [{}, {"preemption_mode": "swap"}, {"num_blocks": 150}])
def test_fast_path_equals_stepping(scheduler, workload, kv):
    kv = dict(kv)
    blocks = kv.pop("num_blocks", 600)
    common = dict(scheduler=scheduler, router="least_outstanding", num_replicas=2, seed=3,
                  workload=WORKLOADS[workload], num_blocks=blocks, kv=kv,
                  cost={"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5,
                        "per_decode_token_s": 1e-4})
    fast = simulate(make_config(**common, engine={"fast_forward": True, "progress": False}))
    slow = simulate(make_config(**common, engine={"fast_forward": False, "progress": False}))
    pd.testing.assert_frame_equal(fast.requests, slow.requests)
    assert fast.summary["num_steps"] == slow.summary["num_steps"]
    assert fast.summary["itl_p99_s"] == slow.summary["itl_p99_s"]
    assert fast.summary["num_events"] <= slow.summary["num_events"]


def test_fast_path_steps_log_matches():
    common = dict(scheduler="vllm_v1", workload=WORKLOADS["light"], output={"record_steps": True})
    fast = simulate(make_config(**common, engine={"fast_forward": True, "progress": False}))
    slow = simulate(make_config(**common, engine={"fast_forward": False, "progress": False}))
    pd.testing.assert_frame_equal(fast.steps, slow.steps)
