"""The transfer service: lone and shared copies, live pre-copy migration, aborts, no lost requests."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from hardware.links import get_link
from sim.config import from_dict
from sim.engine.cluster import Cluster
from sim.engine.recorder import Recorder
from sim.engine.transfer import TransferService

KV_BYTES = 131072.0           # per token (Llama-3-8B bf16)
BLOCK_BYTES = 16 * KV_BYTES   # 2 MiB per 16-token block
IB = get_link("ib-ndr")       # 50 GB/s, 5 us


def make_dict(*, num_requests=1, input_tokens=4000, output_tokens=400, step_s=0.02, num_replicas=2,
              num_blocks=20000, transfer=None, rate_rps=None, output_tokens_max=None, seed=0) -> dict:
    """One mixed pool on the constant cost model; requests all at t=0 unless ``rate_rps``."""
    workload = {"name": "synthetic", "num_requests": num_requests, "input_tokens": input_tokens,
                "output_tokens": output_tokens}
    if output_tokens_max is not None:
        workload["output_tokens_max"] = output_tokens_max
    if rate_rps is None:
        workload["arrival"] = {"name": "all_at_once"}
    else:
        workload["rate_rps"] = rate_rps
    return {
        "seed": seed,
        "workload": workload,
        "cluster": {
            "router": "round_robin",
            "transfer": {"link": "ib-ndr", **(transfer or {})},
            "pools": [{"name": "main", "num_replicas": num_replicas,
                       "cost_model": {"name": "constant", "step_s": step_s, "kv_bytes_per_token": KV_BYTES},
                       "scheduler": "vllm_v1", "kv": {"name": "paged", "num_blocks": num_blocks}}],
        },
        "engine": {"progress": False},
    }


def run(data: dict, at=()):
    """Run ``data``; ``at`` lists (time_s, fn(cluster)) calls made during the run."""
    config = from_dict(data)
    recorder = Recorder()
    cluster = Cluster(config, config.workload.build(), recorder, np.random.SeedSequence(config.seed))
    for time_s, fn in at:
        event = cluster.env.timeout(time_s)
        event.callbacks.append(lambda _e, fn=fn: fn(cluster))
    cluster.run()
    return cluster, recorder.requests_frame(), recorder.visits_frame()


def assert_kv_all_free(cluster) -> None:
    for rep in cluster.replicas:
        rep.kv.check_invariants()
        assert rep.kv.num_used == 0, (rep.id, rep.kv.num_used)


# ---------------------------------------------------------------------------- plain copies

def test_lone_copy_takes_latency_plus_bytes_over_bandwidth():
    env = simpy.Environment()
    service = TransferService(env)
    link = service.link(0, "ib-ndr")
    num_bytes = 4000 * KV_BYTES
    done = service.copy(num_bytes, link)
    env.run(done)
    expected = 5e-6 + num_bytes / 50e9
    assert env.now == pytest.approx(expected, rel=1e-12)
    assert done.value == pytest.approx(expected, rel=1e-12)
    assert service.time_s(num_bytes, link) == pytest.approx(expected, rel=1e-12)
    assert service.time_s(num_bytes, IB) == pytest.approx(expected, rel=1e-12)
    assert service.num_copies == 1 and service.copy_bytes == num_bytes


def test_two_copies_on_one_link_share_its_bandwidth():
    env = simpy.Environment()
    service = TransferService(env)
    link = service.link(0, "ib-ndr")
    assert service.link(0, "ib-ndr") is link            # one link per owner and kind
    assert service.link(1, "ib-ndr") is not link
    num_bytes = 1e9
    a, b = service.copy(num_bytes, link), service.copy(num_bytes, link)
    env.run(env.all_of([a, b]))
    both = 5e-6 + 2 * num_bytes / 50e9                    # equal shares: both end when all bytes are through
    assert a.value == pytest.approx(both, rel=1e-9) and b.value == pytest.approx(both, rel=1e-9)
    assert both > 1.9 * service.time_s(num_bytes, link)


def test_copies_on_different_owners_do_not_share():
    env = simpy.Environment()
    service = TransferService(env)
    a = service.copy(1e9, service.link(0, "ib-ndr"))
    b = service.copy(1e9, service.link(1, "ib-ndr"))
    env.run(env.all_of([a, b]))
    assert a.value == pytest.approx(service.time_s(1e9, IB), rel=1e-9)


# ---------------------------------------------------------------------------- live migration

def migrate_at(time_s, request_id=0, dst=1, live=True, answers=None):
    def call(cluster):
        ok = cluster.migrate(request_id, dst, live=live)
        if answers is not None:
            answers.append(ok)
    return (time_s, call)


def test_live_migration_stops_only_for_the_last_stage():
    answers = []
    cluster, df, visits = run(make_dict(), at=[migrate_at(0.505, answers=answers)])
    assert answers == [True]
    rec, = cluster.transfer.records
    assert rec["outcome"] == "migrated" and rec["live"]
    row = df.iloc[0]
    assert row["state"] == "finished" and row["num_output_tokens"] == 400
    assert row["num_migrations"] == 1 and row["replica"] == 1 and row["first_replica"] == 0
    # stage 1 copies the full blocks written so far while decoding goes on; the last stage the rest
    assert rec["num_stages"] == 2 and rec["num_blocks_precopied"] >= 250
    total_blocks = -(-(4000 + 24) // 16)
    last_blocks = total_blocks - rec["num_blocks_precopied"]
    assert 1 <= last_blocks <= 2
    assert rec["downtime_s"] == pytest.approx(5e-6 + last_blocks * BLOCK_BYTES / 50e9, rel=1e-6)
    whole = 5e-6 + (4000 + 24) * KV_BYTES / 50e9          # stop and copy of the whole KV: ~10.5 ms
    assert rec["downtime_s"] < 0.01 * whole
    assert row["transfer_s"] == pytest.approx(rec["downtime_s"])
    # its tokens go on on dst: the largest gap is one iteration plus the stop
    assert row["itl_max_s"] == pytest.approx(0.02 + rec["downtime_s"], rel=1e-9)
    # visits: src left by migration, then dst entered by migration
    assert list(visits["replica"]) == [0, 1]
    assert list(visits["reason"]) == ["serve", "migrated"]
    assert list(visits["left"]) == ["migrated", "finished"]
    assert visits["end_s"].iloc[0] == pytest.approx(rec["stop_s"])
    assert visits["start_s"].iloc[1] == pytest.approx(rec["end_s"])
    assert cluster.transfer.num_migrations == 1
    assert_kv_all_free(cluster)


def test_stop_and_copy_migration_stops_for_the_whole_kv():
    cluster, df, visits = run(make_dict(), at=[migrate_at(0.505, live=False)])
    rec, = cluster.transfer.records
    assert rec["outcome"] == "migrated" and not rec["live"]
    row = df.iloc[0]
    # at the iteration boundary after 0.505 s: 25 tokens out, the KV of the prompt and 24 of them
    tokens = 4000 + 24
    assert rec["downtime_s"] == pytest.approx(5e-6 + tokens * KV_BYTES / 50e9, rel=1e-6)
    assert row["state"] == "finished" and row["num_migrations"] == 1 and row["replica"] == 1
    assert list(visits["left"]) == ["migrated", "finished"]
    assert_kv_all_free(cluster)


def test_migration_aborts_when_the_request_outgrows_the_link():
    # 1 ms iterations write a 2 MiB block every 16 ms (131 MB/s); the link moves 33 MB/s
    data = make_dict(input_tokens=512, output_tokens=20000, step_s=0.001,
                     transfer={"link_gbps": 0.033, "max_stages": 2})
    cluster, df, visits = run(data, at=[migrate_at(0.1005)])
    rec, = cluster.transfer.records
    assert rec["outcome"] == "not_converged" and rec["num_stages"] == 2
    assert cluster.transfer.aborted == {"not_converged": 1} and cluster.transfer.num_migrations == 0
    row = df.iloc[0]
    assert row["state"] == "finished" and row["replica"] == 0 and row["num_migrations"] == 0
    assert list(visits["replica"]) == [0] and list(visits["left"]) == ["finished"]
    assert_kv_all_free(cluster)


def test_migration_aborts_when_the_request_finishes_on_src():
    # a 50 MB/s link: the first stage (~170 MB) outlasts the request's last tokens
    data = make_dict(input_tokens=4000, output_tokens=40, transfer={"link_gbps": 0.05})
    cluster, df, visits = run(data, at=[migrate_at(0.505)])
    assert cluster.transfer.aborted == {"finished_on_src": 1}
    assert df.iloc[0]["replica"] == 0 and df.iloc[0]["state"] == "finished"
    assert_kv_all_free(cluster)


def test_refusals_are_counted():
    answers = []
    data = make_dict(num_requests=2, num_blocks=300, input_tokens=4000)   # each replica holds one request
    calls = [migrate_at(0.505, request_id=0, dst=0, answers=answers),     # same replica
             migrate_at(0.505, request_id=0, dst=1, answers=answers),     # dst full
             migrate_at(0.505, request_id=7, dst=1, answers=answers),     # no such running request
             migrate_at(0.001, request_id=0, dst=1, answers=answers)]     # still prefilling
    cluster, df, _visits = run(data, at=calls)
    assert answers == [False, False, False, False]
    assert cluster.transfer.refused == {"dst_full": 1, "not_decoding": 1, "not_running": 1, "same_replica": 1}
    assert (df["state"] == "finished").all() and (df["num_migrations"] == 0).all()


# (seed, KV blocks per replica, link GB/s): roomy; tight (dst_full aborts); tight and slow (preempted on src)
@pytest.mark.parametrize("seed,num_blocks,gbps", [(0, 400, 2.0), (1, 100, 2.0), (4, 70, 0.2)])
def test_migrations_never_lose_or_duplicate_requests(seed, num_blocks, gbps):
    """Random live and stop-and-copy migrations among 3 replicas: every request finishes once,
    its visits chain up in time, and all KV is free at the end."""
    rng = np.random.default_rng(seed)
    data = make_dict(num_requests=60, num_replicas=3, input_tokens=300, output_tokens=20, output_tokens_max=200,
                     step_s=0.01, rate_rps=20.0, num_blocks=num_blocks, seed=seed,
                     transfer={"link_gbps": gbps, "max_migrations_per_replica": None})
    answers = []

    def shuffle(cluster):
        running = [r for rep in cluster.replicas for r in rep.running]
        if running:
            req = running[int(rng.integers(len(running)))]
            ok = cluster.migrate(req.id, int(rng.integers(3)), live=bool(rng.integers(2)))
            answers.append(ok)

    calls = [(0.0503 * k, shuffle) for k in range(1, 120)]
    cluster, df, visits = run(data, at=calls)
    assert any(answers)
    assert len(df) == 60 and df["id"].is_unique and (df["state"] == "finished").all()
    done = visits.groupby("request")
    assert set(done.groups) == set(range(60))
    for rid, v in done:
        v = v.sort_values("start_s")
        assert (v["end_s"].iloc[:-1].to_numpy() <= v["start_s"].iloc[1:].to_numpy()).all()
        assert list(v["left"].iloc[:-1]) == ["migrated"] * (len(v) - 1) and v["left"].iloc[-1] == "finished"
        assert list(v["reason"].iloc[1:]) == ["migrated"] * (len(v) - 1)
        row = df.loc[df["id"] == rid].iloc[0]
        assert row["num_migrations"] == len(v) - 1
        assert row["first_replica"] == v["replica"].iloc[0] and row["replica"] == v["replica"].iloc[-1]
    assert df["num_migrations"].sum() == cluster.transfer.num_migrations > 0
    assert not cluster.transfer._migrations
    assert_kv_all_free(cluster)


def test_one_migration_at_a_time_per_replica():
    answers = []
    data = make_dict(num_requests=3, num_replicas=3, input_tokens=1000)  # round robin: one request per replica
    calls = [migrate_at(0.205, request_id=0, dst=2, answers=answers),
             migrate_at(0.2051, request_id=1, dst=2, answers=answers)]  # dst 2 is busy with request 0
    cluster, df, _visits = run(data, at=calls)
    assert answers == [True, False]
    assert cluster.transfer.refused == {"no_migration_slot": 1}
    assert list(df["replica"]) == [2, 1, 2]


def test_migrating_runs_are_deterministic():
    frames = [run(make_dict(num_requests=4, rate_rps=2.0), at=[migrate_at(0.9, request_id=0)])[1:]
              for _ in range(2)]
    for a, b in zip(*frames, strict=True):
        assert a.equals(b)


def test_migration_between_decode_replicas_of_a_pd_cluster():
    cost = {"name": "constant", "step_s": 0.02, "kv_bytes_per_token": KV_BYTES}
    data = make_dict(num_requests=1)
    data["cluster"] = {
        "router": "round_robin", "handoff": {"name": "distserve", "link": "ib-ndr"}, "transfer": {"link": "ib-ndr"},
        "pools": [{"name": "prefill", "role": "prefill", "num_replicas": 1, "cost_model": cost,
                   "scheduler": "distserve_prefill", "kv": {"name": "paged", "num_blocks": 20000}},
                  {"name": "decode", "role": "decode", "num_replicas": 2, "cost_model": cost,
                   "scheduler": "vllm_v1", "kv": {"name": "paged", "num_blocks": 20000}}]}
    answers = []
    calls = [migrate_at(0.505, dst=0, answers=answers), migrate_at(0.5051, dst=2, answers=answers)]
    cluster, df, visits = run(data, at=calls)
    assert answers == [False, True]
    assert cluster.transfer.refused == {"dst_prefill_only": 1}
    assert list(visits["replica"]) == [0, 1, 2]
    assert list(visits["reason"]) == ["prefill", "decode", "migrated"]
    assert list(visits["left"]) == ["handed_off", "migrated", "finished"]
    row = df.iloc[0]
    assert row["first_replica"] == 0 and row["replica"] == 2 and row["num_migrations"] == 1
    assert_kv_all_free(cluster)
