"""Synthetic generators: seeded, reproducible, and matching their parameters."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import ConfigError
from sim.registry import WORKLOADS
from sim.schema import parse
from tests.traces.conftest import make_workload, run
from traces.arrivals import ARRIVALS
from traces.lengths import LENGTHS


def _gaps(arrival: dict, n: int, seed: int = 0) -> np.ndarray:
    t = ARRIVALS.get(arrival["name"])(ARRIVALS.get(arrival["name"]).Params(
        **{k: v for k, v in arrival.items() if k != "name"})).times(np.random.default_rng(seed), n)
    return np.diff(t)


def test_registered_names():
    assert {"trace", "synthetic", "sessions", "agentic", "closed_loop"} <= set(WORKLOADS.names())
    assert set(ARRIVALS.names()) == {"poisson", "gamma", "mmpp", "diurnal", "all_at_once", "phases"}
    assert set(LENGTHS.names()) == {"fixed", "uniform", "lognormal", "zipf", "reasoning_cot"}


def test_legacy_synthetic_draws_are_unchanged():
    """The flat keys reproduce the original generator exactly (golden numbers elsewhere)."""
    spec = {"name": "synthetic", "num_requests": 50, "rate_rps": 5.0, "input_tokens": 10,
            "input_tokens_max": 100, "output_tokens": 3}
    rng = np.random.default_rng(11)
    gaps = rng.exponential(1 / 5.0, size=50)
    arrivals = np.cumsum(gaps) - gaps[0]
    n_in = rng.integers(10, 101, size=50)
    reqs = run(spec, 11)
    assert [r.arrival_s for r in reqs] == arrivals.tolist()
    assert [r.input_tokens for r in reqs] == n_in.tolist()
    assert {r.output_tokens for r in reqs} == {3}


def test_poisson_mean_rate_within_sampling_error():
    n, rate = 20000, 8.0
    gaps = _gaps({"name": "poisson", "rate_rps": rate}, n)
    # The mean of n exponential gaps has relative standard error 1/sqrt(n): allow 4 sigma.
    assert 1 / gaps.mean() == pytest.approx(rate, rel=4 / np.sqrt(n))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_cv_within_sampling_error(cv):
    n, rate = 50000, 3.0
    gaps = _gaps({"name": "gamma", "rate_rps": rate, "cv": cv}, n, seed=2)
    assert 1 / gaps.mean() == pytest.approx(rate, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.08)


def test_mmpp_diurnal_and_static():
    on_off = {"name": "mmpp", "rate_on_rps": 20, "rate_off_rps": 1, "mean_on_s": 5, "mean_off_s": 15}
    gaps = _gaps(on_off, 20000)
    expected_rate = (20 * 5 + 1 * 15) / 20
    assert 1 / gaps.mean() == pytest.approx(expected_rate, rel=0.15)
    assert gaps.std() / gaps.mean() > 1.5  # bursty
    t = np.cumsum(_gaps({"name": "diurnal", "mean_rate_rps": 10, "amplitude": 0.8, "period_s": 100}, 20000))
    phase = t % 100
    peak = np.sum((phase < 25) | (phase >= 75))
    assert peak / len(t) > 0.65  # most arrivals near the peak at t = 0 (mod 100)
    assert np.all(_gaps({"name": "all_at_once"}, 10) == 0)


def test_phases_step_the_rate():
    proc = ARRIVALS.get("phases")
    p = proc.Params(rates_rps=[2.0, 20.0, 2.0], durations_s=[50.0, 50.0, 50.0])
    t = proc(p).times(np.random.default_rng(0), 4000)
    assert t[0] == 0 and np.all(np.diff(t) >= 0)
    counts = np.histogram(t, bins=[0, 50, 100, 150])[0]
    assert counts / 50 == pytest.approx([2.0, 20.0, 2.0], rel=0.2)
    assert len(t[t >= 150]) / (t[-1] - 150) == pytest.approx(2.0, rel=0.2)  # the last rate goes on
    cycle = proc(proc.Params(rates_rps=[0.0, 10.0], durations_s=[10.0, 10.0], repeat=True))
    t = cycle.times(np.random.default_rng(1), 2000)
    assert np.mean((t % 20.0) < 10.0) > 0.97  # silent first phase cut off: bursts every 20 s from 0
    with pytest.raises(ConfigError, match="same"):
        parse(proc.Params, {"rates_rps": [1.0], "durations_s": [1.0, 2.0]})


def test_iter_times_streams_like_times():
    spec = ARRIVALS.get("gamma")
    proc = spec(spec.Params(rate_rps=2.0, cv=2.0))
    it = proc.iter_times(np.random.default_rng(0))
    times = [next(it) for _ in range(20000)]
    assert times[0] == 0 and all(a <= b for a, b in zip(times, times[1:], strict=False))
    assert len(times) / times[-1] == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("lengths,check", [
    ({"input": {"name": "fixed", "tokens": 7}, "output": {"name": "uniform", "min_tokens": 2, "max_tokens": 4}},
     lambda i, o: set(i) == {7} and set(o) == {2, 3, 4}),
    ({"input": {"name": "lognormal", "median_tokens": 500, "sigma": 0.5}, "output": {"name": "fixed", "tokens": 1}},
     lambda i, o: abs(np.median(i) - 500) < 25),
    ({"input": {"name": "zipf", "a": 2.0, "scale_tokens": 10, "max_tokens": 1000},
      "output": {"name": "fixed", "tokens": 1}},
     lambda i, o: np.mean(np.array(i) == 10) > 0.55 and max(i) <= 1000),
    ({"file": "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv"},
     lambda i, o: 1500 < np.median(i) < 2000 and max(o) <= 1024),
])
def test_length_distributions(lengths, check):
    reqs = run({"name": "synthetic", "num_requests": 3000, "lengths": lengths})
    assert check([r.input_tokens for r in reqs], [r.output_tokens for r in reqs])


@pytest.mark.parametrize("spec", [
    {"name": "synthetic", "num_requests": 300, "arrival": {"name": "mmpp"},
     "lengths": {"input": {"name": "zipf"}, "output": {"name": "lognormal"}}},
    {"name": "synthetic", "num_requests": 300, "arrival": {"name": "diurnal", "period_s": 60}},
    {"name": "sessions", "num_sessions": 40, "turns_max": 5},
    {"name": "trace", "path": "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv",
     "arrival": {"name": "gamma", "rate_rps": 2, "cv": 3}, "max_requests": 300},
])
def test_seeded_and_reproducible(spec):
    def key(reqs):
        return [(r.id, r.arrival_s, r.input_tokens, r.output_tokens, r.prefix_hashes) for r in reqs]

    assert key(run(spec, 5)) == key(run(spec, 5))
    assert key(run(spec, 5)) != key(run(spec, 6))
    reqs = run(spec, 5)
    assert [r.id for r in reqs] == list(range(len(reqs)))
    assert reqs[0].arrival_s == 0 and all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:], strict=False))


def test_sessions_share_prefixes():
    w = make_workload({"name": "sessions", "num_sessions": 30, "turns": 3, "turns_max": 6, "think_time_s": 5,
                       "system_prompt_tokens": 64, "prefix_block_tokens": 16, "input_tokens": 40, "output_tokens": 50})
    reqs = list(w.requests(np.random.default_rng(0)))
    by_session: dict[int, list] = {}
    for r in reqs:
        by_session.setdefault(r.session, []).append(r)
    assert len(by_session) == 30
    for turns in by_session.values():
        for prev, nxt in zip(turns, turns[1:], strict=False):
            # the next prompt = previous prompt + answer + 40 new tokens
            assert nxt.input_tokens == prev.input_tokens + prev.output_tokens + 40
            full = prev.input_tokens // 16
            assert nxt.prefix_hashes[:full] == prev.prefix_hashes[:full]
            assert nxt.prefix_hashes[full] != prev.prefix_hashes[min(full, len(prev.prefix_hashes) - 1)] or \
                prev.input_tokens % 16 == 0
        assert turns[0].prefix_hashes[:4] == reqs[0].prefix_hashes[:4]  # shared system prompt
    firsts = [t[0] for t in by_session.values()]
    assert firsts[0].prefix_hashes[4] != firsts[1].prefix_hashes[4]  # sessions differ after it
    assert w.describe()["workload_num_sessions"] == 30
