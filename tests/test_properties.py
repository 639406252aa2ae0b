"""Invariants over random small workloads, for every registered scheduler and router."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import simulate
from sim.engine.replica import Replica
from sim.registry import ROUTERS, SCHEDULERS
from tests.conftest import make_config

SCHEDULER_NAMES = SCHEDULERS.names()
ROUTER_NAMES = ROUTERS.names()


def _run_checked(cfg):
    """Run with a KV invariant check after every iteration; return (result, replicas)."""
    seen = []
    original = Replica._account

    def checked(self, batch, step_s):
        self.kv.check_invariants()
        if self not in seen:
            seen.append(self)
        return original(self, batch, step_s)

    Replica._account = checked
    try:
        result = simulate(cfg)
    finally:
        Replica._account = original
    return result, seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheduler=st.sampled_from(SCHEDULER_NAMES),
    router=st.sampled_from(ROUTER_NAMES),
    num_requests=st.integers(1, 60),
    rate=st.floats(1.0, 200.0),
    max_input=st.integers(1, 900),
    max_output=st.integers(1, 80),
    num_blocks=st.integers(8, 200),
    replicas=st.integers(1, 3),
    swap=st.booleans(),
    fast=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_request_accounted_for(scheduler, router, num_requests, rate, max_input, max_output,
                                     num_blocks, replicas, swap, fast, seed):
    cfg = make_config(
        scheduler=scheduler, router=router, num_replicas=replicas, num_blocks=num_blocks, seed=seed,
        workload={"name": "synthetic", "num_requests": num_requests, "rate_rps": rate,
                  "input_tokens": 1, "input_tokens_max": max_input, "output_tokens": 1,
                  "output_tokens_max": max_output},
        kv={"preemption_mode": "swap" if swap and SCHEDULERS.get(scheduler).supports_swap else "recompute",
            "swap_space_gb": 0.001},
        engine={"fast_forward": fast, "progress": False},
    )
    result, replicas_seen = _run_checked(cfg)
    df = result.requests
    # every request appears exactly once, finished or rejected with a reason
    assert sorted(df["id"]) == list(range(num_requests))
    assert set(df["state"]) <= {"finished", "rejected"}
    rejected = df[df["state"] == "rejected"]
    assert rejected["reject_reason"].notna().all()
    done = df[df["state"] == "finished"]
    # causality and token counts
    assert (done["arrival_s"] <= done["first_token_s"]).all()
    assert (done["first_token_s"] <= done["finish_s"]).all()
    assert (done["num_output_tokens"] == done["output_tokens"]).all()
    # a request rejected for capacity really could not fit
    cap = num_blocks * 16
    too_big = df["input_tokens"] + df["output_tokens"] > cap
    assert (df.loc[too_big, "state"] == "rejected").all()
    # all KV is released at the end
    for rep in replicas_seen:
        rep.kv.check_invariants()
        assert rep.kv.num_used == 0
        assert rep.kv.num_host_used == 0


def test_request_that_never_fits_is_rejected_and_counted():
    cfg = make_config(
        num_blocks=10,  # 160 tokens of KV
        workload={"name": "synthetic", "num_requests": 5, "rate_rps": 1.0, "input_tokens": 500, "output_tokens": 5},
    )
    result = simulate(cfg)
    assert result.summary["num_rejected"] == 5
    assert result.summary["rejected_by_reason"] == {"exceeds_kv_capacity": 5}
    assert (result.requests["reject_reason"] == "exceeds_kv_capacity").all()


def test_prompt_longer_than_vllm_budget_is_rejected():
    cfg = make_config(
        scheduler={"name": "vllm", "max_num_batched_tokens": 256},
        workload={"name": "synthetic", "num_requests": 3, "rate_rps": 1.0, "input_tokens": 300, "output_tokens": 5},
    )
    result = simulate(cfg)
    assert set(result.requests["reject_reason"]) == {"prompt_exceeds_max_num_batched_tokens"}


def test_itl_samples_match_token_counts():
    cfg = make_config(scheduler="sarathi")
    result = simulate(cfg)
    df = result.requests
    expected_gaps = int((df["num_output_tokens"] - 1).clip(lower=0).sum())
    rec_cfg = make_config(scheduler="sarathi", output={"record_token_times": True})
    timed = simulate(rec_cfg)
    assert sum(len(t) - 1 for t in timed.token_times.values()) == expected_gaps
    pd.testing.assert_frame_equal(df, timed.requests)
    # per-request ITL max equals the largest gap of its token times
    for rid, times in list(timed.token_times.items())[:50]:
        if len(times) > 1:
            assert timed.requests.loc[rid, "itl_max_s"] == np.max(np.diff(times))
