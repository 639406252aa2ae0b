"""Issue 19, defect 4: a run cut at engine.max_time_s accounts for every request of its workload."""

from __future__ import annotations

import pytest

from sim import simulate
from sim.tools.output import format_summary
from tests.conftest import make_config

KEYS = ("num_completed", "num_rejected", "num_unfinished", "num_not_arrived")


@pytest.mark.parametrize("max_time_s", [0.05, 0.5, 3.0])
def test_a_cut_run_reports_the_cut_and_every_request(max_time_s):
    s = simulate(make_config(engine={"progress": False, "max_time_s": max_time_s})).summary
    assert s["truncated"] is True
    assert s["num_workload_requests"] == 200
    assert sum(s[k] for k in KEYS) == 200
    assert s["num_not_arrived"] > 0 and s["num_requests"] == 200 - s["num_not_arrived"]
    assert "stopped at engine.max_time_s: of 200 requests" in format_summary(s)


def test_a_run_that_ends_before_its_limit_is_not_truncated():
    s = simulate(make_config(engine={"progress": False, "max_time_s": 1e6})).summary
    assert (s["truncated"], s["num_not_arrived"], s["num_workload_requests"]) == (False, 0, 200)
    assert s["num_completed"] == 200


def test_a_cut_trace_run_counts_the_rest_of_the_stream(tmp_path):
    rows = "".join(f"{i * 0.1:.1f},16,4\n" for i in range(500))
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n" + rows)
    cfg = make_config(workload={"name": "trace", "path": str(path)}, engine={"progress": False, "max_time_s": 10.0})
    s = simulate(cfg).summary
    assert s["truncated"] and s["num_workload_requests"] == 500
    assert sum(s[k] for k in KEYS) == 500
    assert s["workload_num_requests"] == 500  # the stream was drained, not simulated


def test_a_cut_closed_loop_run_adds_up():
    cfg = make_config(workload={"name": "closed_loop", "num_users": 4, "num_requests": 50, "think_time_s": 1.0},
                      engine={"progress": False, "max_time_s": 2.0})
    s = simulate(cfg).summary
    assert s["truncated"]
    assert sum(s[k] for k in KEYS) == s["num_workload_requests"]


def test_runs_without_a_limit_keep_their_summary_keys():
    s = simulate(make_config()).summary
    assert "truncated" not in s and "num_not_arrived" not in s


def test_a_request_beyond_any_context_is_a_named_error():
    from sim.errors import ConfigError

    workload = {"name": "synthetic", "num_requests": 3, "input_tokens": 16, "output_tokens": 2,
                "output_tokens_max": 10**12}
    with pytest.raises(ConfigError, match=r"workload: request 0: .* output tokens; at most 16,777,216 each"):
        simulate(make_config(workload=workload, kv={"block_size": 10**12}))
