"""Speculative stretches (sim/engine/spec_stretch.py) give exactly what stepping gives."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from sim.engine.spec_stretch import SpecStretchMixin
from tests.cluster_run import run_cluster


def _config(draft_model, num_blocks=None, k=4, acceptance_rate=0.7):
    kv = {"name": "paged"} if num_blocks is None else {"name": "paged", "num_blocks": num_blocks}
    return {
        "seed": 3,
        "workload": {"name": "synthetic", "num_requests": 120, "rate_rps": 6.0, "input_tokens": 256,
                     "input_tokens_max": 1024, "output_tokens": 64, "output_tokens_max": 400},
        "cluster": {"router": "least_outstanding", "pools": [{
            "name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B"},
            "cost_model": "analytic", "scheduler": {"name": "vllm_v1"}, "kv": kv,
            "speculation": {"name": "fixed", "k": k, "acceptance_rate": acceptance_rate, "draft_model": draft_model},
        }]},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.04},
        "output": {"record_token_times": True, "record_steps": True},
        "engine": {"progress": False},
    }


def _run(data: dict, fast: bool):
    data = copy.deepcopy(data)
    data["engine"]["fast_forward"] = fast
    return run_cluster(data)


def _assert_same_runs(fast, slow, steps_log: bool) -> None:
    """Request rows, token times, the step log (if recorded), every replica's speculation counters
    and the ITL histogram: identical."""
    pd.testing.assert_frame_equal(fast.recorder.requests_frame(), slow.recorder.requests_frame(), check_exact=True)
    assert fast.recorder.token_times == slow.recorder.token_times
    if steps_log:
        pd.testing.assert_frame_equal(fast.recorder.steps_frame(), slow.recorder.steps_frame(), check_exact=True)
    for a, b in zip(fast.replicas, slow.replicas, strict=True):
        assert (a.num_steps, a.spec_proposed, a.spec_accepted, a.spec_emitted, a.spec_draft_s, a.spec_step_s,
                a.busy_decode_s, a.spec_by_request) == \
               (b.num_steps, b.spec_proposed, b.spec_accepted, b.spec_emitted, b.spec_draft_s, b.spec_step_s,
                b.busy_decode_s, b.spec_by_request)
        assert a.kv.num_used == b.kv.num_used == 0
    assert fast.recorder.itl.mean_s() == slow.recorder.itl.mean_s()
    assert fast.recorder.itl.percentiles((50, 90, 99)) == slow.recorder.itl.percentiles((50, 90, 99))
    assert fast.recorder.itl.count == slow.recorder.itl.count


@pytest.mark.parametrize("draft_model, num_blocks", [
    (None, None), ("Llama-3.2-1B", None), ("eagle", None),
    ("Llama-3.2-1B", 160),  # a small cache: lookahead slots refused, preemptions
])
def test_stretches_equal_stepping(draft_model, num_blocks, monkeypatch):
    planned = []
    plan = SpecStretchMixin._plan_spec_chunk
    monkeypatch.setattr(SpecStretchMixin, "_plan_spec_chunk", lambda self, *a: planned.append(1) or plan(self, *a))
    data = _config(draft_model, num_blocks)
    fast, slow = _run(data, True), _run(data, False)
    assert planned  # the stretches ran
    _assert_same_runs(fast, slow, steps_log=True)
    if num_blocks is not None:  # the small cache did bind
        assert slow.recorder.requests_frame()["num_preemptions"].sum() > 0


@pytest.mark.parametrize("speculation", [
    {"name": "specserve", "draft_model": "Llama-3.2-1B", "acceptance": "chat"},
    {"name": "fixed", "k": 3, "draft_model": "eagle", "acceptance": "code"},  # the speculator draws
])
def test_state_dependent_speculators_step_one_by_one_as_stepped(speculation, monkeypatch):
    planned = []
    plan = SpecStretchMixin._plan_spec_chunk
    monkeypatch.setattr(SpecStretchMixin, "_plan_spec_chunk", lambda self, *a: planned.append(1) or plan(self, *a))
    data = _config("Llama-3.2-1B", 400)
    data["cluster"]["pools"][0]["speculation"] = speculation
    data["workload"]["num_requests"] = 60
    fast, slow = _run(data, True), _run(data, False)
    assert not planned
    pd.testing.assert_frame_equal(fast.recorder.requests_frame(), slow.recorder.requests_frame(), check_exact=True)
    assert fast.recorder.token_times == slow.recorder.token_times
    assert fast.recorder.itl.mean_s() == slow.recorder.itl.mean_s()
    assert [r.spec_by_request for r in fast.replicas] == [r.spec_by_request for r in slow.replicas]


def _count_when_speculating(monkeypatch, cls, name: str, counts: dict) -> None:
    """Count calls of ``cls.name`` made while a speculative stretch is in progress on that replica."""
    original = getattr(cls, name)

    def counted(self, *args):
        if self._spec is not None:
            counts[name] = counts.get(name, 0) + 1
        return original(self, *args)

    monkeypatch.setattr(cls, name, counted)


@pytest.mark.parametrize("extra", [
    {"router": "tests.plugins.most_free_kv:MostFreeKVRouter"},  # every arrival reads every replica's KV
    {"router": "llumnix", "transfer": {"link": "ib-ndr"},  # migrations: token counts read, requests leave
     "controllers": [{"name": "llumnix_migration"}]},
])
@pytest.mark.parametrize("record_steps", [True, False])
def test_one_event_stretch_equals_stepping_under_cuts(extra, record_steps, monkeypatch):
    """A stretch run as one event equals stepping when arrivals cut it, views read its KV and its
    requests mid-stretch, its KV bounds it and its requests finish."""
    from sim.engine.replica import Replica

    counts: dict = {}
    for name in ("cut_stretch", "sync_kv", "sync"):
        _count_when_speculating(monkeypatch, Replica, name, counts)
    data = _config("Llama-3.2-1B", 600)
    data["workload"].update(num_requests=150, rate_rps=14.0)
    data["cluster"].update(extra)
    data["output"]["record_steps"] = record_steps
    fast, slow = _run(data, True), _run(data, False)
    assert counts.get("cut_stretch", 0) > 20 and counts.get("sync", 0) > 20, counts
    if "controllers" not in extra:
        assert counts.get("sync_kv", 0) > 20, counts
    assert next(fast.env._eid) * 1.3 < next(slow.env._eid)  # fewer events: stretches ran as one
    _assert_same_runs(fast, slow, steps_log=record_steps)


def test_requests_with_their_own_acceptance_equal_stepping(monkeypatch):
    """Per-request acceptance rates (a request's ``spec_acceptance``): outcomes drawn per request."""
    from sim.engine.replica import Replica

    enqueue = Replica.enqueue

    def with_rate(self, req, reason=None):
        if req.spec_acceptance is None:
            req.spec_acceptance = (0.3, 0.6, 0.9)[req.id % 3]
        enqueue(self, req, reason)

    monkeypatch.setattr(Replica, "enqueue", with_rate)
    data = _config("Llama-3.2-1B")
    data["workload"]["num_requests"] = 60
    fast, slow = _run(data, True), _run(data, False)
    _assert_same_runs(fast, slow, steps_log=True)
    rows = {rid: row for rep in fast.replicas for rid, row in rep.spec_by_request.items()}
    share = [sum(rows[i][3] for i in rows if i % 3 == g) / sum(rows[i][2] for i in rows if i % 3 == g)
             for g in range(3)]
    assert share[0] < share[1] < share[2]  # each request's own rate was drawn against


@pytest.mark.parametrize("draft_model", ["Llama-3.2-1B", "eagle", None])
def test_plans_priced_off_whole_tables_equal_the_lookups(draft_model, monkeypatch):
    """A batch of one's plan indexes the verify and draft tables itself (``verify_table_s``,
    ``uniform_draft_table_s``); with those answering None it asks ``decode_times_at_s`` and
    ``uniform_draft_times_at_s`` as before: every frame, counter and ITL statistic the same."""
    from hardware.analytic import AnalyticCostModel
    from policies.speculators.base import SpeculatorBase

    data = _config(draft_model)
    data["workload"]["rate_rps"] = 1.0  # mostly batches of one
    calls = []
    table = SpeculatorBase.uniform_draft_table_s
    monkeypatch.setattr(SpeculatorBase, "uniform_draft_table_s", lambda self, *a: calls.append(1) or table(self, *a))
    tables = _run(data, True)
    assert calls
    monkeypatch.setattr(AnalyticCostModel, "verify_table_s", lambda self, *a: None)
    monkeypatch.setattr(SpeculatorBase, "uniform_draft_table_s", lambda self, *a: None)
    _assert_same_runs(tables, _run(data, True), steps_log=True)
    _assert_same_runs(tables, _run(data, False), steps_log=True)
