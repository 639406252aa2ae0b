"""Fairness metrics on hand-made request rows (sim/engine/fairness.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.engine.fairness import (
    backlogged_difference,
    client_latency,
    fairness_summary,
    jain_index,
    service_difference,
    service_over_time,
)


def _rows(spec):
    """spec: (client, arrival, first scheduled, first token, finish, input, output)."""
    df = pd.DataFrame(spec, columns=["client", "arrival_s", "first_scheduled_s", "first_token_s", "finish_s",
                                     "input_tokens", "num_output_tokens"])
    df["output_tokens"] = df["num_output_tokens"]
    df["state"] = "finished"
    df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
    df["e2e_s"] = df["finish_s"] - df["arrival_s"]
    return df


def test_service_is_spread_between_first_token_and_finish():
    df = _rows([("a", 0, 0, 1, 3, 10, 5), ("b", 0, 0, 2, 2, 4, 1)])
    acc = service_over_time(df, np.array([0.5, 2.0, 5.0]))
    assert acc.loc[0.5].tolist() == [0.0, 0.0]
    assert acc.loc[2.0, "a"] == pytest.approx(20 * 0.5) and acc.loc[2.0, "b"] == 6.0  # b: one point
    assert acc.loc[5.0].tolist() == [20.0, 6.0]
    weighted = service_over_time(df, np.array([5.0]), weights={"a": 2.0})
    assert weighted.loc[5.0, "a"] == 10.0


def test_differences_vanish_for_identical_clients_and_grow_for_a_starved_one():
    same = _rows([(c, t, t, t + 0.5, t + 1.5, 100, 20) for t in range(0, 100, 2) for c in ("a", "b")])
    assert np.allclose(service_difference(same, window_s=10, warmup_s=5), 0)
    # b's requests wait behind a's (backlogged) and are served only at the end
    starved = _rows([("a", t, t + 1.9, t + 2.0, t + 3.0, 100, 20) for t in range(0, 100, 2)]
                    + [("b", t, 95.0, 96.0, 97.0, 100, 20) for t in range(0, 90, 2)])
    diff = service_difference(starved, window_s=10, warmup_s=5)
    assert diff.max() > 10 and (backlogged_difference(starved, window_s=10, warmup_s=5) > 10).any()


def test_jain_latency_and_summary_keys():
    assert jain_index([1, 1, 1, 1]) == 1.0 and jain_index([1, 0, 0, 0]) == 0.25
    df = _rows([("a", 0, 0, 1, 2, 10, 5), ("b", 0, 0, 3, 4, 10, 5)])
    lat = client_latency(df)
    assert lat.loc["b", "ttft_mean_s"] == 3.0 and lat.loc["a", "num_finished"] == 1
    keys = fairness_summary(df)
    assert keys["fair_num_clients"] == 2 and keys["fair_jain_index"] == 1.0
    assert fairness_summary(df.assign(client="a")) == {}  # one client: no fair_* keys


def test_a_subnormal_span_gives_no_ticks_instead_of_overflowing():
    # the last arrival at 5e-320 s scales the paper's 60 s window to a subnormal one: rates would
    # overflow to inf (found by tests/test_vtc_bound.py's hypothesis search)
    df = _rows([("a", 0.0, 0.0, 1.0, 2.0, 10, 5), ("b", 5e-320, 0.0, 3.0, 4.0, 10, 5)])
    with np.errstate(all="raise"):
        keys = fairness_summary(df)
    assert np.isnan(keys["fair_service_diff_max"]) and np.isnan(keys["fair_backlogged_diff_max"])
    assert keys["fair_jain_index"] == 1.0
