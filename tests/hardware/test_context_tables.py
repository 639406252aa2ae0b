"""Decode and verify prices read off the analytic model's per-context tables equal the prices
computed step by step, bit for bit: inside the tables, beyond their span (computed directly),
grown, and after ``set_weight_read_scale`` changed the prices."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import context_tables
from hardware.analytic import AnalyticCostModel
from sim.config import HardwareConfig

LAYOUTS = [("H100-SXM", "Llama-3-8B", 1), ("H100-SXM", "Llama-3-70B", 4), ("H100-SXM", "Mixtral-8x7B", 2)]


def _cm(device, model, tp):
    return AnalyticCostModel(None, HardwareConfig(device=device, model=model, tp=tp))


@pytest.mark.parametrize(("device", "model", "tp"), LAYOUTS)
def test_tables_equal_step_prices(device, model, tp):
    rng = np.random.default_rng(3)
    cm = _cm(device, model, tp)
    for n, tokens in ((1, 5), (3, 15), (8, 8)):
        for hi in (100, 5000, 20000, context_tables.SPAN + 10):  # first built, grown, beyond the span
            contexts = rng.integers(0, hi, size=40).astype(np.int64)
            at = cm.decode_times_at_s(n, tokens, contexts)
            assert at.tolist() == [cm.step_time_s((), n, tokens, int(c)) for c in contexts]
            grid = cm.decode_times_grid_s(n, contexts.reshape(8, 5))
            assert grid.ravel().tolist() == [cm.step_time_s((), n, n, int(c)) for c in contexts]
            sums = cm.decode_run_sums_s(n, contexts, 4)
            expect = []
            for c in contexts.tolist():
                t = 0.0
                for t_j in cm.decode_step_times_list(n, c, 4):
                    t += t_j
                expect.append(t)
            assert sums.tolist() == expect


def test_tables_follow_weight_scale():
    cm = _cm("H100-SXM", "Llama-3-8B", 1)
    contexts = np.arange(0, 3000, 7, dtype=np.int64)
    before = cm.decode_times_at_s(1, 5, contexts).tolist()
    cm.set_weight_read_scale(0.5)
    after = cm.decode_times_at_s(1, 5, contexts).tolist()
    assert after != before
    assert after == [cm.step_time_s((), 1, 5, int(c)) for c in contexts]
    assert cm.decode_run_sums_s(1, contexts, 3).tolist() == \
        [sum(cm.decode_step_times_list(1, int(c), 3), 0.0) for c in contexts]


def test_full_tables_price_directly(monkeypatch):
    monkeypatch.setattr(context_tables, "ENTRIES", context_tables.MIN_SIZE)
    cm = _cm("H100-SXM", "Llama-3-8B", 1)
    contexts = np.arange(10, 9000, 13, dtype=np.int64)
    for n in (1, 2, 3):  # the second and third tables do not fit: priced directly, the same bits
        assert cm.decode_times_grid_s(n, contexts[:20]).tolist() == \
            [cm.step_time_s((), n, n, int(c)) for c in contexts[:20]]
    assert cm.decode_times_grid_s(1, contexts).tolist() == [cm.step_time_s((), 1, 1, int(c)) for c in contexts]


@pytest.mark.parametrize(("device", "model", "tp"), LAYOUTS)
def test_price_rows_equal_step_prices(device, model, tp):
    """``verify_rows_s`` / ``decode_row_s`` (Python lists a speculator reads by index) hold the
    scalar prices, bit for bit: first built, grown, and None past the span."""
    rng = np.random.default_rng(5)
    cm = _cm(device, model, tp)
    for n in (1, 3):
        for hi in (100, 5000, 20000):
            contexts = rng.integers(0, hi, size=30).tolist()
            rows = cm.verify_rows_s(n, 9, hi)
            assert all(rows[t][c] == cm.verify_step_time_s(n, t, c) == cm.step_time_s((), n, t, c)
                       for t in range(1, 10) for c in contexts)
            row = cm.decode_row_s(n, hi)
            assert [row[c] for c in contexts] == [cm.decode_step_times_list(n, c, 1)[0] for c in contexts]
            assert row[contexts[0]:contexts[0] + 8] == cm.decode_step_times_list(n, contexts[0], 8) or n != 1
    assert cm.verify_rows_s(1, 9, context_tables.SPAN) is None and cm.decode_row_s(1, context_tables.SPAN) is None


def test_price_rows_follow_weight_scale():
    cm = _cm("H100-SXM", "Llama-3-8B", 1)
    before = cm.verify_rows_s(1, 5, 3000)[5][2000], cm.decode_row_s(1, 3000)[2000]
    cm.set_weight_read_scale(0.5)
    after = cm.verify_rows_s(1, 5, 3000)[5][2000], cm.decode_row_s(1, 3000)[2000]
    assert after != before
    assert after == (cm.verify_step_time_s(1, 5, 2000), cm.decode_step_times_list(1, 2000, 1)[0])


@pytest.mark.parametrize(("device", "model", "tp"), LAYOUTS)
def test_whole_tables_read_by_index_equal_the_lookups(device, model, tp):
    """``verify_table_s`` / ``run_sums_table_s`` hand over the tables ``decode_times_at_s`` /
    ``decode_run_sums_s`` read: indexed at any context they cover, the same bits; None past the span."""
    rng = np.random.default_rng(5)
    cm = _cm(device, model, tp)
    for n, tokens in ((1, 5), (3, 15)):
        for hi in (100, 5000, 20000):
            contexts = rng.integers(0, hi, size=40).astype(np.int64)
            top = int(contexts.max())
            verify = cm.verify_table_s(n, tokens, top)
            assert len(verify) > top
            assert verify[contexts].tolist() == cm.decode_times_at_s(n, tokens, contexts).tolist()
            sums = cm.run_sums_table_s(n, 4, top)
            assert sums[contexts].tolist() == cm.decode_run_sums_s(n, contexts, 4).tolist()
    assert cm.verify_table_s(1, 5, context_tables.SPAN) is None
    assert cm.run_sums_table_s(1, 4, context_tables.SPAN) is None
    cm.set_weight_read_scale(1.5)  # new prices: the tables handed over are rebuilt with them
    contexts = np.arange(0, 300, 7, dtype=np.int64)
    assert cm.verify_table_s(1, 5, 300)[contexts].tolist() == [cm.step_time_s((), 1, 5, int(c)) for c in contexts]
