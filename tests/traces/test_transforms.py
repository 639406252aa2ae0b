"""Transforms: each one alone, composed in YAML order, and their counts in describe()."""

from __future__ import annotations

import numpy as np
import pytest

from tests.traces.conftest import make_workload, run

BASE = {"name": "synthetic", "num_requests": 2000, "rate_rps": 10.0, "input_tokens": 100,
        "input_tokens_max": 4000, "output_tokens": 10, "output_tokens_max": 1000}


def with_transforms(*transforms: dict) -> dict:
    return {**BASE, "transforms": list(transforms)}


def test_window_rebases_and_stops():
    full = run(BASE)
    part = run(with_transforms({"name": "window", "start_s": 50, "duration_s": 20}))
    expected = [r for r in full if 50 <= r.arrival_s < 70]
    assert len(part) == len(expected) > 0
    assert part[0].arrival_s == pytest.approx(expected[0].arrival_s - 50)
    assert [r.id for r in part] == list(range(len(part)))


def test_rate_scale_and_legacy_key():
    full = run(BASE)
    fast = run(with_transforms({"name": "rate_scale", "factor": 4}))
    assert fast[-1].arrival_s == pytest.approx(full[-1].arrival_s / 4)
    spec = {"name": "trace", "path": "traces/data/azure_llm_2023_code.csv", "rate_scale": 2.0, "max_requests": 100}
    reqs = run(spec)
    plain = run({**spec, "rate_scale": 1.0})
    assert len(reqs) == 100 and reqs[-1].arrival_s == pytest.approx(plain[-1].arrival_s / 2)


def test_subsample_and_max_requests():
    w = make_workload(with_transforms({"name": "subsample", "fraction": 0.25}, {"name": "max_requests", "count": 300}))
    reqs = list(w.requests(np.random.default_rng(1)))
    assert len(reqs) == 300
    assert reqs[-1].arrival_s == pytest.approx(300 / 0.25 / 10, rel=0.15)
    assert w.describe()["workload_num_subsampled_out"] > 0


def test_clip_lengths_counts():
    w = make_workload(with_transforms({"name": "clip_lengths", "max_context_tokens": 2048}))
    reqs = list(w.requests(np.random.default_rng(0)))
    over = sum(r.input_tokens + r.output_tokens > 2048 for r in run(BASE))
    assert all(r.input_tokens + r.output_tokens <= 2048 for r in reqs)
    assert w.describe()["workload_num_clipped"] == over > 0
    dropped = make_workload(with_transforms({"name": "clip_lengths", "max_input_tokens": 1000, "drop": True}))
    assert all(r.input_tokens <= 1000 for r in dropped.requests(np.random.default_rng(0)))
    assert dropped.describe()["workload_num_dropped_long"] > 0


def test_labels_clients_apps_slo_classes_priorities():
    reqs = run(with_transforms(
        {"name": "assign_apps", "apps": {"chat": 3, "code": 1}},
        {"name": "slo_classes", "by": "app", "classes": [
            {"name": "chat", "ttft_s": 0.5, "tpot_s": 0.05},
            {"name": "code", "ttft_s": 2.0, "e2e_s": 30, "priority": 1}]},
        {"name": "assign_clients", "num_clients": 4, "zipf_a": 1.0},
    ))
    apps = [r.app for r in reqs]
    assert 0.7 < apps.count("chat") / len(apps) < 0.8
    for r in reqs:
        assert r.slo_class == r.app
        if r.app == "code":
            assert r.ttft_slo_s == 2.0 and r.priority == 1 and r.deadline_s == pytest.approx(r.arrival_s + 30)
        else:
            assert r.tpot_slo_s == 0.05 and r.deadline_s is None and r.priority == 0
    clients = [r.client for r in reqs]
    assert set(clients) == {"client0", "client1", "client2", "client3"}
    assert clients.count("client0") > clients.count("client3")
    prio = run(with_transforms({"name": "assign_priorities", "levels": [0, 5], "weights": [1, 0]}))
    assert {r.priority for r in prio} == {0}


def test_transforms_are_seeded():
    spec = with_transforms({"name": "subsample", "fraction": 0.5}, {"name": "assign_clients", "num_clients": 3})
    a, b, c = run(spec, 3), run(spec, 3), run(spec, 4)
    assert [(r.arrival_s, r.client) for r in a] == [(r.arrival_s, r.client) for r in b]
    assert [(r.arrival_s, r.client) for r in a] != [(r.arrival_s, r.client) for r in c]


def test_bad_transform_params_name_their_path():
    from sim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"workload.transforms\[1\].fraction"):
        make_workload(with_transforms({"name": "window"}, {"name": "subsample", "fraction": 2}))
    with pytest.raises(ConfigError, match=r"transforms\[0\]"):
        make_workload(with_transforms({"name": "clip_lengths"}))
