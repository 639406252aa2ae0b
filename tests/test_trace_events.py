"""``output.trace_events``: trace.json is valid trace-event JSON with every replica's iterations
and the KV hand-offs, bounded in size."""

from __future__ import annotations

import json

from sim import simulate
from sim.config import from_dict
from sim.tools.output import write_run
from sim.tools.trace_events import trace_events
from tests.engine.test_visits import pd_dict


def _load(path) -> list[dict]:
    doc = json.loads(path.read_text())
    assert doc["displayTimeUnit"] == "ms"
    return doc["traceEvents"]


def test_trace_json_is_valid_and_has_every_iteration(tmp_path):
    data = pd_dict(num_requests=30)
    data["output"] = {"trace_events": True}
    res = simulate(from_dict(data))
    files = write_run(res, tmp_path)
    events = _load(files["trace"])
    for e in events:  # the fields every viewer needs
        assert e["ph"] in {"X", "C", "M", "i"} and isinstance(e["pid"], int) and "name" in e
        if e["ph"] != "M":
            assert e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
    iterations = [e for e in events if e["ph"] == "X" and e.get("tid") == 0]
    assert len(iterations) == len(res.steps)
    assert sum(e["args"]["decode_tokens"] for e in iterations) == int(res.steps["decode_tokens"].sum())
    names = {e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert any("prefill" in n for n in names) and any("decode" in n for n in names)
    handoffs = [e for e in events if e["name"].startswith("KV hand-off")]
    assert len(handoffs) == int((res.requests["transfer_s"] > 0).sum()) > 0


def test_large_runs_are_sampled_to_the_bound():
    data = pd_dict(num_requests=30)
    data["output"] = {"record_steps": True}
    res = simulate(from_dict(data))
    doc = trace_events(res, max_events=60)
    every = doc["metadata"]["sampled_every"]
    assert every > 1
    iterations = [e for e in doc["traceEvents"] if e["ph"] == "X" and e.get("tid") == 0]
    assert len(iterations) * 3 <= 60 + 3 * res.steps["replica"].nunique()


def test_without_steps_it_says_what_it_needs():
    res = simulate(from_dict(pd_dict(num_requests=5)))
    try:
        trace_events(res)
    except ValueError as exc:
        assert "output.trace_events" in str(exc)
    else:
        raise AssertionError("expected a ValueError")
