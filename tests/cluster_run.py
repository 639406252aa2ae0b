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
