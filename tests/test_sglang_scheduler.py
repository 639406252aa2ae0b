"""The ``sglang`` scheduler: its reservation arithmetic by hand, and its trends on small cases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from policies.schedulers.sglang import SglangParams, SglangScheduler
from sim import simulate
from sim.engine.seams import BuildContext
from tests.conftest import make_config

COST = {"name": "constant", "step_s": 0.012, "per_prefill_token_s": 5e-5, "per_decode_token_s": 1e-4}
# short prompts, outputs up to 200: 300 blocks (4,800 tokens) hold ~20 requests at their longest
PRESSURE = {"name": "synthetic", "num_requests": 300, "rate_rps": 50.0, "input_tokens": 50,
            "input_tokens_max": 200, "output_tokens": 20, "output_tokens_max": 200}


def _scheduler(**params) -> SglangScheduler:
    return SglangScheduler(SglangParams(**params), BuildContext(rng=np.random.default_rng(0)))


def _req(generated: int, prompt: int = 100) -> SimpleNamespace:
    return SimpleNamespace(num_output_tokens=generated, input_tokens=prompt)


def test_ratio_constants_are_sglang_defaults():
    s = _scheduler()
    assert s.new_token_ratio == s.init_ratio == pytest.approx(0.7)
    assert s.min_ratio == pytest.approx(0.7 * 0.14)  # 0.098
    assert s.ratio_decay == pytest.approx((0.7 - 0.098) / 600)
    assert _scheduler(schedule_conservativeness=2.0).init_ratio == 1.0  # capped at 1


def test_future_decode_estimate_by_hand():
    s = _scheduler(max_new_tokens=100)
    # (100 - 10) + (100 - 95) = 95 tokens left, x 0.7
    assert s.future_decode_tokens([_req(10), _req(95)], 0.7) == pytest.approx(66.5)
    # a request past its stated limit adds nothing (not a negative)
    assert s.future_decode_tokens([_req(120)], 0.7) == 0
    # clipped at CLIP_MAX_NEW_TOKENS: min(5000 - 100, 4096) x 0.5
    assert _scheduler(max_new_tokens=5000).future_decode_tokens([_req(100)], 0.5) == pytest.approx(2048)
    # no stated limit: the clip stands in
    assert _scheduler().future_decode_tokens([_req(96)], 1.0) == 4000


def test_admission_and_retraction_arithmetic_by_hand():
    s = _scheduler(max_new_tokens=100)
    assert s.admission_tokens(_req(0), 300, finishes_prompt=True) == 400  # prompt + min(100, clip), in full
    assert s.admission_tokens(_req(0), 300, finishes_prompt=False) == 300  # a chunk that leaves some
    # (generated 10 + 30, plus 20 decode steps x 2 kept) / (2 x 100)
    assert s.retract_ratio([_req(10), _req(30)]) == pytest.approx(0.4)
    assert s.retract_ratio([_req(90), _req(90)]) == 1.0  # at most 1


def _run(scheduler, workload=PRESSURE, num_blocks=300, **overrides):
    return simulate(make_config(scheduler=scheduler, workload=workload, cost=COST, num_blocks=num_blocks,
                                **overrides))


def test_estimate_admits_fewer_and_retracts_less_than_vllm_v1_under_kv_pressure():
    sgl = _run({"name": "sglang", "max_new_tokens": 200}).summary
    v1 = _run("vllm_v1").summary
    assert sgl["mean_batch_size"] < v1["mean_batch_size"]
    assert sgl["num_preemptions"] < v1["num_preemptions"]
    assert v1["num_preemptions"] > 0
    for s in (sgl, v1):
        assert s["num_unfinished"] == 0 and s["num_rejected"] == 0


def test_understated_max_new_tokens_retracts_and_loses_nothing():
    # every request claims 4 tokens but runs to its true length: the estimate over-admits, decode runs out
    res = _run({"name": "sglang", "max_new_tokens": 4})
    stated = _run({"name": "sglang", "max_new_tokens": 200}).summary
    assert res.summary["num_preemptions"] > stated["num_preemptions"]
    assert res.summary["num_unfinished"] == 0 and res.summary["num_rejected"] == 0
    assert len(res.requests) == PRESSURE["num_requests"]


def test_prefill_and_decode_never_share_a_step():
    res = _run({"name": "sglang", "max_new_tokens": 200}, output__record_steps=True)
    steps = res.steps
    assert (steps.prefill_tokens > 0).any() and (steps.decode_tokens > 0).any()
    assert not ((steps.prefill_tokens > 0) & (steps.decode_tokens > 0)).any()


def test_long_prompt_is_chunked_over_several_prefill_batches():
    one_long = {"name": "synthetic", "num_requests": 1, "rate_rps": 1.0, "input_tokens": 20000,
                "input_tokens_max": 20000, "output_tokens": 8, "output_tokens_max": 8}
    res = _run({"name": "sglang", "chunked_prefill_size": 8192, "max_new_tokens": 8}, workload=one_long,
               num_blocks=4000, output__record_steps=True)
    prefills = res.steps.prefill_tokens[res.steps.prefill_tokens > 0].tolist()
    assert prefills == [8192, 8192, 20000 - 2 * 8192]
    assert res.summary["num_unfinished"] == 0


def test_same_seed_same_result():
    a, b = (_run({"name": "sglang", "max_new_tokens": 50}) for _ in range(2))
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)


def test_fast_path_equals_stepping_with_retractions():
    # the ratio decays over the decode steps the replica runs on its own; retractions re-estimate it
    # (without that catch-up the two runs differ here: checked by disabling it)
    lighter = dict(PRESSURE, rate_rps=10.0)
    fast, slow = (_run({"name": "sglang", "max_new_tokens": 60}, workload=lighter, engine__fast_forward=ff)
                  for ff in (True, False))
    assert fast.summary["num_preemptions"] > 0
    assert fast.summary["num_steps"] == slow.summary["num_steps"]
    pd.testing.assert_frame_equal(fast.requests, slow.requests, check_exact=True)
