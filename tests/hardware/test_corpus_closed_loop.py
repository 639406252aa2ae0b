"""Closed-loop (concurrency-sweep) corpus rows: N clients, each sending when its last request ends."""

from __future__ import annotations

import numpy as np

from hardware import corpus_predict as cp
from hardware import fidelity as fid


def _row(clients: int, metric: str = "median_tpot_ms", **kw) -> dict:
    row = dict(id="t", source="test", engine="vllm", engine_version="0.21.0", device="H100-SXM",
               model="Llama-3-8B", tp=1, weight_dtype="bf16", kv_dtype="bf16", kind="closed_loop",
               batch=clients, input_len=40, output_len=128, num_prompts=60, rate_rps=None,
               max_num_seqs=None, metric=metric, notes="", value=1.0)
    row.update(kw)
    return row


def _max_in_flight(df) -> int:
    events = sorted([(a, 1) for a in df["arrival_s"]] + [(f - 1e-9, -1) for f in df["finish_s"]])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_closed_loop_keeps_at_most_n_in_flight_and_drops_the_first_wave():
    df = cp.simulate_closed_loop(_row(4))
    assert len(df) == 60 - 4  # every request finished, the first wave (ids 0-3) left out
    assert int(df["id"].min()) == 4
    assert _max_in_flight(df) <= 4
    # each client sends its next request when it sees its previous one finish (engine finish plus
    # the stack's frontend delay): arrivals after the first wave coincide with finishes
    finishes = np.sort(cp.simulate_closed_loop(_row(4, num_prompts=60))["finish_s"].to_numpy())
    later = df[df["id"] >= 8]["arrival_s"].to_numpy()
    assert np.all(np.min(np.abs(later[:, None] - finishes[None, :]), axis=1) < 1e-9)


def test_one_client_decodes_alone():
    row = _row(1)
    tpot = cp.predict(row) * 1e-3
    ttft = cp.predict(_row(1, "median_ttft_ms")) * 1e-3
    e2e = cp.predict(_row(1, "median_e2e_ms")) * 1e-3
    step = float(cp.cost_model(row).decode_step_times_s(1, 40 + 64, 1)[0])
    assert abs(tpot / step - 1.0) < 0.05  # batch 1 at every step
    assert abs((ttft + 127 * tpot) / e2e - 1.0) < 0.02


def test_more_clients_raise_throughput_and_step_time():
    tput = {c: cp.predict(_row(c, "out_tput", num_prompts=20 * c)) for c in (1, 16)}
    tpot = {c: cp.predict(_row(c, num_prompts=20 * c)) for c in (1, 16)}
    assert tput[16] > 8 * tput[1]
    assert tpot[16] > tpot[1]


def test_v1_engine_releases_take_the_v1_scheduler_and_closed_loop_is_online():
    assert cp.scheduler_for(_row(1))["name"] == "vllm_v1"
    assert cp.scheduler_for(_row(1, engine_version="0.6.0"))["name"] == "vllm"
    assert cp.stack_for(_row(1)) == "vllm_v1_engine"  # vLLM >= 0.8: the V1 engine's stack (fid5)
    assert fid.kind_group(_row(1)) == "online"


def test_corpus_concurrency_sweeps_are_held_out_and_complete():
    rows = [r for r in cp.load_corpus() if r["kind"] == "closed_loop"]
    sweeps = {"inferencebench_llama8b_h100", "inferencebench_qwen72b_h100"}
    # fid5 adds the marathon (4 clients), the calibration source of vllm_v1_engine; the sweeps stay held out;
    # fid12 adds the jinwoong A10G / L4 ladder (ShareGPT requests, calibration of the pcie_shm latency);
    # fid13a the AccelMark A100 run's one-client and 8-client scenarios (held out, fixed long prompts);
    # fid14 the same blog's draft-model speculation arms on the L4 (same-origin, ShareGPT requests);
    # fid15d ree2raz/inference-bench's L4 / A100-40GB ladders and fid15f varad-more's vLLM / SGLang ramp on one
    # A10G (both held out, fixed short prompts)
    jinwoong = {"jinwoong_a10g_l4_blog", "jinwoong_l4_specdecode"}
    assert {r["source"] for r in rows} == sweeps | jinwoong | {"inferencebench_marathon_h100", "accelmark_a100_vllm020",
                                                               "ree2raz_modal_l4_a100", "varad_ieb_a10g"}
    for source in ("accelmark_a100_vllm020", "ree2raz_modal_l4_a100", "varad_ieb_a10g"):
        assert fid.split_of(source) == "held-out"
    assert not sweeps & fid.CALIBRATION_SOURCES
    for r in rows:
        assert r["batch"] and (cp.closed_loop_sharegpt(r) or (r["input_len"] and r["output_len"]))
        assert cp.closed_loop_sharegpt(r) == (r["source"] in jinwoong)
