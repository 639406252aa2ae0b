"""The fid15f rows (varad-more/inference-engine-benchmark-system: vLLM and SGLang on one A10G) and SGLang's
stated static memory fraction."""

import pytest

from hardware import corpus_predict as cp
from hardware import fidelity as fid

SOURCE = "varad_ieb_a10g"


def _rows():
    return [r for r in cp.load_corpus() if r["source"] == SOURCE]


def test_the_source_is_held_out_whole_as_closed_loops_of_fixed_lengths():
    rows = _rows()
    assert len(rows) == 48 and fid.split_of(SOURCE) == "held-out"
    assert {r["model"] for r in rows} == {"Qwen2.5-7B", "Mistral-7B", "Llama-3-8B"}
    assert {r["engine"] for r in rows} == {"vllm", "sglang"}
    for r in rows:
        assert (r["device"], r["tp"], r["weight_dtype"], r["kind"]) == ("A10G", 1, "bf16", "closed_loop")
        assert (r["input_len"], r["output_len"], r["num_prompts"]) == (22, 256, 100)
        assert r["batch"] in (1, 4, 16, 64) and "every request counted" in r["notes"]
        assert r["metric"] in ("median_ttft_ms", "median_e2e_ms")
    # one row per model, engine, level and metric
    assert len({(r["model"], r["engine"], r["batch"], r["metric"]) for r in rows}) == 48


def test_each_engine_gets_its_stack_and_stated_memory_share():
    for r in _rows():
        if r["engine"] == "vllm":
            assert cp.stack_for(r) == "vllm_v1_engine" and cp.memory_share(r) == 0.85
        else:
            assert cp.stack_for(r) == "sglang" and cp.memory_share(r) > 0.85


def test_sglang_static_fraction_leaves_weights_plus_kv_pool_of_that_share():
    """SGLang's mem-fraction-static holds weights and the KV pool only: the predictor's share adds the activation
    reserve back, so servesim's KV is the fraction of the GPU less the weights, as SGLang sizes its pool."""
    row = next(r for r in _rows() if r["engine"] == "sglang" and r["model"] == "Llama-3-8B")
    cm = cp.cost_model(row)
    expected = 0.85 * cm.device.memory_bytes - cm.weight_bytes_per_gpu
    assert cm.kv_capacity_bytes(cp.memory_share(row)) == pytest.approx(expected, rel=1e-9)
    # the snake-case spelling of a printed server_args reads the same; another engine's notes ignore it
    snake = {**row, "notes": "server_args: mem_fraction_static 0.85"}
    assert cp.memory_share(snake) == pytest.approx(cp.memory_share(row))
    assert cp.memory_share({**row, "engine": "vllm", "notes": "mem-fraction-static 0.85"}) == 0.9
    assert cp.memory_share({**row, "notes": ""}) == 0.9
