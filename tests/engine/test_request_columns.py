"""The summary from the recorder's columns (no pandas) equals the summary from the frame, key for
key, in the same order, bit for bit; and ``Result.requests`` is still the frame."""

from __future__ import annotations

import math
import pickle

import pandas as pd
import pytest

import sim.api as api
from sim.config import from_dict


def _synthetic(**extra) -> dict:
    data = {
        "seed": 3,
        "workload": {"name": "synthetic", "num_requests": 300, "rate_rps": 40.0,
                     "input_tokens": 300, "input_tokens_max": 6000, "output_tokens": 20, "output_tokens_max": 400},
        "cluster": {"router": "least_outstanding",
                    "pools": [{"name": "main", "num_replicas": 2,
                               "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
                               "cost_model": "analytic", "scheduler": "vllm_v1",
                               "kv": {"name": "paged", "num_blocks": 300}}]},
        "slo": {"ttft_s": 0.5, "tpot_s": 0.03},
        "engine": {"progress": False},
    }
    data.update(extra)
    return data


def _agentic() -> dict:
    data = _synthetic()
    data["workload"] = {"name": "agentic", "num_jobs": 20, "rate_rps": 2.0, "deadline_s": 30.0,
                        "ttft_slo_s": 0.4}
    return data


def _speculating() -> dict:
    data = _synthetic()
    data["cluster"]["pools"][0]["speculation"] = {"name": "fixed", "k": 3, "draft_model": "Llama-3.2-1B"}
    return data


def _clients(**engine) -> dict:
    data = _synthetic(engine={"progress": False, **engine})
    data["workload"]["transforms"] = [{"name": "assign_clients", "num_clients": 5, "rate_dist": "lognormal"}]
    data["cluster"]["router"] = "vtc"
    data["cluster"]["pools"][0]["scheduler"] = "vtc"
    return data


CASES = {
    "rejections": _synthetic(),                                              # some never fit the KV cache
    "truncated": _synthetic(engine={"progress": False, "max_time_s": 3.0}),  # unfinished at the cut
    "none_finished": _synthetic(engine={"progress": False, "max_time_s": 0.05}),  # no run window at all
    "per_request_slos": _agentic(),                                          # deadlines and TTFT limits
    "speculation": _speculating(),                   # per-request speculation columns added to the frame
    "clients": _clients(),                                     # fair_* keys from the columns (FairRows)
    "clients_truncated": _clients(max_time_s=3.0),             # ... with unscheduled and unfinished rows
}


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), key
        else:
            assert x == y and type(x) is type(y), (key, x, y)


@pytest.mark.parametrize("case", sorted(CASES))
def test_column_summary_equals_frame_summary(case, monkeypatch):
    data = CASES[case]
    fast = api.simulate(from_dict(data))
    monkeypatch.setattr(api, "needs_frame", lambda cluster: True)
    slow = api.simulate(from_dict(data))
    fast.summary.pop("wall_s")
    slow.summary.pop("wall_s")
    _same(fast.summary, slow.summary)
    pd.testing.assert_frame_equal(fast.requests, slow.requests, check_exact=True)
    pd.testing.assert_frame_equal(fast.visits, slow.visits, check_exact=True)
    if case == "rejections":
        assert fast.summary["num_rejected"] > 0
    if case == "truncated":
        assert fast.summary["num_unfinished"] > 0
    if case == "speculation":
        assert fast.requests["spec_proposed_tokens"].sum() > 0
    if case == "clients":
        assert fast.summary["fair_num_clients"] == 5 and fast.summary["fair_service_diff_max"] > 0
    if case == "clients_truncated":
        assert fast.summary["fair_num_clients"] == 5 and fast.summary["num_unfinished"] > 0


def test_frames_are_built_when_read():
    res = api.simulate(from_dict(CASES["rejections"]))
    assert callable(res._frames["requests"])
    df = res.requests
    assert isinstance(df, pd.DataFrame) and len(df) == res.summary["num_requests"]
    assert res.requests is df  # built once
    back = pickle.loads(pickle.dumps(res))  # a sweep worker sends results back: frames built first
    assert not any(callable(v) for v in back._frames.values())
    pd.testing.assert_frame_equal(back.requests, df, check_exact=True)
    pd.testing.assert_frame_equal(back.visits, res.visits, check_exact=True)
    res.requests = df.head(3)
    assert len(res.requests) == 3
