"""The model catalog: transformer shapes, parameter counts, weight and KV bytes by dtype.

Covers dense GQA models, MoE with top-k routing (and shared experts), and DeepSeek's MLA
(HARDWARE.md section 3), plus any Hugging Face ``config.json`` read from a local path.
Parameter counts ignore biases other than Qwen's QKV bias and the norms' few weights.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ConfigError

#: Bytes per element of each supported precision (int4 ignores its small scale overhead).
DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; ConfigError for an unknown one."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r} (choices: {', '.join(DTYPE_BYTES)})") from None


@dataclass(frozen=True)
class ModelSpec:
    """Shapes of one decoder-only transformer."""

    name: str
    num_layers: int
    hidden: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate: int  # dense MLP width (also of the dense layers of a MoE model)
    vocab: int
    num_experts: int = 0  # routed experts; 0 for a dense model
    top_k: int = 0
    moe_intermediate: int = 0
    shared_intermediate: int = 0  # total width of always-on shared experts
    num_dense_layers: int = 0  # leading dense layers of a MoE model (DeepSeek: 3)
    gated_mlp: bool = True  # SwiGLU (3 matrices) or classic (2)
    qkv_bias: bool = False
    tie_embeddings: bool = False
    # MLA (DeepSeek): KV is a compressed latent plus a shared rope key
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_dim: int = 0
    qk_nope_dim: int = 0
    v_head_dim: int = 0
    extra_params: int = 0  # e.g. learned position embeddings

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is routed experts."""
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def num_mlp_dense_layers(self) -> int:
        """Layers with a dense MLP."""
        return self.num_layers - self.num_moe_layers

    # ------------------------------------------------------------ parameters per layer

    @property
    def attention_params(self) -> int:
        """Weights of one layer's attention projections."""
        h = self.hidden
        if self.is_mla:
            qk_dim = self.qk_nope_dim + self.qk_rope_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank * self.num_heads * qk_dim
            else:
                q = h * self.num_heads * qk_dim
            kv = h * (self.kv_lora_rank + self.qk_rope_dim)
            kv += self.kv_lora_rank * self.num_heads * (self.qk_nope_dim + self.v_head_dim)
            return q + kv + self.num_heads * self.v_head_dim * h
        q_out = self.num_heads * self.head_dim
        kv_out = self.num_kv_heads * self.head_dim
        params = h * q_out + 2 * h * kv_out + q_out * h
        if self.qkv_bias:
            params += q_out + 2 * kv_out
        return params

    @property
    def mlp_params(self) -> int:
        """Weights of one dense MLP."""
        return (3 if self.gated_mlp else 2) * self.hidden * self.intermediate

    @property
    def expert_params(self) -> int:
        """Weights of one routed expert."""
        return 3 * self.hidden * self.moe_intermediate

    @property
    def shared_expert_params(self) -> int:
        """Weights of a MoE layer's always-active shared experts."""
        return 3 * self.hidden * self.shared_intermediate

    @property
    def router_params(self) -> int:
        """Weights of one MoE layer's router."""
        return self.hidden * self.num_experts

    @property
    def embedding_params(self) -> int:
        """Input embedding plus (untied) LM head and extras."""
        emb = self.vocab * self.hidden
        return emb + (0 if self.tie_embeddings else emb) + self.extra_params

    @property
    def lm_head_params(self) -> int:
        """Weights of the output projection."""
        return self.vocab * self.hidden

    @property
    def norm_params(self) -> int:
        """All RMSNorm/LayerNorm weights."""
        return (2 * self.num_layers + 1) * self.hidden

    # ------------------------------------------------------------ totals

    @property
    def num_params(self) -> int:
        """All parameters."""
        dense = self.num_mlp_dense_layers * (self.attention_params + self.mlp_params)
        moe = self.num_moe_layers * (
            self.attention_params + self.num_experts * self.expert_params
            + self.shared_expert_params + self.router_params
        )
        return dense + moe + self.embedding_params + self.norm_params

    @property
    def num_active_params(self) -> int:
        """Parameters touched by one token (top-k experts only)."""
        if not self.is_moe:
            return self.num_params
        inactive = self.num_moe_layers * (self.num_experts - self.top_k) * self.expert_params
        return self.num_params - inactive

    def weight_bytes(self, dtype: str = "bf16") -> float:
        """Bytes of all weights in ``dtype``."""
        return self.num_params * dtype_bytes(dtype)

    def kv_elements_per_token_layer(self) -> int:
        """KV-cache elements one token stores in one layer (K and V, or MLA's latent)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_dim
        return 2 * self.num_kv_heads * self.head_dim

    def kv_bytes_per_token(self, dtype: str = "bf16") -> float:
        """KV-cache bytes per token for the whole model (all layers)."""
        return self.num_layers * self.kv_elements_per_token_layer() * dtype_bytes(dtype)

    # ------------------------------------------------------------ per-layer work

    def attention_flops_per_pair(self, decode: bool = False) -> int:
        """FLOPs of one (query token, key token) pair in one layer (scores plus weighted sum).

        MLA prefill works in the decompressed head dims; MLA decode uses the absorbed form,
        whose scores and sums run over the latent (kv_lora + rope, and kv_lora) dims.
        """
        if self.is_mla:
            if decode:
                return 2 * self.num_heads * (2 * self.kv_lora_rank + self.qk_rope_dim)
            return 2 * self.num_heads * (self.qk_nope_dim + self.qk_rope_dim + self.v_head_dim)
        return 4 * self.num_heads * self.head_dim

    def layer_gemm_flops(self, num_tokens: int, moe_layer: bool = False) -> int:
        """Linear-layer FLOPs of one layer for ``num_tokens`` tokens (2 per multiply-add)."""
        if moe_layer:
            active = self.top_k * self.expert_params + self.shared_expert_params + self.router_params
            return 2 * num_tokens * (self.attention_params + active)
        return 2 * num_tokens * (self.attention_params + self.mlp_params)

    def layer_weight_bytes(
        self, dtype: str = "bf16", moe_layer: bool = False, touched_experts: float | None = None
    ) -> float:
        """Weight bytes one layer reads in an iteration (all experts unless ``touched_experts``)."""
        if moe_layer:
            experts = self.num_experts if touched_experts is None else touched_experts
            params = (self.attention_params + experts * self.expert_params
                      + self.shared_expert_params + self.router_params)
        else:
            params = self.attention_params + self.mlp_params
        return params * dtype_bytes(dtype)

    def touched_experts(self, num_tokens: int) -> float:
        """Expected distinct experts one layer routes ``num_tokens`` tokens to: E(1-(1-k/E)^T)."""
        if not self.is_moe or num_tokens <= 0:
            return 0.0
        e = self.num_experts
        return e * (1.0 - (1.0 - self.top_k / e) ** num_tokens)


def _dense(name: str, layers: int, hidden: int, heads: int, kv: int, inter: int, vocab: int, **kw: Any) -> ModelSpec:
    return ModelSpec(name, layers, hidden, heads, kv, kw.pop("head_dim", hidden // heads), inter, vocab, **kw)


_CATALOG: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        _dense("Llama-2-7B", 32, 4096, 32, 32, 11008, 32000),
        _dense("Llama-3-8B", 32, 4096, 32, 8, 14336, 128256),
        _dense("Llama-2-70B", 80, 8192, 64, 8, 28672, 32000),
        _dense("Llama-3-70B", 80, 8192, 64, 8, 28672, 128256),
        _dense("Qwen2.5-7B", 28, 3584, 28, 4, 18944, 152064, qkv_bias=True),
        _dense("Qwen2.5-32B", 64, 5120, 40, 8, 27648, 152064, qkv_bias=True),
        _dense("Qwen2.5-72B", 80, 8192, 64, 8, 29568, 152064, qkv_bias=True),
        _dense("Mixtral-8x7B", 32, 4096, 32, 8, 14336, 32000, num_experts=8, top_k=2, moe_intermediate=14336),
        _dense("Qwen3-30B-A3B", 48, 2048, 32, 4, 6144, 151936, head_dim=128,
               num_experts=128, top_k=8, moe_intermediate=768),
        _dense("Qwen3-235B-A22B", 94, 4096, 64, 4, 12288, 151936, head_dim=128,
               num_experts=128, top_k=8, moe_intermediate=1536),
        _dense("DeepSeek-V3", 61, 7168, 128, 128, 18432, 129280, head_dim=128,
               num_experts=256, top_k=8, moe_intermediate=2048, shared_intermediate=2048, num_dense_layers=3,
               kv_lora_rank=512, q_lora_rank=1536, qk_rope_dim=64, qk_nope_dim=128, v_head_dim=128),
        # Not in section 3: small draft models for speculative decoding (their config.json values).
        _dense("Llama-3.2-1B", 16, 2048, 32, 8, 8192, 128256, head_dim=64, tie_embeddings=True),
        _dense("Qwen2.5-0.5B", 24, 896, 14, 2, 4864, 151936, head_dim=64, qkv_bias=True, tie_embeddings=True),
        # Not in section 3: DistServe's calibration model (facebook/opt-13b config.json).
        _dense("OPT-13B", 40, 5120, 40, 40, 20480, 50272, gated_mlp=False, tie_embeddings=True,
               extra_params=2050 * 5120),
        # Not in section 3: corpus models (meta-llama/Llama-2-13b-hf and Llama-3.1-405B config.json).
        _dense("Llama-2-13B", 40, 5120, 40, 40, 13824, 32000),
        _dense("Llama-3.1-405B", 126, 16384, 128, 8, 53248, 128256),
        # Not in section 3: Sarathi-Serve's single-GPU model (mistralai/Mistral-7B-v0.1 config.json;
        # its 4,096-token sliding window is not modelled: attention reads the whole context).
        _dense("Mistral-7B", 32, 4096, 32, 8, 14336, 32000),
        # Not in section 3: DistServe's larger models (facebook/opt-66b config.json; OPT-175B's
        # shapes from the OPT paper, table 1), learned positional embeddings of 2,050 rows.
        _dense("OPT-66B", 64, 9216, 72, 72, 36864, 50272, gated_mlp=False, tie_embeddings=True,
               extra_params=2050 * 9216),
        _dense("OPT-175B", 96, 12288, 96, 96, 49152, 50272, gated_mlp=False, tie_embeddings=True,
               extra_params=2050 * 12288),
        # Not in section 3: reasoning models (MemShare, CacheOPT reasoning runs): DeepSeek-R1 distilled
        # into Qwen2.5-Math-7B / Qwen2.5-32B, so their config.json shapes.
        _dense("DeepSeek-R1-Distill-Qwen-7B", 28, 3584, 28, 4, 18944, 152064, qkv_bias=True),
        _dense("DeepSeek-R1-Distill-Qwen-32B", 64, 5120, 40, 8, 27648, 152064, qkv_bias=True),
        # Not in section 3: corpus model (Qwen/Qwen3-0.6B config.json: 28 layers, 16 query / 8 KV heads of
        # 128, q/k norms and no qkv bias, tied embeddings).
        _dense("Qwen3-0.6B", 28, 1024, 16, 8, 3072, 151936, head_dim=128, tie_embeddings=True),
        # Not in section 3: corpus model (Qwen/Qwen2.5-14B-Instruct config.json: 48 layers, hidden 5120, 40 query /
        # 8 KV heads, intermediate 13824, vocab 152064, QKV bias, untied embeddings).
        _dense("Qwen2.5-14B", 48, 5120, 40, 8, 13824, 152064, qkv_bias=True),
    )
}

_ALIASES = {
    "llama-3.1-8b": "Llama-3-8B", "meta-llama-3-8b": "Llama-3-8B", "meta-llama-3.1-8b": "Llama-3-8B",
    "llama-3.1-70b": "Llama-3-70B", "llama-3.3-70b": "Llama-3-70B", "meta-llama-3-70b": "Llama-3-70B",
    "meta-llama-3.1-70b": "Llama-3-70B", "llama-7b": "Llama-2-7B", "llama-70b": "Llama-2-70B",
    "mixtral-8x7b-v0.1": "Mixtral-8x7B", "deepseek-r1": "DeepSeek-V3", "deepseek-v3-0324": "DeepSeek-V3",
    "qwen3-235b": "Qwen3-235B-A22B", "qwen3-30b": "Qwen3-30B-A3B",
    "llama-13b": "Llama-2-13B", "meta-llama-3.1-405b": "Llama-3.1-405B",
}

_SUFFIX = re.compile(r"-(instruct|chat|hf|base)(-\d+)?$")


def _key(name: str) -> str:
    key = name.strip().lower().rsplit("/", 1)[-1]
    return _SUFFIX.sub("", key)


def model_names() -> list[str]:
    """Canonical names of the built-in models, sorted."""
    return sorted(_CATALOG)


def get_model(name: str, where: str = "") -> ModelSpec:
    """A catalog model (name, alias or Hub-style id) or a local Hugging Face config.json / folder."""
    path = Path(name)
    if name.endswith(".json") or path.is_dir() or path.is_file():
        return load_hf_config(path, where)
    key = _key(name)
    for canonical, spec in _CATALOG.items():
        if canonical.lower() == key:
            return spec
    if key in _ALIASES:
        return _CATALOG[_ALIASES[key]]
    close = difflib.get_close_matches(name, list(_CATALOG), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown model {name!r}{hint} (choices: {', '.join(model_names())}, "
                      "or a path to a config.json)", where)


def register_model(spec: ModelSpec) -> None:
    """Add ``spec`` to the catalog under its name (for plug-ins and notebooks)."""
    _CATALOG[spec.name] = spec


def _first(cfg: dict, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


_SIZE_KEYS = frozenset({
    "hidden_size", "d_model", "num_attention_heads", "num_local_experts", "n_routed_experts", "num_experts",
    "moe_intermediate_size", "shared_expert_intermediate_size", "n_shared_experts", "num_hidden_layers", "n_layer",
    "num_layers", "num_key_value_heads", "head_dim", "intermediate_size", "ffn_dim", "vocab_size",
    "num_experts_per_tok", "moe_topk", "first_k_dense_replace", "kv_lora_rank", "q_lora_rank",
    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
})


def _is_size(value: Any) -> bool:
    """A whole, finite, non-negative number (JSON may write 4096 as 4096.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 and (isinstance(value, int) or (math.isfinite(value) and value.is_integer()))


def load_hf_config(path: str | Path, where: str = "") -> ModelSpec:
    """Read a Hugging Face ``config.json`` (or a folder holding one) from disk; no download.

    Understands Llama/Mistral/Qwen2/Qwen3 (dense and MoE), Mixtral, DeepSeek-V2/V3 (MLA) and
    OPT key names. Errors name the file and the missing key.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    file = str(path)
    try:
        cfg = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read model config: {exc.strerror}", where, file) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", where, file) from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"expected a JSON object, got {type(cfg).__name__}", where, file)
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers keep the LM here
        cfg = {**cfg, **cfg["text_config"]}
    for key, value in cfg.items():  # every size is a whole, finite, non-negative number
        if key in _SIZE_KEYS and value is not None and not _is_size(value):
            raise ConfigError(f"key {key!r} must be a non-negative integer, got {value!r}", where, file)
    if not _first(cfg, "num_attention_heads"):
        raise ConfigError("key 'num_attention_heads' must be >= 1", where, file)

    def need(*keys: str) -> int:
        value = _first(cfg, *keys)
        if value is None:
            raise ConfigError(f"missing key {keys[0]!r}", where, file)
        return int(value)

    model_type = str(cfg.get("model_type", ""))
    hidden = need("hidden_size", "d_model")
    heads = need("num_attention_heads")
    experts = int(_first(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0)
    moe_inter = int(_first(cfg, "moe_intermediate_size", default=0) or 0)
    if experts and not moe_inter:
        moe_inter = need("intermediate_size")  # Mixtral: experts are full-width MLPs
    shared = int(_first(cfg, "shared_expert_intermediate_size", default=0) or 0)
    if not shared and cfg.get("n_shared_experts"):
        shared = int(cfg["n_shared_experts"]) * moe_inter
    name = str(cfg.get("_name_or_path") or path.parent.name or path.stem)
    return ModelSpec(
        name=name,
        num_layers=need("num_hidden_layers", "n_layer", "num_layers"),
        hidden=hidden,
        num_heads=heads,
        num_kv_heads=int(_first(cfg, "num_key_value_heads", default=heads)),
        head_dim=int(_first(cfg, "head_dim", default=hidden // heads)),
        intermediate=need("intermediate_size", "ffn_dim"),
        vocab=need("vocab_size"),
        num_experts=experts,
        top_k=int(_first(cfg, "num_experts_per_tok", "moe_topk", default=0) or 0),
        moe_intermediate=moe_inter,
        shared_intermediate=shared,
        num_dense_layers=int(_first(cfg, "first_k_dense_replace", default=0) or 0) if experts else 0,
        gated_mlp=model_type not in ("opt", "gpt2", "gpt_neox", "falcon"),
        qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        kv_lora_rank=int(cfg.get("kv_lora_rank") or 0),
        q_lora_rank=int(cfg.get("q_lora_rank") or 0),
        qk_rope_dim=int(cfg.get("qk_rope_head_dim") or 0),
        qk_nope_dim=int(cfg.get("qk_nope_head_dim") or 0),
        v_head_dim=int(cfg.get("v_head_dim") or 0),
    )
