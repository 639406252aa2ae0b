"""VTC's fairness bound as a property: between two continuously backlogged clients the service
difference over any interval stays within 2 x max(w_p x L_input, w_q x M) (Sheng et al.,
OSDI'24, Theorem 4.1; M = tokens a running batch can hold, here the KV cache), and FCFS
breaks it on an adversarial arrival order.

Service is counted as VTC charges it: w_p per prompt token when the request is admitted,
w_q per generated token when it is emitted (token times recorded)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import simulate
from tests.conftest import make_config_dict

W_P, W_Q = 1.0, 2.0
NUM_BLOCKS, BLOCK = 120, 16
M_TOKENS = NUM_BLOCKS * BLOCK


def _run(rows: list[tuple[float, int, int, str]], scheduler: str) -> tuple[float, float]:
    """(largest service gap over any interval while both clients were backlogged, the bound)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.csv")
        with open(path, "w") as f:
            f.write("arrival_s,input_tokens,output_tokens,client\n")
            for t, i, o, c in rows:
                f.write(f"{t},{i},{o},{c}\n")
        data = make_config_dict(scheduler={"name": scheduler, "max_num_batched_tokens": 512},
                                workload={"name": "trace", "path": path}, num_blocks=NUM_BLOCKS,
                                kv={"block_size": BLOCK})
        data["output"] = {"record_token_times": True}
        res = simulate(data)
    df = res.requests
    assert (df["state"] == "finished").all()
    # both clients are backlogged until the first of them has had its last request admitted
    t_end = df.groupby("client")["first_scheduled_s"].max().min()
    events: list[tuple[float, str, float]] = []
    for row in df.itertuples():
        events.append((row.first_scheduled_s, row.client, W_P * row.input_tokens))
        for t in res.token_times[row.id]:
            events.append((t, row.client, W_Q))
    events.sort()
    gap = 0.0
    diffs = [0.0]
    for t, client, w in events:
        if t > t_end:
            break
        gap += w if client == "a" else -w
        diffs.append(gap)
    d = np.array(diffs)
    l_input = max(r[1] for r in rows)
    return float(d.max() - d.min()), 2 * max(W_P * l_input, W_Q * M_TOKENS)


lengths = st.lists(st.tuples(st.integers(1, 400), st.integers(1, 200)), min_size=25, max_size=45)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=lengths, b=lengths, stagger=st.floats(0.0, 0.05))
def test_vtc_service_gap_between_backlogged_clients_stays_within_the_bound(a, b, stagger):
    rows = [(0.0, i, o, "a") for i, o in a] + [(stagger, i, o, "b") for i, o in b]
    rows.sort(key=lambda r: r[0])
    gap, bound = _run(rows, "vtc")
    assert gap <= bound, (gap, bound)


def test_fcfs_breaks_the_bound_when_one_client_arrives_first():
    # client a floods the queue first; client b is backlogged right behind it
    rows = [(0.0, 400, 200, "a")] * 60 + [(0.001, 400, 200, "b")] * 60
    gap, bound = _run(rows, "vllm_v1")
    assert gap > bound
    gap_vtc, _ = _run(rows, "vtc")
    assert gap_vtc <= bound
