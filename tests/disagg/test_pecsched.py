"""PecSched: layer-boundary cuts, sequence-parallel gangs, and a small version of each claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hardware.links import get_link
from policies.sequence_parallel import sp_prefill_time_s
from sim import simulate
from sim.config import from_dict

COST = {"name": "constant", "step_s": 0.0, "per_prefill_token_s": 1e-3, "per_decode_token_s": 0.0}
KV_BYTES = 131072.0


def write_trace(tmp_path, rows) -> str:
    path = tmp_path / "trace.csv"
    lines = ["arrival_s,input_tokens,output_tokens"] + [f"{a},{i},{o}" for a, i, o in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def one_replica(path: str) -> dict:
    return {"workload": {"name": "trace", "path": path},
            "cluster": {"router": "round_robin", "pools": [{
                "name": "main", "num_replicas": 1, "cost_model": COST,
                "scheduler": {"name": "pecsched", "long_input_tokens": 1000},
                "kv": {"name": "paged", "num_blocks": 5000}}]},
            "engine": {"progress": False}}


def gang(path: str, num_replicas: int = 2) -> dict:
    return {"workload": {"name": "trace", "path": path},
            "cluster": {
                "router": {"name": "pecsched", "long_input_tokens": 1000, "replicas_per_node": num_replicas,
                           "sp_tokens_per_replica": 5000},
                "handoff": {"name": "pecsched"},
                "pools": [{"name": "main", "num_replicas": num_replicas, "cost_model": COST,
                           "scheduler": "pecsched", "kv": {"name": "paged", "num_blocks": 5000}},
                          {"name": "sd", "role": "decode", "num_replicas": 1, "cost_model": COST,
                           "kv": {"name": "paged", "num_blocks": 5000}}]},
            "engine": {"progress": False}}


def test_short_cuts_long_prefill_at_layer_boundary_and_long_pays_only_the_rest(tmp_path):
    # 10 s prefill in 32 layers of 0.3125 s; a short arriving at 1.03 s cuts it at 1.25 s (layer 4)
    df = simulate(from_dict(one_replica(write_trace(tmp_path, [(0.0, 10000, 3), (1.03, 100, 3)])))).requests
    long, short = df.iloc[0], df.iloc[1]
    assert short["first_scheduled_s"] == pytest.approx(1.25)
    assert short["first_token_s"] == pytest.approx(1.35)
    # finished layers are kept: the long prompt ends 0.1 s (the short prefill) later than alone
    assert long["first_token_s"] == pytest.approx(10.1)
    assert long["state"] == short["state"] == "finished"


def test_no_cut_without_the_scheduler_asking(tmp_path):
    cfg = one_replica(write_trace(tmp_path, [(0.0, 10000, 3), (1.03, 100, 3)]))
    cfg["cluster"]["pools"][0]["scheduler"] = {"name": "vllm", "max_num_batched_tokens": 20000}
    df = simulate(from_dict(cfg)).requests
    assert df.iloc[1]["first_scheduled_s"] == pytest.approx(10.0)


def sp_time(single_s: float, n: int, k: int) -> float:
    return sp_prefill_time_s(single_s, n, k, KV_BYTES, get_link("nvlink3"), num_layers=32)


def test_long_prefill_runs_sequence_parallel_on_a_gang(tmp_path):
    df = simulate(from_dict(gang(write_trace(tmp_path, [(0.0, 10000, 3)])))).requests
    assert df.iloc[0]["first_token_s"] == pytest.approx(sp_time(10.0, 10000, 2), rel=1e-9)
    assert sp_time(10.0, 10000, 2) < 5.01  # compute halves; the ring hides behind it


def test_short_at_a_helper_cuts_the_whole_gang(tmp_path):
    rows = [(0.0, 10000, 3), (1.03, 100, 3), (1.03, 200, 3)]  # the second short lands on the helper
    df = simulate(from_dict(gang(write_trace(tmp_path, rows)))).requests
    full = sp_time(10.0, 10000, 2)
    layer = full / 32
    cut = 7 * layer  # first boundary after 1.03 s
    assert df.iloc[1]["first_token_s"] == pytest.approx(cut + 0.1)
    assert df.iloc[2]["first_token_s"] == pytest.approx(cut + 0.2)
    assert set(df["pool"].iloc[1:]) == {"sd"}  # short decodes moved to the decode pool
    # the gang resumes when both members are free again, paying the 25 remaining layers
    assert df.iloc[0]["first_token_s"] == pytest.approx(cut + 0.2 + 25 * layer)


def test_sp_time_formula():
    link = get_link("nvlink3")
    assert sp_prefill_time_s(8.0, 1000, 1, KV_BYTES, link) == 8.0
    # communication-bound when the link is slow: max(compute, comm) + gather
    slow = get_link("ethernet-100g")
    n, k = 100_000, 4
    comm = 0.75 * n * KV_BYTES / 12.5e9 + 3 * 32 * slow.latency_s
    gather = 0.75 * n * KV_BYTES / 12.5e9 + slow.latency_s
    assert sp_prefill_time_s(1.0, n, k, KV_BYTES, slow) == pytest.approx(comm + gather)
    assert sp_prefill_time_s(1.0, n, k, KV_BYTES, slow, overlap=0.0, gather_kv=False) == pytest.approx(0.25 + comm)


# ---------------------------------------------------------------------------- small claims

def small_trace(tmp_path, seed=1, num=400, rate=4.0) -> str:
    """Poisson arrivals; 5% of prompts long (20K-60K tokens), the rest 50-400."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, num))
    long = rng.random(num) < 0.05
    inp = np.where(long, rng.integers(20_000, 60_000, num), rng.integers(50, 400, num))
    out = rng.integers(5, 60, num)
    return write_trace(tmp_path, zip(t.round(6), inp, out, strict=True))


