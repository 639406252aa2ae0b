"""Queueing-law checks: M/D/1 mean wait and Little's law on the run's time series."""

from __future__ import annotations

import numpy as np
import pytest

from sim import simulate
from tests.conftest import make_config


def md1_wait_s(rate: float, service_s: float) -> float:
    """Mean queueing delay of an M/D/1 queue: R D^2 / (2 (1 - R D))."""
    return rate * service_s**2 / (2 * (1 - rate * service_s))


@pytest.mark.parametrize("utilisation", [0.5, 0.8])
def test_md1_mean_queueing_delay(utilisation):
    step_s, outputs = 0.01, 4               # service = 4 iterations (prefill + 3 decodes)
    service_s = step_s * outputs
    rate = utilisation / service_s
    n = 60_000 if utilisation == 0.5 else 150_000
    waits = []
    for seed in range(2):
        cfg = make_config(
            scheduler={"name": "vllm", "max_num_seqs": 1},
            cost={"name": "constant", "step_s": step_s},
            workload={"name": "synthetic", "num_requests": n, "rate_rps": rate,
                      "input_tokens": 32, "output_tokens": outputs},
            seed=seed,
        )
        result = simulate(cfg)
        assert result.summary["num_completed"] == n
        waits.append(result.requests["queueing_s"].mean())
    expected = md1_wait_s(rate, service_s)
    assert np.mean(waits) == pytest.approx(expected, rel=0.05)


def test_littles_law_on_time_series():
    cfg = make_config(
        scheduler={"name": "sarathi"},
        cost={"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-5},
        workload={"name": "synthetic", "num_requests": 3000, "rate_rps": 30.0,
                  "input_tokens": 100, "input_tokens_max": 400, "output_tokens": 10, "output_tokens_max": 60},
        output={"record_steps": True},
    )
    result = simulate(cfg)
    df, steps = result.requests, result.steps
    # time-average number in system, from the iteration records (idle time counts as zero)
    horizon = df["finish_s"].max() - df["arrival_s"].min()
    in_system = ((steps["num_waiting"] + steps["num_running"]) * steps["step_s"]).sum() / horizon
    arrival_rate = len(df) / horizon
    mean_time_in_system = df["e2e_s"].mean()
    assert in_system == pytest.approx(arrival_rate * mean_time_in_system, rel=0.05)
