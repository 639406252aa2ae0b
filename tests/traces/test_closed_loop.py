"""Closed-loop protocols on their own: call initial_requests / on_done as the engine would."""

from __future__ import annotations

import heapq

import numpy as np

from sim.engine.request import State
from tests.traces.conftest import make_workload


def drive(workload, service_s=lambda r: 1.0, reject=lambda r: False, seed=0):
    """A toy engine: every request takes ``service_s(r)`` from arrival; returns (request, done time)."""
    rng = np.random.default_rng(seed)
    heap, done, seq = [], [], 0
    for r in workload.initial_requests(rng):
        heapq.heappush(heap, (r.arrival_s + service_s(r), seq, r))
        seq += 1
    while heap:
        t, _, r = heapq.heappop(heap)
        r.state = State.REJECTED if reject(r) else State.FINISHED
        done.append((r, t))
        nxt = workload.on_done(r, t, rng)
        if nxt is not None:
            assert nxt.arrival_s >= t
            heapq.heappush(heap, (nxt.arrival_s + service_s(nxt), seq, nxt))
            seq += 1
    return done


def test_closed_loop_concurrency_and_count():
    w = make_workload({"name": "closed_loop", "num_users": 4, "num_requests": 40, "think_time_s": 0.5,
                       "think": "fixed", "input_tokens": 100, "output_tokens": 20})
    assert w.closed_loop
    done = drive(w)
    assert len(done) == 40
    assert sorted(r.id for r, _ in done) == list(range(40))
    # each user: 10 requests, one every 1.5 s (1 s service + 0.5 s think)
    user0 = [r.arrival_s for r, _ in done if r.client == "user0"]
    assert user0 == [1.5 * k for k in range(10)]
    # never more than 4 in flight
    events = sorted([(r.arrival_s, 1) for r, _ in done] + [(t, -1) for _, t in done], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 4
    assert w.describe()["workload_num_requests"] == 40


def test_closed_loop_rejection_and_duration():
    w = make_workload({"name": "closed_loop", "num_users": 2, "num_requests": 1000, "duration_s": 10})
    done = drive(w, reject=lambda r: r.id % 3 == 0)
    assert all(r.arrival_s <= 10 for r, _ in done)
    assert w.describe()["workload_num_rejected_seen"] > 0


def test_closed_loop_conversations_share_prefixes_and_repeat():
    w = make_workload({"name": "closed_loop", "num_users": 2, "num_requests": 12, "turns": 3,
                       "input_tokens": 40, "output_tokens": 30, "prefix_block_tokens": 16})
    done = drive(w)
    turns = [r for r, _ in done if r.client == "user0"]
    assert [r.input_tokens for r in turns] == [40, 110, 180, 40, 110, 180]
    assert turns[1].prefix_hashes[:2] == turns[0].prefix_hashes[:2]
    assert turns[3].session != turns[0].session
    a = [(r.id, r.arrival_s, r.input_tokens) for r, _ in drive(make_workload({"name": "closed_loop", "num_users": 3,
                                                                               "num_requests": 30, "think_time_s": 1}))]
    b = [(r.id, r.arrival_s, r.input_tokens) for r, _ in drive(make_workload({"name": "closed_loop", "num_users": 3,
                                                                               "num_requests": 30, "think_time_s": 1}))]
    assert a == b


def test_agentic_chain_deadline_and_dependencies():
    w = make_workload({"name": "agentic", "num_jobs": 5, "rate_rps": 1.0, "shape": "chain", "calls_per_job": 3,
                       "tool_time_s": 0.25, "tool_time": "fixed", "deadline_s": 4.0, "input_tokens": 100,
                       "output_tokens": 20, "tool_output_tokens": 10})
    done = drive(w, service_s=lambda r: 0.5)
    assert len(done) == 15
    for j in range(5):
        calls = sorted((r for r, _ in done if r.job == j), key=lambda r: r.arrival_s)
        assert len(calls) == 3
        assert len({r.deadline_s for r in calls}) == 1
        assert calls[0].deadline_s == calls[0].arrival_s + 4.0
        assert [r.input_tokens for r in calls] == [100, 130, 160]
        assert calls[1].arrival_s == calls[0].arrival_s + 0.75  # 0.5 service + 0.25 tool
        assert calls[1].prefix_hashes[:6] == calls[0].prefix_hashes[:6]
    d = w.describe()
    assert d["workload_num_jobs_done"] == 5 and d["workload_num_jobs_met_deadline"] == 5


def test_agentic_fanout_aggregates_and_failure():
    w = make_workload({"name": "agentic", "num_jobs": 4, "shape": "fanout", "calls_per_job": 3,
                       "input_tokens": 64, "output_tokens": 10, "tool_output_tokens": 8, "deadline_s": 1.5})
    done = drive(w, service_s=lambda r: 1.0)
    assert len(done) == 16  # 3 branches + 1 aggregate per job
    agg = [r for r, _ in done if r.input_tokens == 64 + 30]
    assert len(agg) == 4
    assert w.describe()["workload_num_jobs_met_deadline"] == 0  # 2 s > 1.5 s budget
    w2 = make_workload({"name": "agentic", "num_jobs": 4, "shape": "fanout", "calls_per_job": 3})
    done = drive(w2, reject=lambda r: r.id == 0)
    assert len(done) == 15 and w2.describe()["workload_num_jobs_failed"] == 1
