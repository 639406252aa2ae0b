"""The fid13a rows (AccelMark suite D, vLLM 0.20.1 on one A100-80GB) and the stated V1 token budget."""

from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware.corpus_engines import v1_server_token_budget

SOURCE = "accelmark_a100_vllm020"


def _rows():
    return [r for r in cp.load_corpus() if r["source"] == SOURCE]


def test_the_source_is_held_out_whole_on_the_v1_engine():
    rows = _rows()
    assert len(rows) == 5 and fid.split_of(SOURCE) == "held-out"
    for r in rows:
        assert (r["device"], r["model"], r["tp"], r["weight_dtype"]) == ("A100-80GB", "Llama-3-8B", 1, "bf16")
        assert cp.stack_for(r) == "vllm_v1_engine" and cp.memory_share(r) == 0.9
        assert (r["input_len"], r["output_len"]) == (28645, 256)
    assert sorted(r["kind"] for r in rows) == ["closed_loop"] * 3 + ["offline_fixed"] * 2


def test_a_stated_v1_token_budget_replaces_the_server_default():
    offline = [r for r in _rows() if r["kind"] == "offline_fixed"]
    streamed = [r for r in _rows() if r["kind"] == "closed_loop"]
    # the LLM class's own default on an A100 (8192), stated in the notes
    assert {cp.scheduler_for(r)["max_num_batched_tokens"] for r in offline} == {8192}
    # no budget stated: V1's server default on an A100 (2048)
    assert {cp.scheduler_for(r)["max_num_batched_tokens"] for r in streamed} == {2048}
    plain = {**offline[0], "notes": "no budget here"}
    assert cp.scheduler_for(plain)["max_num_batched_tokens"] == v1_server_token_budget("A100-80GB") == 2048
    h100 = {**plain, "device": "H100-SXM", "notes": "vllm serve --max-num-batched-tokens 16384"}
    assert cp.scheduler_for(h100) == {"name": "vllm_v1", "max_num_seqs": 512, "max_num_batched_tokens": 16384}


def test_only_the_one_client_rows_count_every_request():
    by_id = {r["id"]: r for r in _rows()}
    assert cp._EVERY_REQUEST in by_id["am-3"]["notes"] and cp._EVERY_REQUEST in by_id["am-4"]["notes"]
    assert cp._EVERY_REQUEST not in by_id["am-5"]["notes"]  # the sustained run discards its warm-up minute
    assert cp.closed_loop_requests(by_id["am-5"]) == 393
