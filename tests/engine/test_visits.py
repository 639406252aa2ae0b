"""The per-visit table: one row per (request, replica it was on), why it came and how it left."""

from __future__ import annotations

from sim import simulate
from sim.config import from_dict
from sim.tools.output import read_frame, write_run

KV_BYTES = 131072.0


def pd_dict(num_requests=40, rate=8.0, handoff="distserve", **extra) -> dict:
    """A prefill pool (2 replicas) handing off to a decode pool (2 replicas) on the constant model."""
    cost = {"name": "constant", "step_s": 0.02, "kv_bytes_per_token": KV_BYTES}
    return {
        "workload": {"name": "synthetic", "num_requests": num_requests, "rate_rps": rate,
                     "input_tokens": 500, "input_tokens_max": 3000, "output_tokens": 4, "output_tokens_max": 60},
        "cluster": {
            "router": "least_outstanding",
            "handoff": {"name": handoff, "link": "ib-ndr"},
            "pools": [
                {"name": "prefill", "role": "prefill", "num_replicas": 2, "cost_model": cost,
                 "scheduler": "distserve_prefill", "kv": {"name": "paged", "num_blocks": 2000}},
                {"name": "decode", "role": "decode", "num_replicas": 2, "cost_model": cost,
                 "scheduler": "vllm_v1", "kv": {"name": "paged", "num_blocks": 2000}},
            ],
        },
        "engine": {"progress": False},
        **extra,
    }


def test_pd_request_visits_its_prefill_then_its_decode_replica():
    res = simulate(from_dict(pd_dict()))
    df, visits = res.requests, res.visits
    prefill_ids, decode_ids = {0, 1}, {2, 3}
    finished = df[df["state"] == "finished"]
    assert len(finished) == 40
    for _, row in finished.iterrows():
        v = visits[visits["request"] == row["id"]]
        assert len(v) == 2
        first, second = v.iloc[0], v.iloc[1]
        assert (first["pool"], first["reason"], first["left"]) == ("prefill", "prefill", "handed_off")
        assert (second["pool"], second["reason"], second["left"]) == ("decode", "decode", "finished")
        assert first["replica"] in prefill_ids and second["replica"] in decode_ids
        assert first["start_s"] == row["arrival_s"]
        assert first["start_s"] <= first["end_s"] <= second["start_s"] <= second["end_s"] == row["finish_s"]
        # the gap between the visits is the KV copy (DistServe may also park it first)
        assert second["start_s"] - first["end_s"] >= row["transfer_s"] * (1 - 1e-9)
        assert row["first_replica"] == first["replica"] and row["replica"] == second["replica"]


def test_mixed_pool_visit_is_one_serve_row():
    data = pd_dict(num_requests=5)
    data["cluster"] = {"router": "round_robin",
                       "pools": [{"name": "main", "num_replicas": 2,
                                  "cost_model": {"name": "constant", "step_s": 0.01},
                                  "kv": {"name": "paged", "num_blocks": 2000}}]}
    res = simulate(from_dict(data))
    v = res.visits
    assert len(v) == 5 and (v["reason"] == "serve").all() and (v["left"] == "finished").all()
    assert list(v["request"]) == list(range(5)) and list(v["replica"]) == [0, 1, 0, 1, 0]
    assert (res.requests["first_replica"] == res.requests["replica"]).all()


def test_unfinished_visits_close_at_the_end_of_the_run():
    res = simulate(from_dict(pd_dict(num_requests=40, engine={"progress": False, "max_time_s": 1.0})))
    v = res.visits
    unfinished = v[v["left"] == "unfinished"]
    assert len(unfinished) > 0 and (unfinished["end_s"] == 1.0).all()
    # every request still on a replica at the end has exactly one open visit
    live = res.requests[res.requests["state"] == "unfinished"]
    assert set(unfinished["request"]) <= set(live["id"])
    assert unfinished["request"].is_unique


def test_visits_are_written_with_the_run(tmp_path):
    res = simulate(from_dict(pd_dict(num_requests=5)))
    files = write_run(res, tmp_path)
    back = read_frame(files["visits"])
    assert len(back) == 10 and list(back.columns) == list(res.visits.columns)
    assert list(back["reason"].astype(str)) == list(res.visits["reason"].astype(str))
