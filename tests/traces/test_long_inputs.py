"""PecSched's long-input injection and the short-first priority transform."""

from __future__ import annotations

import numpy as np

from sim import simulate

AZURE = "traces/data/azure_llm_2023_conv.csv"


def _frame(transforms, seed=0):
    cfg = {"seed": seed, "workload": {"name": "trace", "path": AZURE, "max_requests": 2000,
                                      "transforms": [{"name": "window", "start_s": 0, "duration_s": 400}, *transforms]},
           "cluster": {"pools": [{"cost_model": {"name": "constant", "step_s": 0.001,
                                                 "kv_capacity_tokens": 2_000_000}}]},
           "engine": {"progress": False}}
    return simulate(cfg)


def test_top_five_percent_become_long_and_seeded():
    base = _frame([]).requests
    res = _frame([{"name": "inject_long_inputs"}])
    df = res.requests
    long = df["input_tokens"] >= 100_000
    assert long.sum() == round(0.05 * len(df))
    assert df.loc[long, "input_tokens"].max() <= 500_000
    # the replaced ones are the longest originals
    cutoff = np.sort(base["input_tokens"].to_numpy())[-long.sum()]
    assert (base.loc[long, "input_tokens"] >= cutoff).all()
    assert res.summary["workload_num_long_injected"] == long.sum()
    again = _frame([{"name": "inject_long_inputs"}]).requests
    assert (again["input_tokens"] == df["input_tokens"]).all()


def test_priority_by_length():
    df = _frame([{"name": "priority_by_length", "long_input_tokens": 3000}]).requests
    assert ((df["input_tokens"] > 3000) == (df["priority"] == 1)).all()
