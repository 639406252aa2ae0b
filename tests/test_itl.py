"""The ITL histogram: exact mean/max/count, percentiles within one bin."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.itl import REL_WIDTH, ItlHistogram


def test_percentiles_within_bin_width_and_exact_moments():
    rng = np.random.default_rng(0)
    singles = rng.lognormal(-4, 1.0, size=50_000)
    chunk = rng.lognormal(-3, 0.5, size=2000)
    h = ItlHistogram()
    for g in singles:
        h.add(float(g))
    h.add_many(chunk, 7)
    values = np.concatenate([singles, np.repeat(chunk, 7)])
    assert h.count == len(values)
    assert h.mean_s() == pytest.approx(values.mean(), rel=1e-12)
    assert h.max_s == values.max()
    for q, got in zip((50, 90, 99), h.percentiles((50, 90, 99)), strict=True):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert got == pytest.approx(exact, rel=1.5 * REL_WIDTH)


def test_empty():
    h = ItlHistogram()
    assert np.isnan(h.mean_s()) and all(np.isnan(h.percentiles((50, 99))))
