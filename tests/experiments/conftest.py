"""Builders for the experiment tests: the 24-point sweep and its uninterrupted reference table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TRACE = "traces/data/azure_llm_2023_conv.csv"


def small_base(**workload: object) -> dict:
    """A small config on the bundled Azure conversation trace and the constant cost model."""
    return {
        "seed": 0,
        "workload": {"name": "trace", "path": TRACE, "max_requests": 300, **workload},
        "cluster": {
            "router": "least_outstanding",
            "pools": [{"name": "main", "num_replicas": 2,
                       "cost_model": {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5},
                       "scheduler": {"name": "vllm_v1"},
                       "kv": {"name": "paged", "num_blocks": 20000}}],
        },
        "slo": {"ttft_s": 0.5, "tpot_s": 0.05},
        "engine": {"progress": False},
    }


def sweep_24() -> dict:
    """4 rates x 2 schedulers x 3 seeds over the bundled trace."""
    return {
        "name": "resume24",
        "base": small_base(max_requests=800),
        "grid": {"workload.rate_scale": [2, 6, 10, 14],
                 "cluster.pools[0].scheduler.name": ["vllm_v1", "sarathi"]},
        "labels": {"workload.rate_scale": "rate_scale", "cluster.pools[0].scheduler.name": "scheduler"},
        "seeds": 3,
    }


def write_sweep(path: Path, sweep: dict) -> Path:
    """Write a sweep mapping as YAML; returns the path."""
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def reference_24(tmp_path_factory):
    """The 24-point sweep run in one go, in process: (results folder, table)."""
    from sim.tools.sweep import run_sweep

    out = tmp_path_factory.mktemp("ref24") / "out"
    table = run_sweep(sweep_24(), out, workers=1, progress=False)
    return out, table
