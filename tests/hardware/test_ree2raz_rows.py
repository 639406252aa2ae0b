"""The fid15d rows (ree2raz/inference-bench: vLLM 0.8.5 on one L4, 0.20.1 on one A100-40GB, closed-loop Qwen2.5-7B)."""

from hardware import corpus_predict as cp
from hardware import fidelity as fid

SOURCE = "ree2raz_modal_l4_a100"


def _rows():
    return [r for r in cp.load_corpus() if r["source"] == SOURCE]


def test_the_source_is_held_out_whole_on_the_v1_engine():
    rows = _rows()
    assert len(rows) == 19 and fid.split_of(SOURCE) == "held-out" and fid.origin(SOURCE) == SOURCE
    for r in rows:
        assert (r["model"], r["tp"], r["weight_dtype"], r["kind"]) == ("Qwen2.5-7B", 1, "bf16", "closed_loop")
        assert cp.stack_for(r) == "vllm_v1_engine" and cp.memory_share(r) == 0.9
        assert (r["input_len"], r["output_len"], r["num_prompts"], r["max_num_seqs"]) == (44, 128, 100, 64)
        # the warm-up is a separate pass: the measured pass counts every request from its first wave
        assert cp._EVERY_REQUEST in r["notes"] and cp.closed_loop_requests(r) == 100
        assert not cp.closed_loop_sharegpt(r)
    by_device = {d: sorted({r["batch"] for r in rows if r["device"] == d}) for d in ("L4", "A100-40GB")}
    assert by_device == {"L4": [1, 4, 16, 32, 64], "A100-40GB": [1, 16, 64]}
    assert {r["engine_version"] for r in rows if r["device"] == "L4"} == {"0.8.5"}
    assert {r["engine_version"] for r in rows if r["device"] == "A100-40GB"} == {"0.20.1"}


def test_rows_taken_are_the_inclusion_rules():
    metrics = {(r["device"], r["metric"]) for r in _rows()}
    # fid15d: no L4 throughput (the source's summary divides by the sum of latencies, not the run's duration)
    assert metrics == {("L4", "median_ttft_ms"), ("L4", "median_tpot_ms"), ("A100-40GB", "median_ttft_ms"),
                       ("A100-40GB", "median_tpot_ms"), ("A100-40GB", "out_tput")}


def test_both_gpus_get_the_small_gpu_v1_budget():
    # under 70 GiB of CUDA-visible memory: the OpenAI server's 2048-token budget, 64 sequences as run
    for r in _rows():
        sched = cp.scheduler_for(r)
        assert (sched["max_num_seqs"], sched["max_num_batched_tokens"]) == (64, 2048)
