"""The Ray backend gives the same table as the local process pool."""

from __future__ import annotations

import pandas as pd
import pytest

from sim.tools.sweep import run_sweep
from tests.experiments.conftest import sweep_24

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'servesim[ray]')")


@pytest.fixture
def local_ray():
    """A local Ray instance started by the test, shut down after it."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_backend_equals_local(tmp_path, reference_24, local_ray):
    table = run_sweep(sweep_24(), tmp_path / "ray", workers=2, backend="ray", progress=False)
    assert ray.is_initialized()  # the test's Ray was used, not replaced
    pd.testing.assert_frame_equal(table, reference_24[1])
    assert (tmp_path / "ray" / "points" / "p0023" / "summary.json").is_file()
