"""Multi-tenant workloads: a heavy hitter on top of a trace, per-client rates from a distribution."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.traces.conftest import run

BASE = {"name": "synthetic", "num_requests": 4000, "rate_rps": 10.0, "input_tokens": 100,
        "input_tokens_max": 400, "output_tokens": 10, "output_tokens_max": 100}
CLIENTS = {"name": "assign_clients", "num_clients": 8}


def test_heavy_hitter_adds_a_multiple_of_one_clients_rate_and_keeps_order():
    reqs = run({**BASE, "transforms": [CLIENTS, {"name": "heavy_hitter", "rate_multiple": 4, "num_other_clients": 8}]})
    counts = Counter(r.client for r in reqs)
    assert counts["heavy"] / (BASE["num_requests"] / 8) == pytest.approx(4, rel=0.1)
    arrivals = [r.arrival_s for r in reqs]
    assert arrivals == sorted(arrivals) and [r.id for r in reqs] == list(range(len(reqs)))
    assert sum(v for k, v in counts.items() if k != "heavy") == BASE["num_requests"]


def test_heavy_hitter_bursts_only_in_on_periods_with_the_same_mean():
    hh = {"name": "heavy_hitter", "rate_multiple": 2, "num_other_clients": 4, "burst_on_s": 10, "burst_off_s": 30}
    reqs = run({**BASE, "transforms": [hh]})
    heavy = np.array([r.arrival_s for r in reqs if r.client == "heavy"])
    assert ((heavy % 40) < 10).all()
    assert len(heavy) / (BASE["num_requests"] / 4) == pytest.approx(2, rel=0.15)


def test_assign_clients_rates_from_a_distribution_and_a_heavy_factor():
    spec = {**BASE, "transforms": [{**CLIENTS, "rate_dist": "lognormal", "rate_sigma": 1.5}]}
    lognormal = run(spec)
    shares = np.array(sorted(Counter(r.client for r in lognormal).values()))
    assert shares[-1] > 3 * shares[0]  # skewed
    assert [r.client for r in lognormal] == [r.client for r in run(spec)]  # seeded
    heavy = Counter(r.client for r in run({**BASE, "transforms": [{**CLIENTS, "heavy_factor": 5.0}]}))
    others = np.mean([v for k, v in heavy.items() if k != "client0"])
    assert heavy["client0"] / others == pytest.approx(5, rel=0.15)
