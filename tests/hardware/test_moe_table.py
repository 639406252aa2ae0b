"""The EP routing table built for all grid points at once (hardware/moe.py ``_build_table``) and the
per-GPU sums of ``gpu_loads`` equal, to the bit, the table built one grid point at a time and the
one-hot matrix product the sums replaced."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hardware.analytic import AnalyticCostModel, AnalyticParams
from hardware.moe import ExpertParallel, ExpertParallelParams, gpu_loads


def _tables(monkeypatch, loop: bool, **ep):
    monkeypatch.setattr(ExpertParallel, "_loop_table", loop)
    hw = SimpleNamespace(device="H100-SXM", model="Qwen3-30B-A3B", tp=1, pp=1, weight_dtype="bf16", kv_dtype="bf16")
    x = AnalyticCostModel(AnalyticParams(expert_parallel=ExpertParallelParams(**ep)), hw)._ep
    return x._time, x._tmax, x._amax, x._wbytes


@pytest.mark.parametrize("ep", [{"routing": "zipf", "noise_sigma": 0.3}, {"routing": "uniform", "ep": 4},
                                {"placement": "balanced", "routing": "zipf", "zipf_s": 1.2, "realisations": 5}])
def test_batched_table_equals_one_grid_point_at_a_time(monkeypatch, ep):
    assert _tables(monkeypatch, False, **ep) == _tables(monkeypatch, True, **ep)


def test_per_gpu_sums_equal_the_one_hot_product():
    rng = np.random.default_rng(5)
    counts = rng.binomial(rng.integers(1, 200_000, size=(30, 1)), 0.05, size=(30, 64))
    counts[:, 7] = 0
    hosts = [[int(g)] for g in rng.integers(0, 9, size=64)]  # uneven, GPU 9 hosts nothing
    a, t = gpu_loads(counts, hosts, 10, "least_loaded", rng)
    onehot = np.zeros((64, 10))
    onehot[np.arange(64), [h[0] for h in hosts]] = 1.0
    assert np.array_equal(a, (counts > 0).astype(np.float64) @ onehot)
    assert np.array_equal(t, counts.astype(np.float64) @ onehot)
