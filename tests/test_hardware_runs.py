"""The analytic cost model driving whole runs from YAML."""

from __future__ import annotations

import pytest

from sim import simulate
from sim.config import from_dict
from sim.errors import ConfigError

AZURE = {"name": "trace", "path": "traces/data/azure_llm_2023_conv.csv", "max_requests": 600}


def run(device, model="Llama-3-8B", num_replicas=1, workload=AZURE, **pool):
    return simulate(from_dict({
        "workload": workload,
        "cluster": {"router": "least_outstanding",
                    "pools": [{"num_replicas": num_replicas, "hardware": {"device": device, "model": model},
                               "cost_model": "analytic", "scheduler": "vllm_v1", **pool}]},
        "engine": {"progress": False}}))


def test_quickstart_sized_run_matches_calibrated_range():
    s = run("H100-SXM", num_replicas=4).summary
    # calibration: Llama-3-8B on H100 decodes small batches in ~6-9 ms and prefills ~1k tokens in ~25-40 ms
    assert 0.005 < s["tpot_p50_s"] < 0.012
    assert 0.015 < s["ttft_p50_s"] < 0.06
    assert s["num_completed"] == 600


@pytest.mark.parametrize("device", ["A100-80GB", "H100-SXM:3g.40gb", "GH200-96GB"])
def test_other_devices_run_from_yaml(device):
    s = run(device).summary
    assert s["num_completed"] + s["num_rejected"] == 600
    assert s["num_completed"] > 500


def test_slower_devices_are_slower():
    h100 = run("H100-SXM").summary
    a100 = run("A100-80GB").summary
    mig = run("H100-SXM:3g.40gb").summary
    assert a100["tpot_p50_s"] > h100["tpot_p50_s"]
    assert mig["tpot_p50_s"] > h100["tpot_p50_s"]


def test_model_that_does_not_fit_the_slice_is_rejected_at_load():
    with pytest.raises(ConfigError) as err:
        run("H100-SXM:1g.10gb", model="Llama-2-7B")
    msg = str(err.value)
    assert "cluster.pools[0]" in msg and "1g.10gb" in msg


def test_tensor_parallel_replica_counts_its_gpus():
    res = simulate(from_dict({
        "workload": {**AZURE, "max_requests": 100},
        "cluster": {"pools": [{"hardware": {"device": "H100-SXM", "model": "Llama-3-70B", "tp": 4},
                               "cost_model": "analytic", "scheduler": "vllm_v1"}]},
        "engine": {"progress": False}}))
    assert res.summary["num_gpus"] == 4
    assert res.summary["num_completed"] == 100
