"""Capacity as the papers measure it: the knob per workload kind, the upper bound, the
steady-state window, percentile SLOs, seeds with a confidence interval, offered vs served."""

from __future__ import annotations

import json

import pytest
import yaml

from sim.api import simulate
from sim.tools.capacity import find_capacity, rate_param
from sim.tools.capacity_slo import coerce_spec, evaluate, mean_ci95, window_bounds
from sim.tools.cli import main
from tests.conftest import make_config_dict

LENGTHS = "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv"


def _synthetic(n: int = 400, rate: float = 5.0) -> dict:
    return make_config_dict(workload={"name": "synthetic", "num_requests": n, "rate_rps": rate,
                                      "input_tokens": 256, "input_tokens_max": 1024,
                                      "output_tokens": 8, "output_tokens_max": 64},
                            cost={"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-4})


def test_knob_is_the_arrival_rate_when_an_arrival_process_replaces_timestamps():
    trace_poisson = make_config_dict(workload={"name": "trace", "path": LENGTHS,
                                               "arrival": {"name": "poisson", "rate_rps": 2}})
    assert rate_param(trace_poisson) == "workload.arrival.rate_rps"
    closed = make_config_dict(workload={"name": "closed_loop", "num_users": 4, "num_requests": 50})
    assert rate_param(closed) == "workload.num_users"


def test_closed_loop_users_are_searched_as_integers():
    data = make_config_dict(workload={"name": "closed_loop", "num_users": 2, "num_requests": 300})
    result = find_capacity(data, slo={"ttft_s": 0.05}, attainment=0.9, max_value=64)
    assert all(p.value == int(p.value) for p in result.probes)
    assert result.value is not None and result.upper is not None and result.upper - result.value == 1


def test_upper_bound_is_never_exceeded_and_is_reported(capsys, tmp_path):
    data = _synthetic(200, 1.0)
    result = find_capacity(data, slo={"ttft_s": 100.0}, max_value=6.0)
    assert result.at_bound and result.upper is None and result.value == 6.0
    assert max(p.value for p in result.probes) == 6.0
    assert max(p.offered_rps for p in result.probes) < 6.0 * 1.5
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["capacity", str(path), "--slo", "ttft=100", "--max", "6"]) == 2
    assert "STILL PASSING at the upper bound workload.rate_rps=6" in capsys.readouterr().out


def test_window_excludes_warmup_and_drain_and_flags_a_transient():
    result = simulate(_synthetic(400, 5.0))
    start, end = window_bounds(result.requests["arrival_s"].to_numpy(), 0.1, 0.1)
    w = evaluate(result, coerce_spec({"ttft_s": 0.5}), 0.9)
    inside = ((result.requests["arrival_s"] >= start) & (result.requests["arrival_s"] < end)).sum()
    assert w.num_requests == inside < 400
    assert w.offered_rps == pytest.approx(inside / (end - start))
    assert w.steady  # 64 s of window, E2E under a second
    strict = evaluate(result, coerce_spec({"ttft_s": 0.5}), 0.9, min_window_e2e=1e6)
    assert not strict.steady


def test_overload_serves_less_than_offered():
    over = evaluate(simulate(_synthetic(600, 200.0)), coerce_spec({"ttft_s": 0.5}), 0.9)
    assert over.served_rps < 0.8 * over.offered_rps and not over.passed and not over.steady


def test_seeds_give_a_mean_and_a_confidence_interval():
    result = find_capacity(_synthetic(300, 5.0), slo={"ttft_s": 0.5}, rtol=0.05, seeds=3)
    values = [s["value"] for s in result.seeds]
    assert [s["seed"] for s in result.seeds] == [0, 1, 2]
    assert result.value == pytest.approx(sum(values) / 3)
    assert result.value_ci95 == pytest.approx(mean_ci95(values)[1]) and result.value_ci95 >= 0
    assert mean_ci95([1.0, 2.0, 3.0]) == pytest.approx((2.0, 4.303 * 1.0 / 3 ** 0.5))


def test_percentile_slos_are_measured_on_the_window():
    data = _synthetic(300, 5.0)
    data["output"] = {"record_token_times": True}
    result = simulate(data)
    w = evaluate(result, coerce_spec("p99_tbt=0.5,p50_queueing=2,p90_ttft=9"), 0.9)
    assert set(w.percentiles) == {"p99_tbt", "p50_queueing", "p90_ttft"}
    assert 0.01 <= w.percentiles["p99_tbt"] <= 0.5 and w.passed
    assert not evaluate(result, coerce_spec("p99_tbt=0.001"), 0.9).passed


def test_sarathi_beats_vllm_under_a_p99_tbt_slo_from_the_cli(capsys):
    """Sarathi-Serve's capacity claim on a small case: Mistral-7B, one A100, ShareGPT4
    lengths, capacity = highest QPS with P99 TBT <= 0.1 s and median scheduling delay <= 2 s."""
    base = ["capacity", "configs/sarathi_capacity.yaml", "--slo", "p99_tbt=0.1,p50_queueing=2", "--rtol", "0.1",
            "--set", "workload.max_requests=500", "--min-window-e2e", "1", "--json"]
    caps = {}
    schedulers = {"sarathi": "{name: sarathi, chunk_size: 512}", "vllm-32": "{name: vllm, max_num_seqs: 32}",
                  "vllm-128": "{name: vllm, max_num_seqs: 128}"}
    for name, sched in schedulers.items():
        main([*base, "--set", f"cluster.pools[0].scheduler={sched}"])
        out = json.loads(capsys.readouterr().out)
        assert out["param"] == "workload.arrival.rate_rps"
        caps[name] = out["value"]
    assert caps["sarathi"] > 1.8 * max(caps["vllm-32"], caps["vllm-128"])  # against vLLM's best batch cap
