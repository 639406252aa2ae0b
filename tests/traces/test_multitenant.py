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


def test_apps_per_client_with_their_own_lengths_and_interactions_of_k_calls():
    plain = run({**BASE, "transforms": [CLIENTS]})
    reqs = run({**BASE, "transforms": [
        CLIENTS, {"name": "assign_apps", "apps": {"chat": 1, "summarize": 1}, "by": "client",
                  "length_scale": {"summarize": [3.0, 0.5]}},
        {"name": "group_interactions", "calls": 3}]})
    apps_of = {}
    for r, p in zip(reqs, plain, strict=True):
        apps_of.setdefault(r.client, set()).add(r.app)
        if r.app == "summarize":
            assert r.input_tokens == max(1, round(p.input_tokens * 3.0))
            assert r.output_tokens == max(1, round(p.output_tokens * 0.5))
        else:
            assert (r.input_tokens, r.output_tokens) == (p.input_tokens, p.output_tokens)
    assert all(len(a) == 1 for a in apps_of.values()) and len(set().union(*apps_of.values())) == 2
    calls = Counter((r.client, r.session) for r in reqs)
    assert max(calls.values()) == 3 and len({r.session for r in reqs}) == len(calls)  # one client each
    per_client = Counter(r.client for r in reqs)
    assert sum(1 for n in calls.values() if n < 3) <= len(per_client)  # only a client's last one is short
