"""Decode runs priced at once equal step-by-step pricing bit for bit, on both of the analytic
cost model's paths (short runs in Python floats, long ones in numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.analytic import _SHORT_RUN_STEPS, AnalyticCostModel
from sim.config import HardwareConfig
from sim.cost import CostModel

LAYOUTS = [("H100-SXM", "Llama-2-7B", 1), ("H100-SXM", "Llama-3-70B", 4), ("H100-SXM", "Mixtral-8x7B", 2),
           ("A100-80GB", "Llama-3-8B", 2)]


@pytest.mark.parametrize(("device", "model", "tp"), LAYOUTS)
@settings(max_examples=40, deadline=None)
@given(num_seqs=st.integers(1, 512), context=st.integers(0, 2_000_000),
       num_steps=st.integers(1, 2 * _SHORT_RUN_STEPS))
def test_decode_run_equals_steps(device, model, tp, num_seqs, context, num_steps):
    cm = AnalyticCostModel(None, HardwareConfig(device=device, model=model, tp=tp))
    run = cm.decode_step_times_s(num_seqs, context + num_seqs, num_steps)
    steps = [cm.step_time_s((), num_seqs, num_seqs, context + num_seqs * (i + 1)) for i in range(num_steps)]
    assert run.dtype == np.float64 and run.tolist() == steps


@pytest.mark.parametrize(("device", "model", "tp", "pp"), [(d, m, tp, 1) for d, m, tp in LAYOUTS]
                         + [("H100-SXM", "Llama-3-70B", 4, 2), ("H100-SXM", "Qwen3-30B-A3B", 1, 1)])
@settings(max_examples=40, deadline=None)
@given(num_decodes=st.integers(0, 256), context=st.integers(0, 2_000_000), offset=st.integers(0, 100_000),
       chunks=st.lists(st.integers(0, 8192), min_size=1, max_size=12))
def test_chunk_steps_equal_steps(device, model, tp, pp, num_decodes, context, offset, chunks):
    """A mixed stretch's iterations priced at once (one prompt's chunks beside the decodes) equal
    ``step_time_s`` per iteration and the seam's default, bit for bit."""
    cm = AnalyticCostModel(None, HardwareConfig(device=device, model=model, tp=tp, pp=pp))
    cum = [0]
    for k in chunks:
        cum.append(cum[-1] + k)
    times = cm.chunk_step_times_list(num_decodes, context, offset, cum, len(chunks))
    steps = [cm.step_time_s([(cum[j + 1] - cum[j], offset + cum[j])], num_decodes, num_decodes,
                            context + j * num_decodes) for j in range(len(chunks))]
    assert times == steps == CostModel.chunk_step_times_list(cm, num_decodes, context, offset, cum, len(chunks))
    assert all(type(t) is float for t in times)


def test_chunk_steps_memo_follows_weight_scale():
    """The memoised terms of a mixed iteration are reused across calls and dropped when the
    weight-read scale changes (C2CServe's streaming): the prices stay ``step_time_s``'s."""
    cm = AnalyticCostModel(None, HardwareConfig(device="H100-SXM", model="Llama-3-8B", tp=2))
    cum = [0, 2000, 4000, 6000, 6500]

    def steps():
        return [cm.step_time_s([(cum[j + 1] - cum[j], 300 + cum[j])], 48, 48, 90_000 + 48 * j) for j in range(4)]

    for scale in (1.0, 1.0, 0.4, 0.4, 1.0):
        cm.set_weight_read_scale(scale)
        assert cm.chunk_step_times_list(48, 90_000, 300, cum, 4) == steps()
