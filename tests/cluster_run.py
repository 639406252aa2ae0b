"""Test-only: build and run a Cluster directly (as ``sim.api.simulate`` does) and keep it.

``simulate`` returns frames and a summary; invariant tests also need the replicas, their KV
managers and the recorder after the run, so they call ``run_cluster`` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from sim.config import SimulationConfig, from_dict
from sim.engine.cluster import Cluster
from sim.engine.recorder import Recorder


def run_cluster(config: SimulationConfig | dict, before_run: Callable[[Cluster], Any] | None = None) -> Cluster:
    """Build the run's Cluster with the same seeds as ``simulate``, call ``before_run(cluster)``, run it."""
    if isinstance(config, dict):
        config = from_dict(copy.deepcopy(config))
    seeds = np.random.SeedSequence(config.seed)
    recorder = Recorder(config.output.record_steps, config.output.record_token_times)
    cluster = Cluster(config, config.workload.build(), recorder, seeds)
    if before_run is not None:
        before_run(cluster)
    cluster.run()
    return cluster


def unbounded(cluster: Cluster) -> None:
    """``before_run`` hook: no replica's decode stretches are bounded by its next arrival."""
    for rep in cluster.replicas:
        rep.arrival_bound = None


def assert_same_run(a: Cluster, b: Cluster) -> None:
    """Two runs gave the same requests, token times, iterations and ITL (count, exact mean, max)."""
    import pandas as pd

    pd.testing.assert_frame_equal(a.recorder.requests_frame(), b.recorder.requests_frame(), check_exact=True)
    assert a.recorder.token_times == b.recorder.token_times
    assert sum(r.num_steps for r in a.replicas) == sum(r.num_steps for r in b.replicas)
    assert a.recorder.itl.count == b.recorder.itl.count
    assert a.recorder.itl.mean_s() == b.recorder.itl.mean_s()
    assert a.recorder.itl.max_s == b.recorder.itl.max_s
