"""The analytic roofline cost model (registered as ``analytic``, the default).

One iteration on one replica (TP x PP GPUs) is priced op group by op group, each by a
smooth roofline ``sqrt(t_compute^2 + t_memory^2)`` (it equals the slower leg far from the
ridge point and is 1.4x slower at it, which matches the 512-token GEMM measurements)::

    stage  = dense GEMMs + routed experts + attention + TP all-reduces + per-layer overhead
             (each over the stage's layers = layers / pp, sharded over tp)
    total  = stage x (m + pp - 1) / m          # pipeline with m microbatches, bubble included
           + (pp - 1) activation sends + LM head + per-iteration and per-sequence overhead

- GEMMs: 2 x tokens x params / tp FLOPs; weights read once per iteration.
- Experts: each MoE layer reads the E(1 - (1 - k/E)^T) experts its T tokens touch.
- Attention: a prefill chunk of c tokens at offset o does c x (o + (c+1)/2) causal pairs and
  reads the KV of o + c tokens; a decode reads its whole context's KV.
- TP: two all-reduces of the layer's activations per layer (custom kernel for small
  messages, NCCL above; ``hardware.links.allreduce_time_s``).
- Superchips: ``weights_in: grace`` / ``kv_in: grace`` stream those bytes over the
  NVLink-C2C link instead of HBM, at ``c2c_share`` of its measured bandwidth.

All fitted numbers come from ``hardware.calibration_constants``. ``step_time_s`` runs in a
few microseconds: everything that does not depend on the batch is folded into per-token
coefficients in ``__init__``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from hardware import calibration_constants as cc
from hardware.context_tables import MIN_SIZE, SPAN, ContextTables
from hardware.devices import GIB, DeviceSpec, get_device
from hardware.links import allreduce_time_s
from hardware.models import ModelSpec, dtype_bytes, get_model
from hardware.moe import ExpertParallel, ExpertParallelParams
from hardware.moe_step import ep_decode_run_s, ep_step_s, step_key
from hardware.quant_layout import lm_head_dtype, model_weight_bytes
from sim.cost import Chunks, CostModel
from sim.errors import ConfigError
from sim.registry import COST_MODELS
from sim.schema import param

ACT_BYTES = 2.0  # activations travel in bf16/fp16
_MAX_CHUNK_TERMS = 4096  # mixed iterations' memoised terms kept (chunk_step_times_list)
_SHORT_RUN_STEPS = 32  # decode runs up to this long are priced in Python floats, longer ones in numpy

Stack = Literal["trtllm", "vllm", "distserve", "sim_profile", "ideal", "vllm_v1", "sglang", "vllm_v05", "vllm_v06",
                "vllm_v05_offline", "vllm_nccl", "vllm_v1_engine"]
AllReduceChoice = Literal["auto", "nvls", "ring", "two_shot", "nccl_ll", "pcie_ring", "pcie_shm"]


@dataclass
class AnalyticParams:
    """Efficiency factors, overheads and memory placement of the analytic cost model."""

    stack: Stack = param(cc.DEFAULT_STACK, doc="serving stack whose fitted overheads apply")
    iteration_overhead_s: float | None = param(None, ge=0, doc="per-iteration CPU overhead (default: the stack's)")
    layer_overhead_prefill_s: float | None = param(None, ge=0, doc="per-layer overhead with prefill (default: stack)")
    layer_overhead_decode_s: float | None = param(None, ge=0, doc="per-layer overhead, pure decode (default: stack)")
    seq_overhead_s: float | None = param(None, ge=0, doc="per-sequence per-iteration overhead (default: stack)")
    gemm_compute_efficiency: float = param(cc.GEMM_COMPUTE_EFFICIENCY, gt=0, le=1, doc="share of GEMM peak")
    memory_efficiency: float = param(cc.MEMORY_EFFICIENCY, gt=0, le=1, doc="share of HBM bandwidth")
    attention_compute_efficiency: float = param(cc.ATTENTION_COMPUTE_EFFICIENCY, gt=0, le=1,
                                                doc="share of BF16 peak in attention")
    fp8_compute_factor: float | None = param(None, gt=0, le=1, doc="FP8/INT8 GEMM efficiency factor (default: arch)")
    device_efficiency_factor: float | None = param(None, gt=0, le=1, doc="factor on the GEMM, attention and "
                                                   "memory efficiencies on this device (default: the device's "
                                                   "calibrated one, GDDR_PCIE_EFFICIENCY_FACTOR; 1 for HBM parts)")
    allreduce: AllReduceChoice = param("auto", doc="TP all-reduce algorithm")
    pp_microbatches: int | None = param(None, ge=1, doc="microbatches in flight with PP (default: pp)")
    activation_reserve_bytes: float | None = param(None, ge=0, doc="per-GPU memory kept from KV (default: formula)")
    weights_in: Literal["hbm", "grace"] = param("hbm", doc="where weights live (grace: superchips only)")
    kv_in: Literal["hbm", "grace"] = param("hbm", doc="where the KV cache lives (grace: superchips only)")
    c2c_share: float | None = param(None, gt=0, le=1,
                                    doc="share of the C2C link this replica gets (default: MIG slices/8)")
    price_per_gpu_hour: float | None = param(None, ge=0, doc="USD per GPU-hour (default: catalog)")
    swap_overhead_s: float = param(cc.SWAP_OVERHEAD_S, ge=0, doc="fixed cost of one swap copy")
    stack_file: str | None = param(None, doc="YAML stack file (servesim fit) replacing the stack's constants")
    request_overhead_s: float | None = param(None, ge=0, doc="per-request frontend delay added to TTFT and "
                                             "E2E (tokenise, detokenise, HTTP; default: the stack's)")
    moe_layers: Literal["local", "remote"] = param(
        "local", doc="remote: MoE layers run on a held expert pool (attention pools), not priced here")
    expert_parallel: ExpertParallelParams | None = param(
        None, doc="expert parallelism (hardware/moe.py); null: experts tensor-parallel, uniform routing")
    moe_compute_factor: float | None = param(None, gt=0, le=1, doc="share of the dense GEMM compute efficiency "
                                             "the routed-expert (grouped) GEMMs reach (default: the stack's)")
    allreduce_call_overhead_s: float | None = param(None, ge=0, doc="per TP all-reduce call on top of the "
                                                    "algorithm's time (default: the stack's)")
    frontend_request_s: float | None = param(None, ge=0, doc="serving front end: service time per request of "
                                             "each serial server before the replica's queue (default: the "
                                             "stack's; 0: no front end; sim/engine/frontend.py)")
    frontend_token_s: float | None = param(None, ge=0, doc="serving front end: service time per prompt token "
                                           "(default: the stack's)")
    frontend_servers: int | None = param(None, ge=1, doc="serving front end: parallel FIFO servers per replica "
                                         "(vLLM's --api-server-count; default: the stack's)")
    swap_call_overhead_s: float = param(0.0, ge=0, doc="per copy call when swapping paged KV: one call per "
                                        "block, layer and K/V (FastSwitch); 0 = bytes only (e.g. 5e-6)")
    quantized_embeddings: bool = param(False, doc="true: an FP8/INT8/INT4 checkpoint's embeddings and LM head "
                                       "are quantized too (default: kept in 16 bits, as vLLM and the "
                                       "published checkpoints do; hardware/quant_layout.py)")


def roofline_time_s(flops: float, num_bytes: float, peak_flops: float, bytes_per_s: float) -> float:
    """Smooth roofline: sqrt((flops/peak)^2 + (bytes/bw)^2), with peak and bw already derated."""
    tc = flops / peak_flops
    tm = num_bytes / bytes_per_s
    return math.sqrt(tc * tc + tm * tm)


def _device_derated(p: AnalyticParams, device: DeviceSpec) -> AnalyticParams:
    """``p`` with its kernel efficiencies times the device's factor (GDDR, PCIe-only parts reach a smaller
    share of their data-sheet peaks than the HBM parts the efficiencies were measured on)."""
    factor = p.device_efficiency_factor
    if factor is None:
        factor = cc.GDDR_PCIE_EFFICIENCY_FACTOR.get(device.name, 1.0)
    if factor == 1.0:
        return p
    return replace(p, gemm_compute_efficiency=p.gemm_compute_efficiency * factor,
                   memory_efficiency=p.memory_efficiency * factor,
                   attention_compute_efficiency=p.attention_compute_efficiency * factor)


def gemm_peak_flops(device: DeviceSpec, dtype: str, params: AnalyticParams) -> float:
    """Reached GEMM FLOPS for weights in ``dtype`` on ``device`` (peak x efficiency factors)."""
    peak = device.peak_flops(dtype) * params.gemm_compute_efficiency
    if peak > device.bf16_tflops * 1e12 * params.gemm_compute_efficiency:  # an 8-bit tensor-core path
        factor = params.fp8_compute_factor
        if factor is None:
            factor = cc.FP8_COMPUTE_FACTOR.get(device.arch, cc.FP8_COMPUTE_FACTOR["default"])
        peak *= factor
    return peak


def gemm_time_s(device: DeviceSpec, num_tokens: int, d_in: int, d_out: int, dtype: str = "bf16",
                params: AnalyticParams | None = None) -> float:
    """One ``num_tokens x d_in @ d_in x d_out`` GEMM by the same roofline the cost model uses."""
    p = params or AnalyticParams()
    flops = 2.0 * num_tokens * d_in * d_out
    num_bytes = d_in * d_out * dtype_bytes(dtype) + num_tokens * (d_in + d_out) * ACT_BYTES
    bw = device.hbm_gbps * 1e9 * p.memory_efficiency
    return roofline_time_s(flops, num_bytes, gemm_peak_flops(device, dtype, p), bw)


def allreduce_choice(device: DeviceSpec, num_bytes: float, tp: int, choice: str = "auto",
                     custom: bool = True) -> tuple[str, float]:
    """(algorithm, link GB/s) a serving stack uses for a TP all-reduce of ``num_bytes``
    (``custom``: the stack has a custom kernel for small messages; else NCCL at every size)."""
    if device.nvlink_gbps <= 0:  # PCIe: NCCL's ring, staged through host memory without peer-to-peer
        auto = "pcie_ring" if device.gpu_p2p else "pcie_shm"
        return (auto if choice == "auto" else choice), device.host_link_gbps
    if choice != "auto":
        return choice, device.nvlink_gbps
    if custom and num_bytes <= cc.CUSTOM_ALLREDUCE_MAX_BYTES and tp <= 8:
        return "two_shot", device.nvlink_gbps
    if device.arch in ("hopper", "blackwell"):
        return "nvls", device.nvlink_gbps
    return "ring", device.nvlink_gbps


@COST_MODELS.register("analytic")
class AnalyticCostModel(CostModel):
    """Roofline step cost of a model on a GPU, MIG slice or superchip with TP and PP."""

    Params = AnalyticParams
    memory_by_model = True  # KV capacity: device memory less this model's weights (kv_capacity_bytes)

    def __init__(self, params: AnalyticParams | None, hardware: Any):
        p = params or AnalyticParams()
        stack = cc.STACKS[p.stack]
        if p.stack_file:
            from hardware.stack_file import apply_stack_file

            p, stack = apply_stack_file(p, stack)
        self.params = p
        self.request_overhead_s = stack.request_s if p.request_overhead_s is None else p.request_overhead_s
        self.frontend_request_s = stack.frontend_request_s if p.frontend_request_s is None else p.frontend_request_s
        self.frontend_token_s = stack.frontend_token_s if p.frontend_token_s is None else p.frontend_token_s
        self.frontend_servers = stack.frontend_servers if p.frontend_servers is None else p.frontend_servers
        self.hardware = hardware
        self.device: DeviceSpec = get_device(hardware.device, "hardware.device")
        p = self.params = _device_derated(p, self.device)
        self.model: ModelSpec = get_model(hardware.model, "hardware.model")
        self.tp, self.pp = int(hardware.tp), int(hardware.pp)
        self.num_gpus = self.tp * self.pp
        self.weight_dtype, self.kv_dtype = hardware.weight_dtype, hardware.kv_dtype
        self._check_layout()
        self._o_it = stack.iteration_s if p.iteration_overhead_s is None else p.iteration_overhead_s
        lo_prefill = stack.layer_prefill_s if p.layer_overhead_prefill_s is None else p.layer_overhead_prefill_s
        lo_decode = stack.layer_decode_s if p.layer_overhead_decode_s is None else p.layer_overhead_decode_s
        self._o_seq = stack.seq_s if p.seq_overhead_s is None else p.seq_overhead_s
        self._c2c_bw = self._c2c_bytes_per_s()
        self._moe_factor = stack.moe_compute_factor if p.moe_compute_factor is None else p.moe_compute_factor
        self._custom_ar = stack.custom_allreduce
        self._ar_call_s = stack.allreduce_call_s if p.allreduce_call_overhead_s is None else p.allreduce_call_overhead_s
        self._fold_constants(lo_prefill, lo_decode)
        self._decode_terms: dict[Any, tuple[float, float, tuple[float, ...]]] = {}  # batch size (and tokens) -> terms
        self._chunk_terms: dict[tuple[int, int], tuple] = {}  # (decodes, chunk tokens) -> the same terms
        self._tables = ContextTables()  # decode / verify prices per context (hardware/context_tables.py)
        self._rows: dict[Any, list] = {}  # the same prices as Python lists: ``decode_row_s``, ``verify_rows_s``
        self._ep: ExpertParallel | None = None
        self._remote_moe_bytes = 0.0
        if p.moe_layers == "remote" and self._moe:  # an attention pool: its MoE layers run elsewhere
            if p.expert_parallel is not None:
                raise ConfigError("moe_layers: remote prices no experts here; drop expert_parallel",
                                  "cost_model.expert_parallel")
            m = self.model
            self._moe = False
            self._remote_moe_bytes = m.num_moe_layers * (m.num_experts * m.expert_params + m.shared_expert_params
                                                         + m.router_params) * dtype_bytes(self.weight_dtype)
        if p.expert_parallel is not None:  # opt-in: a replica of ep GPUs, experts spread over them
            self._ep = ExpertParallel(p.expert_parallel, self)
            self.num_gpus = p.expert_parallel.ep

    # ------------------------------------------------------------ construction

    def _check_layout(self) -> None:
        m, d = self.model, self.device
        if d.is_mig_slice and self.num_gpus > 1:
            raise ConfigError(f"tp x pp = {self.num_gpus} on MIG slice {d.name}: MIG instances have no "
                              "peer-to-peer link; use whole GPUs for TP/PP", "hardware.tp")
        if m.num_heads % self.tp:
            raise ConfigError(f"tp={self.tp} does not divide {m.name}'s {m.num_heads} attention heads", "hardware.tp")
        if self.pp > m.num_layers:
            raise ConfigError(f"pp={self.pp} exceeds {m.name}'s {m.num_layers} layers", "hardware.pp")
        p = self.params
        if (p.weights_in == "grace" or p.kv_in == "grace") and not d.is_superchip:
            raise ConfigError(f"device {d.name} has no Grace memory tier (superchips: GH200, GB200)",
                              "cost_model.weights_in" if p.weights_in == "grace" else "cost_model.kv_in")

    def _c2c_bytes_per_s(self) -> float:
        """This replica's share of the superchip's measured C2C bandwidth (per GPU)."""
        d = self.device
        if not d.is_superchip:
            return 0.0
        share = self.params.c2c_share
        if share is None:
            share = d.memory_slices / 8 if d.is_mig_slice else 1.0
        return d.c2c_measured_gbps * 1e9 * share

    def _fold_constants(self, lo_prefill: float, lo_decode: float) -> None:
        """Precompute per-token coefficients so an iteration costs a few float operations."""
        m, d, p = self.model, self.device, self.params
        tp, pp = self.tp, self.pp
        wb, kb = dtype_bytes(self.weight_dtype), dtype_bytes(self.kv_dtype)
        peak = gemm_peak_flops(d, self.weight_dtype, p)
        hbm = d.hbm_gbps * 1e9 * p.memory_efficiency
        w_bw = self._c2c_bw if p.weights_in == "grace" else hbm
        kv_bw = self._c2c_bw if p.kv_in == "grace" else hbm
        layers = m.num_layers / pp  # per stage; fractional stages average out
        dense_mlp_layers = m.num_mlp_dense_layers / pp
        moe_layers = m.num_moe_layers / pp

        # dense GEMMs: every layer's attention projections plus the dense MLPs
        dense_params = (layers * m.attention_params + dense_mlp_layers * m.mlp_params) / tp
        q_out, kv_out = m.num_heads * m.head_dim, m.num_kv_heads * m.head_dim
        act_attn = 6 * m.hidden + (2 * q_out + 2 * kv_out) / tp  # linear in/out + norms, residual, rope
        act_mlp = 4 * m.intermediate / tp
        self._dense_c = 2.0 * dense_params / peak
        self._dense_w = dense_params * wb / w_bw
        self._dense_a = (layers * act_attn + dense_mlp_layers * act_mlp) * ACT_BYTES / hbm

        # routed experts (tensor-parallel inside each expert)
        self._moe = m.is_moe
        self._num_experts = float(m.num_experts)
        self._q = 1.0 - m.top_k / m.num_experts if m.is_moe else 1.0
        fixed = (m.shared_expert_params + m.router_params) / tp
        # the routed experts' grouped GEMM reaches the stack's share of the dense efficiency
        self._moe_c = 2.0 * moe_layers * (m.top_k * m.expert_params / tp / self._moe_factor + fixed) / peak
        self._expert_w = moe_layers * m.expert_params / tp * wb / w_bw
        self._moe_fixed_w = moe_layers * fixed * wb / w_bw
        act_moe = 4 * (m.top_k * m.moe_intermediate + m.shared_intermediate) / tp + 2 * m.hidden
        self._moe_a = moe_layers * act_moe * ACT_BYTES / hbm

        # attention: FLOPs per (query, key) pair and KV bytes per token on one GPU
        attn_peak = d.bf16_tflops * 1e12 * p.attention_compute_efficiency
        self._attn_pc = layers * m.attention_flops_per_pair(decode=False) / tp / attn_peak
        self._attn_dc = layers * m.attention_flops_per_pair(decode=True) / tp / attn_peak
        if m.is_mla:
            kv_elems_gpu = m.kv_elements_per_token_layer()  # the latent is replicated on every TP rank
        else:
            kv_elems_gpu = 2 * m.head_dim * max(1.0, m.num_kv_heads / tp)
        self.kv_bytes_per_token = m.num_layers * kv_elems_gpu * kb * tp  # whole replica, replicas included
        self._kv_read = layers * kv_elems_gpu * kb / kv_bw
        self._kv_write = self._kv_read

        # TP all-reduces: two per layer of tokens x hidden activations
        self._ar_count = 2.0 * layers if tp > 1 else 0.0
        msg_per_token = m.hidden * ACT_BYTES
        self._ar_threshold_tokens = cc.CUSTOM_ALLREDUCE_MAX_BYTES / msg_per_token
        small_algo, small_gbps = allreduce_choice(d, 1.0, tp, p.allreduce, self._custom_ar)
        big_algo, big_gbps = allreduce_choice(d, cc.CUSTOM_ALLREDUCE_MAX_BYTES + 1.0, tp, p.allreduce, self._custom_ar)
        self._ar_small = self._affine(lambda b: allreduce_time_s(b, tp, small_gbps, small_algo), msg_per_token)
        self._ar_big = self._affine(lambda b: allreduce_time_s(b, tp, big_gbps, big_algo), msg_per_token)
        if self._ar_call_s and tp > 1:  # the stack's per-call cost (exactly 0 otherwise: no float change)
            self._ar_small = (self._ar_small[0] + self._ar_call_s, self._ar_small[1])
            self._ar_big = (self._ar_big[0] + self._ar_call_s, self._ar_big[1])

        # pipeline: microbatches and activation sends between stages
        self._micro = p.pp_microbatches or pp
        link_bw = (d.nvlink_gbps if d.nvlink_gbps > 0 else d.host_link_measured_gbps) * 1e9
        self._send_lat = (pp - 1) * cc.PP_SEND_LATENCY_S
        self._send_c = (pp - 1) * msg_per_token / link_bw

        # LM head on the last stage, one logits row per chunk and per decode token (in 16 bits
        # for a quantized checkpoint: hardware/quant_layout.py)
        head_dtype = lm_head_dtype(self.weight_dtype, not p.quantized_embeddings)
        self._head_c = 2.0 * m.lm_head_params / tp / gemm_peak_flops(d, head_dtype, p)
        self._head_w = m.lm_head_params / tp * dtype_bytes(head_dtype) / w_bw

        self._lo_prefill = layers * lo_prefill
        self._lo_decode = layers * lo_decode

    def set_weight_read_scale(self, scale: float) -> None:
        """Price weight reads at ``scale`` times their HBM time from now on (HybridGEMM: the share
        of weight bytes still read from HBM while the rest streams over C2C; 1.0: as built)."""
        base = getattr(self, "_weight_base", None)
        if base is None:
            base = self._weight_base = (self._dense_w, self._expert_w, self._moe_fixed_w, self._head_w)
        if scale == getattr(self, "_weight_scale", 1.0):
            return
        self._weight_scale = scale
        self._dense_w, self._expert_w, self._moe_fixed_w, self._head_w = (b * scale for b in base)
        self._decode_terms.clear()
        self._chunk_terms.clear()
        self._tables.clear()
        self._rows.clear()

    def _affine(self, fn: Any, per_token: float) -> tuple[float, float]:
        """(latency, seconds per token) of an all-reduce time that is affine in bytes."""
        if self.tp <= 1:
            return 0.0, 0.0
        lat = fn(0.0)
        return lat, fn(per_token) - lat

    # ------------------------------------------------------------ step cost

    def _total(self, tokens: int, num_chunks: int, pairs_p: float, kv_p: int, num_seqs: int,
               num_tokens_d: int, ctx: Any, sqrt: Any = math.sqrt) -> Any:
        """Iteration seconds; ``ctx`` may be a numpy array (with ``sqrt=np.sqrt``) for decode runs.

        The arithmetic order here is the contract of ``decode_step_times_s``: the scalar and
        array evaluations must round identically.
        """
        tc = tokens * self._dense_c
        tm = self._dense_w + tokens * self._dense_a
        t = sqrt(tc * tc + tm * tm)
        if self._moe:
            touched = self._num_experts * (1.0 - self._q ** tokens)
            tc = tokens * self._moe_c
            tm = touched * self._expert_w + self._moe_fixed_w + tokens * self._moe_a
            t += sqrt(tc * tc + tm * tm)
        pairs_d = ctx if num_tokens_d == num_seqs else ctx * num_tokens_d / num_seqs
        tc = pairs_p * self._attn_pc + pairs_d * self._attn_dc
        tm = (kv_p + ctx) * self._kv_read + tokens * self._kv_write
        t = t + sqrt(tc * tc + tm * tm)
        if self._ar_count:
            lat, per_token = self._ar_small if tokens <= self._ar_threshold_tokens else self._ar_big
            t = t + self._ar_count * (lat + tokens * per_token)
        t = t + (self._lo_prefill if num_chunks else self._lo_decode)
        seqs = num_chunks + num_seqs
        if self.pp > 1:
            micro = max(1, min(self._micro, seqs))
            t = t * (micro + self.pp - 1) / micro + self._send_lat + tokens * self._send_c
        tc = (num_chunks + num_tokens_d) * self._head_c
        t = t + sqrt(tc * tc + self._head_w * self._head_w)
        return t + self._o_it + seqs * self._o_seq

    def step_time_s(
        self, prefill: Chunks, num_decode_seqs: int, num_decode_tokens: int, decode_context_tokens: int
    ) -> float:
        """Seconds for one iteration (see the module docstring for the formula)."""
        tokens = num_decode_tokens
        pairs = 0.0
        kv_p = 0
        chunks = 0
        for new, offset in prefill:
            tokens += new
            pairs += new * (offset + 0.5 * (new + 1))
            kv_p += offset + new
            chunks += 1
        if tokens <= 0:
            return 0.0
        if self._ep is not None:
            return ep_step_s(self, tokens, chunks, pairs, kv_p, num_decode_seqs, num_decode_tokens,
                             decode_context_tokens)
        return float(self._total(tokens, chunks, pairs, kv_p, num_decode_seqs, num_decode_tokens,
                                 decode_context_tokens))

    def chunk_step_times_list(self, num_decode_seqs: int, context_tokens: int, offset_tokens: int,
                              cum_tokens: Sequence[int], num_steps: int) -> list[float]:
        """``step_time_s`` of each mixed iteration (see ``CostModel.chunk_step_times_list``), bit
        for bit: ``step_time_s``'s sums over one chunk (from 0, in its order), then ``_total``'s
        expression in its order with the terms that depend only on the decodes and the chunk's
        size memoised (``step_time_s`` itself with pp > 1, expert parallelism or for a subclass
        with its own)."""
        if self._ep is not None or self.pp != 1 or type(self).step_time_s is not AnalyticCostModel.step_time_s:
            return super().chunk_step_times_list(num_decode_seqs, context_tokens, offset_tokens, cum_tokens, num_steps)
        num = num_decode_seqs
        memo = self._chunk_terms
        if len(memo) > _MAX_CHUNK_TERMS:  # (decodes, chunk size) pairs seen: bounded
            memo.clear()
        pc, dc, kv_read, sqrt = self._attn_pc, self._attn_dc, self._kv_read, math.sqrt
        times = []
        for j in range(num_steps):
            new = cum_tokens[j + 1] - cum_tokens[j]
            if num + new <= 0:
                times.append(0.0)
                continue
            offset = offset_tokens + cum_tokens[j]
            terms = memo.get((num, new))
            if terms is None:
                terms = memo[num, new] = self._decode_run_terms(num, None, new, 1)
            gemm, kv_write, adds = terms
            # _total's attention term: the chunk's pairs as step_time_s sums them (from 0.0), the
            # decodes' pairs their context (one token each), KV read over the chunk's offset + new
            # tokens and the decodes' context (an int sum: exact in any grouping)
            ctx = context_tokens + j * num
            tc = (0.0 + new * (offset + 0.5 * (new + 1))) * pc + ctx * dc
            tm = (offset + new + ctx) * kv_read + kv_write
            t = gemm + sqrt(tc * tc + tm * tm)
            for a in adds:
                t = t + a
            times.append(t)
        return times

    def decode_step_times_s(self, num_seqs: int, context_tokens: int, num_steps: int) -> np.ndarray:
        """``num_steps`` pure-decode iterations at once, bit-identical to ``step_time_s`` per step."""
        if num_steps <= 0:
            return np.zeros(0, dtype=np.float64)
        if num_seqs <= 0:
            return np.zeros(num_steps, dtype=np.float64)
        if self._ep is not None:  # per-step routing realisations, in the same order as step_time_s
            return ep_decode_run_s(self, num_seqs, context_tokens, num_steps)
        if self.pp == 1:
            if num_steps <= _SHORT_RUN_STEPS:
                return self._short_decode_run(num_seqs, context_tokens, num_steps)
            return self._long_decode_run(num_seqs, context_tokens, num_steps)
        ctx = context_tokens + np.arange(num_steps, dtype=np.int64) * num_seqs
        out = self._total(num_seqs, 0, 0.0, 0, num_seqs, num_seqs, ctx, sqrt=np.sqrt)
        return np.asarray(out, dtype=np.float64)

    def _long_decode_run(self, num_seqs: int, context_tokens: int, num_steps: int) -> np.ndarray:
        """``_short_decode_run`` in numpy, for long runs: the same operations in the same order."""
        ctx = np.arange(context_tokens, context_tokens + num_steps * num_seqs, num_seqs, dtype=np.int64)
        return self._decode_at(num_seqs, ctx)

    def _decode_at(self, num_seqs: int, contexts: np.ndarray) -> np.ndarray:
        """Pure-decode step times of ``num_seqs`` sequences at each int context of ``contexts``
        (pp 1, no expert parallelism): the long run's operations in its order."""
        key = ("np", num_seqs)  # the terms as numpy scalars: an array op with a Python float converts it each time
        terms = self._decode_terms.get(key)
        if terms is None:
            gemm, kv_write, adds = self._terms(num_seqs)
            f64 = np.float64
            terms = (f64(gemm), f64(kv_write), tuple(map(f64, adds)), f64(self._attn_dc), f64(self._kv_read))
            self._decode_terms[key] = terms
        gemm, kv_write, adds, attn_dc, kv_read = terms
        tc = contexts * attn_dc
        tm = contexts * kv_read
        tm += kv_write
        tc *= tc  # in place: the same operations on the same values, fewer temporaries
        tm *= tm
        tc += tm
        t = np.sqrt(tc)
        t += gemm  # gemm + sqrt(...): addition commutes exactly
        for a in adds:
            t += a
        return t

    def decode_step_times_list(self, num_seqs: int, context_tokens: int, num_steps: int) -> list[float]:
        """``decode_step_times_s(...).tolist()``, short runs without the array in between."""
        if self._ep is None and self.pp == 1 and 0 < num_steps <= _SHORT_RUN_STEPS and num_seqs > 0:
            return self._short_decode_list(num_seqs, context_tokens, num_steps)
        return self.decode_step_times_s(num_seqs, context_tokens, num_steps).tolist()

    def decode_times_at_s(self, num_seqs: int, num_tokens: int, contexts: np.ndarray) -> np.ndarray | None:
        """``step_time_s((), num_seqs, num_tokens, c)`` for every ``c`` of the int array ``contexts``
        (speculative verify passes of ``num_tokens`` tokens), bit-identical: ``_total`` evaluated on
        the array. None with expert parallelism (its steps draw routings one by one)."""
        if self._ep is not None:
            return None
        if num_tokens <= 0:
            return np.zeros(np.shape(contexts), dtype=np.float64)
        times = self._tables.lookup(("at", num_seqs, num_tokens), contexts,
                                    lambda c: self._verify_at(num_seqs, num_tokens, c))
        return self._verify_at(num_seqs, num_tokens, contexts) if times is None else times

    def verify_table_s(self, num_seqs: int, num_tokens: int, max_context: int) -> np.ndarray | None:
        """``decode_times_at_s(num_seqs, num_tokens, np.arange(size))`` for a size > ``max_context``
        (``num_tokens`` > 0): the table ``decode_times_at_s`` reads, for a caller that indexes it
        with int contexts in [0, ``max_context``] itself (a speculative plan, whose contexts only
        grow); valid until the caller's next call. None with expert parallelism or past
        ``context_tables.SPAN`` (then ``decode_times_at_s``), or for a subclass with its own."""
        if self._ep is not None or num_tokens <= 0 \
                or type(self).decode_times_at_s is not AnalyticCostModel.decode_times_at_s:
            return None
        return self._tables.table(("at", num_seqs, num_tokens), max_context,
                                  lambda c: self._verify_at(num_seqs, num_tokens, c))

    def _verify_at(self, num_seqs: int, num_tokens: int, contexts: np.ndarray) -> np.ndarray:
        """``decode_times_at_s`` computed (``_total`` on the array)."""
        return np.asarray(self._total(num_tokens, 0, 0.0, 0, num_seqs, num_tokens, contexts, sqrt=np.sqrt),
                          dtype=np.float64)

    def decode_times_grid_s(self, num_seqs: int, contexts: np.ndarray) -> np.ndarray | None:
        """The pure-decode step times ``decode_step_times_s`` gives, at any int array of contexts
        (e.g. draft passes of many speculative steps at once), bit-identical (the long run's
        operations in its order); None with expert parallelism."""
        if self._ep is not None:
            return None
        if num_seqs <= 0:
            return np.zeros(np.shape(contexts), dtype=np.float64)
        times = self._tables.lookup(("grid", num_seqs), contexts, lambda c: self._grid_at(num_seqs, c))
        return self._grid_at(num_seqs, contexts) if times is None else times

    def _grid_at(self, num_seqs: int, contexts: np.ndarray) -> np.ndarray:
        """``decode_times_grid_s`` computed."""
        if self.pp != 1:
            return np.asarray(self._total(num_seqs, 0, 0.0, 0, num_seqs, num_seqs, contexts, sqrt=np.sqrt),
                              dtype=np.float64)
        return self._decode_at(num_seqs, contexts)

    def decode_run_sums_s(self, num_seqs: int, contexts: np.ndarray, num_steps: int) -> np.ndarray | None:
        """For each int context c of ``contexts``, the summed times of a pure-decode run of
        ``num_steps`` steps from c (``decode_times_grid_s`` at c, c + n, ... added left to right),
        bit-identical to summing the grid's columns; memoised per context. None with expert
        parallelism."""
        if self._ep is not None:
            return None
        if num_seqs <= 0 or num_steps <= 0:
            return np.zeros(np.shape(contexts), dtype=np.float64)
        times = self._tables.lookup(("run", num_seqs, num_steps), contexts,
                                    lambda c: self._run_sums(num_seqs, c, num_steps))
        return self._run_sums(num_seqs, contexts, num_steps) if times is None else times

    def run_sums_table_s(self, num_seqs: int, num_steps: int, max_context: int) -> np.ndarray | None:
        """``decode_run_sums_s(num_seqs, np.arange(size), num_steps)`` for a size > ``max_context``
        (``num_seqs``, ``num_steps`` > 0): the table it reads, for a caller that indexes it itself;
        valid until the caller's next call. None with expert parallelism or past
        ``context_tables.SPAN`` (then ``decode_run_sums_s``), or for a subclass with its own."""
        if self._ep is not None or num_seqs <= 0 or num_steps <= 0 \
                or type(self).decode_run_sums_s is not AnalyticCostModel.decode_run_sums_s:
            return None
        return self._tables.table(("run", num_seqs, num_steps), max_context,
                                  lambda c: self._run_sums(num_seqs, c, num_steps))

    def decode_row_s(self, num_seqs: int, max_context: int) -> list[float] | None:
        """``decode_times_grid_s(num_seqs, np.arange(size)).tolist()`` for a size > ``max_context``
        (a policy pricing a few passes at a time reads them off by index; valid until its next
        call); None with expert parallelism, past ``context_tables.SPAN`` or without a batch."""
        row = self._rows.get(num_seqs)
        if row is not None and max_context < len(row):
            return row
        if self._ep is not None or num_seqs <= 0 or max_context >= SPAN:
            return None
        row = self._rows[num_seqs] = self._grid_at(num_seqs, np.arange(_row_size(max_context), dtype=np.int64)).tolist()
        return row

    def verify_rows_s(self, num_seqs: int, max_tokens: int, max_context: int) -> list[list[float]] | None:
        """Verify passes as Python lists: ``rows[t][c]`` is ``verify_step_time_s(num_seqs, t, c)``
        (``decode_times_at_s``'s prices) for t in 1..``max_tokens`` and every c <= ``max_context``
        (rows are longer); valid until the caller's next call. None with expert parallelism or
        past ``context_tables.SPAN``."""
        key = ("verify", num_seqs)
        rows = self._rows.get(key)
        if rows is not None and max_tokens < len(rows) and max_context < len(rows[1]):
            return rows
        if self._ep is not None or num_seqs <= 0 or max_tokens <= 0 or max_context >= SPAN:
            return None
        size = _row_size(max_context if rows is None else max(max_context, len(rows[1])))
        contexts = np.arange(size, dtype=np.int64)
        rows = [[]] + [self._verify_at(num_seqs, t, contexts).tolist() for t in range(1, max_tokens + 1)]
        self._rows[key] = rows
        return rows

    def _run_sums(self, num_seqs: int, contexts: np.ndarray, num_steps: int) -> np.ndarray:
        total = self.decode_times_grid_s(num_seqs, contexts).copy()
        for j in range(1, num_steps):
            total += self.decode_times_grid_s(num_seqs, contexts + j * num_seqs)
        return total

    def _short_decode_run(self, num_seqs: int, context_tokens: int, num_steps: int) -> np.ndarray:
        return np.array(self._short_decode_list(num_seqs, context_tokens, num_steps), dtype=np.float64)

    def _short_decode_list(self, num_seqs: int, context_tokens: int, num_steps: int) -> list[float]:
        """``decode_step_times_s`` for a few steps (pp = 1) in Python floats: a short run is
        cheaper step by step than as a dozen small numpy operations. Each step evaluates
        ``_total``'s expression in its order, with the terms that depend only on the batch
        size memoised (a pure decode's prefill terms are exact zeros, so they drop out)."""
        gemm, kv_write, adds = self._terms(num_seqs)
        dc, kv_read, sqrt = self._attn_dc, self._kv_read, math.sqrt
        steps = range(context_tokens, context_tokens + num_steps * num_seqs, num_seqs)
        if len(adds) == 4:  # tp = 1: the same adds, left to right, unrolled
            a0, a1, a2, a3 = adds
            return [gemm + sqrt((tc := ctx * dc) * tc + (tm := ctx * kv_read + kv_write) * tm)
                    + a0 + a1 + a2 + a3 for ctx in steps]
        out = []
        for ctx in steps:
            tc = ctx * dc
            tm = ctx * kv_read + kv_write
            t = gemm + sqrt(tc * tc + tm * tm)
            for a in adds:
                t = t + a
            out.append(t)
        return out

    def _terms(self, num_seqs: int) -> tuple[float, float, tuple[float, ...]]:
        terms = self._decode_terms.get(num_seqs)
        if terms is None:
            terms = self._decode_terms[num_seqs] = self._decode_run_terms(num_seqs)
        return terms

    def verify_step_time_s(self, num_seqs: int, num_tokens: int, context_tokens: int) -> float:
        """``step_time_s((), num_seqs, num_tokens, context_tokens)``: a decode-only step of
        ``num_tokens`` tokens (a speculative verify pass, or a candidate a speculator prices), with
        the terms that depend only on the batch memoised; bit-identical (``_total``'s operations
        in its order, the exact-zero prefill terms dropped)."""
        if self._ep is not None or self.pp != 1 or num_tokens <= 0:
            return self.step_time_s((), num_seqs, num_tokens, context_tokens)
        key = (num_seqs, num_tokens)
        terms = self._decode_terms.get(key)
        if terms is None:
            terms = self._decode_terms[key] = self._decode_run_terms(num_seqs, num_tokens)
        gemm, kv_write, adds = terms
        pairs = context_tokens if num_tokens == num_seqs else context_tokens * num_tokens / num_seqs
        tc = pairs * self._attn_dc
        tm = context_tokens * self._kv_read + kv_write
        if len(adds) == 4:  # tp = 1: the same adds, left to right, unrolled
            a0, a1, a2, a3 = adds
            return gemm + math.sqrt(tc * tc + tm * tm) + a0 + a1 + a2 + a3
        t = gemm + math.sqrt(tc * tc + tm * tm)
        for a in adds:
            t = t + a
        return t

    def _decode_run_terms(self, num_seqs: int, num_tokens: int | None = None, prefill_tokens: int = 0,
                          num_chunks: int = 0) -> tuple[float, float, tuple[float, ...]]:
        """(GEMM and MoE seconds, KV write seconds, the terms added after attention, in order)
        of an iteration of ``num_seqs`` decoding sequences (computing ``num_tokens`` tokens in
        all, if not one each) beside ``num_chunks`` prefill chunks of ``prefill_tokens`` tokens in
        all (none for a pure decode), as ``_total`` computes them with pp = 1."""
        decode_tokens = num_seqs if num_tokens is None else num_tokens
        tokens = decode_tokens + prefill_tokens
        tc = tokens * self._dense_c
        tm = self._dense_w + tokens * self._dense_a
        t = math.sqrt(tc * tc + tm * tm)
        if self._moe:
            touched = self._num_experts * (1.0 - self._q ** tokens)
            tc = tokens * self._moe_c
            tm = touched * self._expert_w + self._moe_fixed_w + tokens * self._moe_a
            t += math.sqrt(tc * tc + tm * tm)
        adds = []
        if self._ar_count:
            lat, per_token = self._ar_small if tokens <= self._ar_threshold_tokens else self._ar_big
            adds.append(self._ar_count * (lat + tokens * per_token))
        adds.append(self._lo_prefill if num_chunks else self._lo_decode)
        tc = (num_chunks + decode_tokens) * self._head_c
        adds.append(math.sqrt(tc * tc + self._head_w * self._head_w))
        adds.append(self._o_it)
        adds.append((num_chunks + num_seqs) * self._o_seq)
        return t, tokens * self._kv_write, tuple(adds)

    def step_parts(
        self, prefill: Chunks, num_decode_seqs: int, num_decode_tokens: int, decode_context_tokens: int
    ) -> dict[str, float]:
        """Seconds per op group and per kind (compute / memory / comm / overhead / bubble), plus total."""
        total = self.step_time_s(prefill, num_decode_seqs, num_decode_tokens, decode_context_tokens)
        tokens = num_decode_tokens + sum(new for new, _ in prefill)
        if self._ep is not None:  # expert parallel: the routed experts and their all-to-all
            parts = dict.fromkeys(("gemm", "attention", "lm_head", "compute", "memory", "overhead", "bubble"), 0.0)
            routed, comm = self._ep.moe_s(tokens, step_key(tokens, decode_context_tokens)) if tokens else (0.0, 0.0)
            parts.update(moe=routed, comm=comm, total=total)
            return parts
        chunks = len(prefill)
        pairs = sum(new * (off + 0.5 * (new + 1)) for new, off in prefill)
        kv_p = sum(off + new for new, off in prefill)
        parts = dict.fromkeys(("gemm", "moe", "attention", "lm_head", "compute", "memory", "comm",
                               "overhead", "bubble"), 0.0)
        if tokens <= 0:
            parts["total"] = total
            return parts
        stage_scale = 1.0
        seqs = chunks + num_decode_seqs
        if self.pp > 1:
            micro = max(1, min(self._micro, seqs))
            stage_scale = (micro + self.pp - 1) / micro

        def add(name: str, tc: float, tm: float, scale: float) -> None:
            t = math.hypot(tc, tm)
            parts[name] = t * scale
            if t > 0:
                parts["compute"] += t * scale * tc * tc / (tc * tc + tm * tm)
                parts["memory"] += t * scale * tm * tm / (tc * tc + tm * tm)

        add("gemm", tokens * self._dense_c, self._dense_w + tokens * self._dense_a, 1.0)
        if self._moe:
            touched = self._num_experts * (1.0 - self._q ** tokens)
            add("moe", tokens * self._moe_c,
                touched * self._expert_w + self._moe_fixed_w + tokens * self._moe_a, 1.0)
        pairs_d = decode_context_tokens * num_decode_tokens / num_decode_seqs if num_decode_seqs else 0.0
        add("attention", pairs * self._attn_pc + pairs_d * self._attn_dc,
            (kv_p + decode_context_tokens) * self._kv_read + tokens * self._kv_write, 1.0)
        stage_kernels = parts["compute"] + parts["memory"]
        comm = 0.0
        if self._ar_count:
            lat, per_token = self._ar_small if tokens <= self._ar_threshold_tokens else self._ar_big
            comm = self._ar_count * (lat + tokens * per_token)
        layer_overhead = self._lo_prefill if chunks else self._lo_decode
        stage = stage_kernels + comm + layer_overhead
        parts["bubble"] = stage * (stage_scale - 1.0)
        parts["comm"] = comm + (self._send_lat + tokens * self._send_c if self.pp > 1 else 0.0)
        add("lm_head", (chunks + num_decode_tokens) * self._head_c, self._head_w, 1.0)
        parts["overhead"] = layer_overhead + self._o_it + seqs * self._o_seq
        parts["total"] = total
        return parts

    @property
    def expert_parallel(self) -> ExpertParallel | None:
        """The expert-parallel model (routing table, placement), if configured."""
        return self._ep

    def held_time_s(self, num_tokens: int, key: int) -> float:
        """Seconds this (expert) pool is busy serving ``num_tokens`` tokens of attention replicas'
        MoE layers (sim/engine/held_pool.py); needs ``expert_parallel``."""
        if self._ep is None:
            raise ConfigError("an expert pool's cost model needs expert_parallel", "cost_model.expert_parallel")
        return self._ep.held_s(num_tokens, step_key(num_tokens, key))

    def expert_weight_bytes(self, num_tokens: float) -> float:
        """Routed-expert weight bytes one iteration of ``num_tokens`` tokens reads (all MoE layers,
        whole replica): touched experts x expert bytes, or the EP table's activated experts."""
        if not self._moe or num_tokens <= 0:
            return 0.0
        if self._ep is not None:
            return self._ep.expert_weight_bytes(num_tokens)
        m = self.model
        touched = self._num_experts * (1.0 - self._q ** num_tokens)
        return m.num_moe_layers * touched * m.expert_params * dtype_bytes(self.weight_dtype)

    # ------------------------------------------------------------ memory, swap, power, price

    @property
    def weight_bytes_per_gpu(self) -> float:
        """Weight bytes each GPU holds (even split over tp x pp; with EP its experts' share)."""
        if self._ep is not None:
            return self._ep.weight_bytes_per_gpu
        if self._remote_moe_bytes:
            return (self._model_weight_bytes() - self._remote_moe_bytes) / self.num_gpus
        return self._model_weight_bytes() / self.num_gpus

    def _model_weight_bytes(self) -> float:
        """All weights of the model (embeddings and LM head in 16 bits when quantized)."""
        return model_weight_bytes(self.model, self.weight_dtype, not self.params.quantized_embeddings)

    def activation_reserve_bytes(self) -> float:
        """Per-GPU bytes kept for activations, workspace and graphs."""
        if self.params.activation_reserve_bytes is not None:
            return self.params.activation_reserve_bytes
        m = self.model
        width = max(m.intermediate if m.num_mlp_dense_layers else 0, m.top_k * m.moe_intermediate)
        per_token = (4 * m.hidden + 2 * width / self.tp + m.vocab / self.tp) * ACT_BYTES
        return cc.ACTIVATION_RESERVE_BYTES + cc.ACTIVATION_RESERVE_TOKENS * per_token

    def kv_capacity_bytes(self, gpu_memory_utilization: float) -> float:
        """KV bytes the whole replica can hold: per GPU, memory x util - weights - reserve.

        With ``kv_in: grace`` the KV lives in this replica's share of Grace memory instead.
        Raises ConfigError when nothing is left.
        """
        d, m, p = self.device, self.model, self.params
        usable = d.memory_bytes * gpu_memory_utilization
        weights = 0.0 if p.weights_in == "grace" else self.weight_bytes_per_gpu
        grace_share = (self._c2c_bw / (d.c2c_measured_gbps * 1e9)) if d.is_superchip else 0.0
        grace = d.grace_memory_bytes * grace_share * gpu_memory_utilization
        if p.weights_in == "grace" and self.weight_bytes_per_gpu > grace:
            raise ConfigError(f"{m.name} weights ({self.weight_bytes_per_gpu / GIB:.1f} GiB per GPU) do not fit "
                              f"{d.name}'s share of Grace memory ({grace / GIB:.1f} GiB)", "cost_model.weights_in")
        free = usable - weights - self.activation_reserve_bytes()
        if p.kv_in == "grace":
            free_kv = grace - (self.weight_bytes_per_gpu if p.weights_in == "grace" else 0.0)
            if free < 0:
                free_kv = -1.0  # the HBM side must still hold weights and activations
        else:
            free_kv = free
        if free_kv <= 0:
            raise ConfigError(
                f"no room for KV cache: {m.name} in {self.weight_dtype} needs "
                f"{self.weight_bytes_per_gpu / GIB:.2f} GiB of weights + "
                f"{self.activation_reserve_bytes() / GIB:.2f} GiB of activations per GPU, but {d.name} offers "
                f"{usable / GIB:.2f} GiB at gpu_memory_utilization={gpu_memory_utilization} "
                f"(tp={self.tp}, pp={self.pp}); use a bigger device or slice, more tp/pp or a smaller "
                "weight_dtype", "hardware.device")
        return free_kv * self.num_gpus

    def swap_time_s(self, num_bytes: float) -> float:
        """Copy KV between device and host: overhead + bytes over every GPU's host link in parallel."""
        d = self.device
        bw = (self._c2c_bw if d.is_superchip else d.host_link_measured_gbps * 1e9) * self.num_gpus
        return self.params.swap_overhead_s + num_bytes / bw

    def swap_copy_time_s(self, num_bytes: float, num_blocks: int) -> float:
        """``swap_time_s`` plus ``swap_call_overhead_s`` per copy call: vLLM copies each block of
        each layer's K and V cache with its own call, the GPUs of a stage in parallel, so 16-token
        blocks make many small copies that do not reach the link's bandwidth (FastSwitch)."""
        t = self.swap_time_s(num_bytes)
        if self.params.swap_call_overhead_s and num_blocks:
            t += num_blocks * 2 * self.model.num_layers * self.params.swap_call_overhead_s
        return t

    def power_w(self, phase: str) -> float:
        """Average power per GPU (or per slice) in 'prefill', 'decode' or 'idle'."""
        return self.device.phase_power_w(phase)

    def price_per_gpu_hour(self) -> float:
        """USD per GPU-hour (per slice for MIG): the param if set, else the catalog's."""
        if self.params.price_per_gpu_hour is not None:
            return self.params.price_per_gpu_hour
        return self.device.price_per_gpu_hour


def _row_size(max_context: int) -> int:
    """The length of a price row covering contexts 0..``max_context``: ``MIN_SIZE`` doubled."""
    size = MIN_SIZE
    while size <= max_context:
        size *= 2
    return size
