"""Builders for the trace tests: workloads from YAML-like dicts, small files on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.config import WorkloadSpec

DATA = Path(__file__).resolve().parents[2] / "traces" / "data"


def make_workload(spec: dict):
    """A workload built from its YAML mapping, as the config loader does."""
    return WorkloadSpec.from_config(spec, "workload").build()


def run(spec: dict, seed: int = 0) -> list:
    """All requests of an open-loop workload spec."""
    return list(make_workload(spec).requests(np.random.default_rng(seed)))


@pytest.fixture
def write(tmp_path):
    """Write ``text`` to a file named ``name`` in a temporary folder; return its path."""

    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return _write