def small_systems(path: str) -> dict[str, dict]:
    cost = {"name": "constant", "step_s": 0.005, "per_prefill_token_s": 5e-5, "per_decode_token_s": 1e-4}
    kv = {"name": "paged", "num_blocks": 20000}
    vllm = {"name": "vllm", "max_num_batched_tokens": 65536}
    base = {"workload": {"name": "trace", "path": path}, "engine": {"progress": False, "max_time_s": 200.0}}

    def pool(name, n, sched, role="mixed"):
        return {"name": name, "role": role, "num_replicas": n, "cost_model": cost, "scheduler": sched, "kv": kv}

    prio_wl = {**base["workload"], "transforms": [{"name": "priority_by_length", "long_input_tokens": 1000}]}
    return {
        "fifo": {**base, "cluster": {"router": "least_outstanding", "pools": [pool("main", 4, vllm)]}},
        "priority": {**base, "workload": prio_wl, "cluster": {"router": "least_outstanding", "pools": [
            pool("main", 4, {"name": "pecsched", "long_input_tokens": 1000})]}},
        "pecsched": {**base, "cluster": {
            "router": {"name": "pecsched", "long_input_tokens": 1000, "replicas_per_node": 4,
                       "sp_tokens_per_replica": 20000},
            "handoff": {"name": "pecsched"},
            "pools": [pool("main", 3, {"name": "pecsched"}), pool("sd", 1, {"name": "vllm_v1"}, "decode")]}},
    }


def short_long(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return df[df["input_tokens"] <= 1000], df[df["input_tokens"] > 1000]


def test_small_claims_pecsched_vs_fifo(tmp_path):
    systems = small_systems(small_trace(tmp_path))
    fifo = simulate(from_dict(systems["fifo"])).requests
    pec = simulate(from_dict(systems["pecsched"])).requests
    f_short, f_long = short_long(fifo)
    p_short, p_long = short_long(pec)
    assert (pec["state"] == "finished").all() and (fifo["state"] == "finished").all()
    # short p99 queueing at least 50% lower; long mean JCT at most 15% above FIFO
    assert np.percentile(p_short["queueing_s"], 99) <= 0.5 * np.percentile(f_short["queueing_s"], 99)
    assert p_long["e2e_s"].mean() <= 1.15 * f_long["e2e_s"].mean()


def test_pecsched_same_seed_same_frames(tmp_path):
    cfg = small_systems(small_trace(tmp_path, num=150))["pecsched"]
    pd.testing.assert_frame_equal(simulate(from_dict(cfg)).requests, simulate(from_dict(cfg)).requests)
