"""KV copies between replicas: time alone on the link, slowdown when shared, row fields."""

from __future__ import annotations

import pytest

from sim import simulate
from sim.config import from_dict
from sim.errors import ConfigError

KV_BYTES = 131072.0  # Llama-3-8B bf16


def pd_dict(num_requests=1, rate=1.0, input_tokens=4000, output_tokens=8, link="ib-ndr", handoff="distserve",
            decode_replicas=1, together=False, **handoff_params):
    cost = {"name": "constant", "step_s": 0.02, "kv_bytes_per_token": KV_BYTES}
    return {
        "workload": {"name": "synthetic", "num_requests": num_requests, "rate_rps": rate,
                     "input_tokens": input_tokens, "output_tokens": output_tokens,
                     **({"arrival": {"name": "all_at_once"}} if together else {})},
        "cluster": {
            "router": "least_outstanding",
            "handoff": {"name": handoff, "link": link, **handoff_params},
            "pools": [
                {"name": "prefill", "role": "prefill", "num_replicas": 1, "cost_model": cost,
                 "scheduler": "distserve_prefill", "kv": {"name": "paged", "num_blocks": 20000}},
                {"name": "decode", "role": "decode", "num_replicas": decode_replicas, "cost_model": cost,
                 "scheduler": "vllm_v1", "kv": {"name": "paged", "num_blocks": 20000}},
            ],
        },
        "engine": {"progress": False},
    }


def test_lone_transfer_takes_bytes_over_bandwidth_plus_latency():
    res = simulate(from_dict(pd_dict()))
    row = res.requests.iloc[0]
    expected = 50e-6 * 0 + 5e-6 + 4000 * KV_BYTES / 50e9  # ib-ndr: 50 GB/s, 5 us
    assert row["transfer_s"] == pytest.approx(expected, rel=1e-9)
    assert row["pool"] == "decode"
    # TTFT ends at the prefill; the copy shows in the gap to the second token
    assert row["ttft_s"] == pytest.approx(0.02)
    assert row["state"] == "finished" and row["num_output_tokens"] == 8


def test_concurrent_transfers_share_the_link():
    # two prompts prefilled in one batch finish together and copy together
    res = simulate(from_dict(pd_dict(num_requests=2, together=True)))
    alone = 5e-6 + 4000 * KV_BYTES / 50e9
    both = 5e-6 + 2 * 4000 * KV_BYTES / 50e9  # equal shares: both end when all bytes are through
    assert res.requests["transfer_s"].to_numpy() == pytest.approx([both, both], rel=1e-6)
    assert both > 1.9 * alone


def test_overlap_hides_most_of_the_copy():
    full = simulate(from_dict(pd_dict(handoff="splitwise", overlap_fraction=0.0))).requests.iloc[0]
    hidden = simulate(from_dict(pd_dict(handoff="splitwise", overlap_fraction=0.9))).requests.iloc[0]
    assert hidden["transfer_s"] < 0.2 * full["transfer_s"]


def test_unknown_link_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        simulate(from_dict(pd_dict(link="warp-drive")))
    assert "cluster.handoff.link" in str(err.value) and "nvlink4" in str(err.value)


def test_kv_held_on_prefill_until_pulled():
    # one decode replica with room for one request at a time: the rest wait on the prefill replica
    data = pd_dict(num_requests=6, together=True, input_tokens=1000, output_tokens=50)
    data["cluster"]["pools"][1]["kv"]["num_blocks"] = 70  # 1120 tokens: one request
    res = simulate(from_dict(data))
    df = res.requests
    assert (df["state"] == "finished").all()
    assert (df["pool"] == "decode").all()
    # they were decoded one after another
    starts = df.sort_values("finish_s")["finish_s"].diff().dropna()
    assert (starts > 0.02 * 40).all()
