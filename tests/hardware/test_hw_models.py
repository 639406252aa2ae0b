"""Model catalog: parameter counts, KV bytes, per-layer FLOPs and bytes, config.json reading."""

from __future__ import annotations

import json

import pytest

from hardware.models import dtype_bytes, get_model, load_hf_config, model_names
from sim.errors import ConfigError

# HARDWARE.md section 3: KV bytes per token in bf16
KV_BF16 = {
    "Llama-2-7B": 524_288, "Llama-3-8B": 131_072, "Llama-2-70B": 327_680, "Llama-3-70B": 327_680,
    "Qwen2.5-7B": 57_344, "Qwen2.5-32B": 262_144, "Qwen2.5-72B": 327_680, "Mixtral-8x7B": 131_072,
    "Qwen3-30B-A3B": 98_304, "Qwen3-235B-A22B": 192_512, "DeepSeek-V3": 70_272, "OPT-13B": 819_200,
    # draft models (not in section 3): 2 x layers x KV heads x head_dim x 2 bytes, from their config.json
    "Llama-3.2-1B": 32_768, "Qwen2.5-0.5B": 12_288, "Llama-2-13B": 819_200, "Llama-3.1-405B": 516_096,
    # paper-setting models (not in section 3), same formula: Sarathi-Serve's and DistServe's
    "Mistral-7B": 131_072, "OPT-66B": 2_359_296, "OPT-175B": 4_718_592,
    # reasoning models (not in section 3): the Qwen2.5-7B / 32B shapes they are distilled into
    "DeepSeek-R1-Distill-Qwen-7B": 57_344, "DeepSeek-R1-Distill-Qwen-32B": 262_144,
    # corpus model (not in section 3): 2 x 28 layers x 8 KV heads x 128 x 2 bytes, Qwen/Qwen3-0.6B config.json
    "Qwen3-0.6B": 114_688,
    # corpus model (not in section 3): 2 x 48 layers x 8 KV heads x 128 x 2 bytes, Qwen/Qwen2.5-14B config.json
    "Qwen2.5-14B": 196_608,
}
# (total, active) billions, section 3
PARAMS_B = {
    "Llama-2-7B": (6.74, 6.74), "Llama-3-8B": (8.03, 8.03), "Llama-2-70B": (68.98, 68.98),
    "Llama-3-70B": (70.55, 70.55), "Qwen2.5-7B": (7.62, 7.62), "Qwen2.5-32B": (32.76, 32.76),
    "Qwen2.5-72B": (72.70, 72.70), "Mixtral-8x7B": (46.70, 12.88), "Qwen3-30B-A3B": (30.53, 3.35),
    "Qwen3-235B-A22B": (235.09, 22.19), "DeepSeek-V3": (671.0, 37.6),
    # draft models (not in section 3): their model cards' counts, tied embeddings
    "Llama-3.2-1B": (1.24, 1.24), "Qwen2.5-0.5B": (0.494, 0.494),
    "Mistral-7B": (7.24, 7.24),  # its model card
    "Qwen3-0.6B": (0.596, 0.596),  # its model card: 0.6B (0.44B non-embedding), tied embeddings
    "Qwen2.5-14B": (14.77, 14.77),  # its model card: 14.7B (13.1B non-embedding), untied embeddings
}


def test_every_catalog_model_has_a_kv_figure():
    assert set(model_names()) == set(KV_BF16)


@pytest.mark.parametrize("name", sorted(KV_BF16))
def test_kv_bytes_per_token_match_section_3(name):
    m = get_model(name)
    assert m.kv_bytes_per_token("bf16") == KV_BF16[name]
    assert m.kv_bytes_per_token("fp8") == KV_BF16[name] / 2
    assert m.kv_bytes_per_token("int4") == KV_BF16[name] / 4


@pytest.mark.parametrize("name", sorted(PARAMS_B))
def test_parameter_counts_match_section_3(name):
    total, active = PARAMS_B[name]
    m = get_model(name)
    assert m.num_params / 1e9 == pytest.approx(total, rel=0.005)
    assert m.num_active_params / 1e9 == pytest.approx(active, rel=0.005)


def test_llama3_8b_layer_flops_and_bytes_by_hand():
    m = get_model("Llama-3-8B")
    attn = 4096 * 4096 * 2 + 4096 * 1024 * 2  # q, o; k, v (8 KV heads x 128)
    mlp = 3 * 4096 * 14336
    assert m.attention_params == attn == 41_943_040
    assert m.mlp_params == mlp == 176_160_768
    assert m.layer_gemm_flops(1) == 2 * (attn + mlp) == 436_207_616
    assert m.layer_gemm_flops(512) == 512 * 436_207_616
    assert m.layer_weight_bytes("bf16") == 436_207_616
    assert m.layer_weight_bytes("fp8") == 218_103_808
    assert m.attention_flops_per_pair() == 4 * 32 * 128


def test_mixtral_layer_flops_and_bytes_by_hand():
    m = get_model("Mixtral-8x7B")
    expert = 3 * 4096 * 14336
    router = 4096 * 8
    assert m.expert_params == expert == 176_160_768
    assert m.layer_gemm_flops(1, moe_layer=True) == 2 * (41_943_040 + 2 * expert + router) == 788_594_688
    assert m.layer_weight_bytes("bf16", moe_layer=True) == 2 * (41_943_040 + 8 * expert + router) == 2_902_523_904
    # one token touches exactly top-k experts; many tokens touch all of them
    assert m.touched_experts(1) == pytest.approx(2.0)
    assert m.touched_experts(10_000) == pytest.approx(8.0)
    assert m.layer_weight_bytes("bf16", moe_layer=True, touched_experts=2) == 2 * (41_943_040 + 2 * expert + router)


def test_dtype_bytes():
    assert [dtype_bytes(d) for d in ("bf16", "fp16", "fp8", "int8", "int4")] == [2, 2, 1, 1, 0.5]
    with pytest.raises(ConfigError):
        dtype_bytes("fp4")


def test_aliases_and_unknown_names():
    assert get_model("meta-llama/Llama-3.1-8B-Instruct").name == "Llama-3-8B"
    assert get_model("deepseek-r1").name == "DeepSeek-V3"
    with pytest.raises(ConfigError, match="did you mean"):
        get_model("Llama-3-8")


def test_hf_config_json_from_disk(tmp_path):
    cfg = {"model_type": "mixtral", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 32000, "num_local_experts": 8,
           "num_experts_per_tok": 2, "_name_or_path": "my-mixtral"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = get_model(str(tmp_path))
    ref = get_model("Mixtral-8x7B")
    assert m.name == "my-mixtral"
    assert m.num_params == ref.num_params
    assert m.kv_bytes_per_token() == ref.kv_bytes_per_token()


def test_hf_config_deepseek_mla(tmp_path):
    cfg = {"model_type": "deepseek_v3", "hidden_size": 7168, "num_attention_heads": 128, "num_hidden_layers": 61,
           "num_key_value_heads": 128, "intermediate_size": 18432, "moe_intermediate_size": 2048,
           "vocab_size": 129280, "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
           "first_k_dense_replace": 3, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
           "qk_nope_head_dim": 128, "v_head_dim": 128}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    m = load_hf_config(path)
    assert m.kv_bytes_per_token() == 70_272
    assert m.num_params == get_model("DeepSeek-V3").num_params


def test_hf_config_errors_name_file_and_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(ConfigError) as err:
        load_hf_config(path)
    assert str(path) in str(err.value) and "num_attention_heads" in str(err.value)
