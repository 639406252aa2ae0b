"""Every fitted constant of the analytic cost model, each with the measurement it came from.

The cost model's ``Params`` take their defaults from here and ``python -m hardware.calibrate``
shows how well they reproduce HARDWARE.md section 5. Change a value here, rerun calibrate,
and review the table in the diff. Nothing else in hardware/ holds a fitted number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# ---------------------------------------------------------------- kernel efficiencies

#: Fraction of dense BF16/FP16 tensor peak a large GEMM reaches. Source: Llama-2-7B
#: gate+up GEMM at 4,096 tokens, 748 TFLOPS on H100 (0.76) and 220 on A100 (0.70); the
#: published ranges 71-85% (H100) and 69-74% (A100).
GEMM_COMPUTE_EFFICIENCY = 0.73

#: Fraction of HBM bandwidth a weight-streaming (small-batch) GEMM reaches. Source: the same
#: GEMM at 1 token, 2.82 TB/s on H100 (0.84) and 116 us on A100 (0.76); ranges 63-84% (H100)
#: and 62-78% (A100).
MEMORY_EFFICIENCY = 0.78

#: FP8/INT8 GEMMs reach a smaller share of their (doubled) peak than BF16 does, per
#: architecture. Source: TensorRT-LLM FP8 first-token latency at 2,048 tokens, LLaMA-7B on
#: H100 (36 ms) and on L40S (73 ms). Blackwell assumed like Hopper (uncertain).
#: CDNA3 (MI300X): solved by ``python -m hardware.fit_v05`` from the ``azure_nd_mi300x`` calibration
#: rows (vLLM ROCm of Nov 2024, Llama-3.1-405B FP8 on 8x MI300X, benchmark_throughput at six
#: lengths): the effective FP8 rate at vLLM's TP8 shapes and kernels (the same source's hipBLASLt
#: GEMMs at 8192^3 reach about twice it, 1159 TFLOPS).
FP8_COMPUTE_FACTOR = {"hopper": 0.62, "blackwell": 0.62, "ada": 0.80, "cdna3": 0.293, "default": 0.70}

#: GDDR6, PCIe-only parts (A10G: Ampere GA102, L4: Ada AD104): one factor on their GEMM compute, attention
#: compute and memory efficiencies (the three above were measured on HBM parts); ``device_efficiency_factor``
#: of the cost model overrides it. Issue 17, fid10: ``python -m hardware.fit_v05`` solves it from the
#: ``llm_price_compass`` calibration rows (github.com/arc53/llm-price-compass: vLLM 0.5.x benchmark_serving
#: ShareGPT, 1000 prompts at rate inf, output throughput of Llama-3.1-8B on 1x L4 and of a Llama-3-8B
#: fine-tune on 2x A10G, runs of 2024-08): 0.537 (median signed error +69% at 1 -> 0; alone the L4 row
#: asks 0.64, the A10G pair 0.45). NOT adopted: stored 1.0 (no change), against fid10's adoption rule,
#: because with 0.537 the independent A10G / L4 measurements at light load, which the factor would also
#: slow, go from right to twice too slow (held-out A10G 23.2% -> 89.9% median error, FMBench's
#: single-request TGI E2E on A10G +2% -> +76%): these throughput runs' shortfall is some mechanism of
#: the loaded, saturated engine on these hosts, not the kernels' share of peak (README (p);
#: hardware/corpus/SOURCES.md, fid10 addendum). Commit 071517a has it adopted.
#: After round 14's CUDA-visible device memory the rows err +16% / +10% at 1 and the solver gives 0.830;
#: still stored 1.0 for the same reason (the same deviation, SOURCES.md fid10 addendum).
GDDR_PCIE_EFFICIENCY_FACTOR = {"A10G": 1.0, "L4": 1.0}

#: Fraction of BF16 peak reached by fused (flash) attention. FlashAttention-2 reaches
#: ~35-50% of H100 peak, FA3 more; no section-5 point isolates it (uncertain).
ATTENTION_COMPUTE_EFFICIENCY = 0.45

# ---------------------------------------------------------------- collectives


@dataclass(frozen=True)
class AllReduceAlgo:
    """Latency and reached fraction of per-direction link bandwidth of one all-reduce algorithm."""

    latency_s: float
    bus_efficiency: float
    switch_reduction: bool = False  # NVLink SHARP: data crosses each link once, not 2(n-1)/n


#: Fitted to HARDWARE.md section 5's all-reduce points.
ALLREDUCE_ALGOS = {
    # NCCL NVLS (in-switch reduction) on 8x H100 DGX: 2.1 / 8.4 / 33.5 / 134 MB in
    # 34 / 51 / 115 / 322 us. Assumed to be what NCCL picks on NVSwitch Hopper/Blackwell.
    "nvls": AllReduceAlgo(latency_s=30e-6, bus_efficiency=1.0, switch_reduction=True),
    # NCCL ring on 8x A100 DGX: 134 MB in 675 us. The fit exceeds the nominal 300 GB/s per
    # direction by 20%, so the measurement's setup probably differed (uncertain).
    "ring": AllReduceAlgo(latency_s=20e-6, bus_efficiency=1.2),
    # NCCL small messages (low-latency protocol) on H100 TP6: 0.5 MB 23 us, 4 MB 53 us.
    "nccl_ll": AllReduceAlgo(latency_s=18.7e-6, bus_efficiency=0.43),
    # Serving stacks' custom two-shot kernel on H100 TP6: 0.5 MB 13 us, 4 MB 31 us.
    "two_shot": AllReduceAlgo(latency_s=10.4e-6, bus_efficiency=0.72),
    # PCIe-only GPUs: NCCL ring through the host bridge (assumed 80% of the link).
    "pcie_ring": AllReduceAlgo(latency_s=30e-6, bus_efficiency=0.8),
    # PCIe-only GPUs without peer-to-peer (``DeviceSpec.gpu_p2p`` False: AWS G5's A10Gs): NCCL's ring staged
    # through host shared memory. Bus efficiency (of the nominal link) solved by ``python -m hardware.fit_v05``
    # from the ``pytorch127077_a10g_allreduce`` calibration row (nccl-tests all_reduce_perf, 29,388,800 bytes on
    # 4x A10G, NCCL 2.18.5: 14,207 us, busbw 3.10 GB/s; pytorch/pytorch#127077; SOURCES.md fid11), re-solved
    # with the latency below (0.09718, unchanged at four digits). Latency (was pcie_ring's assumed 30 us; the
    # 28 MB row pins none) solved by ``python -m hardware.fit_v05`` from the ``jinwoong_a10g_l4_blog``
    # calibration rows (vLLM V1 ``vllm bench serve`` closed loops on one g5.12xlarge, Qwen2.5-7B / 14B at TP 1 /
    # 2 / 4): median signed error zero over the four concurrency-1 median TPOT rows at TP > 1, where each
    # all-reduce carries one token's activations (31.49 us; adopted by fid12's rule: the TP 1 row, which has no
    # all-reduce, errs -5.3%, the twelve TP > 1 TPOT rows 3.6% median). The bus efficiency at serving sizes is
    # not pinned by that source (its concurrency-8 / 32 rows would ask 0.0825; not adopted, SOURCES.md fid12).
    "pcie_shm": AllReduceAlgo(latency_s=31.5e-6, bus_efficiency=0.0972),
}

#: Serving stacks use their custom kernel up to this message size (vLLM: 8 MiB), NCCL above.
CUSTOM_ALLREDUCE_MAX_BYTES = 8 << 20

#: Pipeline-stage activation send: bytes / link bandwidth + this (HARDWARE.md section 4).
PP_SEND_LATENCY_S = 10e-6

# ---------------------------------------------------------------- serving-stack overheads


@dataclass(frozen=True)
class StackOverheads:
    """Fixed costs a serving stack adds to the kernels' time (CPU work, launches, small kernels)."""

    iteration_s: float  # per iteration: scheduling, input preparation, sampling
    layer_prefill_s: float  # per layer in iterations with prefill (not CUDA-graphed)
    layer_decode_s: float  # per layer in pure-decode iterations (graphed, small kernels)
    seq_s: float  # per sequence in the batch per iteration (CPU bookkeeping, sampling)
    source: str = ""
    #: per request, outside the engine loop (tokenisation, detokenisation, HTTP): added to a
    #: request's TTFT and end-to-end latency by ``hardware.fidelity`` and ``servesim validate``
    request_s: float = 0.0
    #: share of the dense GEMM compute efficiency its routed-expert (grouped) GEMMs reach
    moe_compute_factor: float = 1.0
    #: small TP all-reduces on the stack's custom kernel (False: NCCL for every size)
    custom_allreduce: bool = True
    #: per TP all-reduce call on top of the algorithm's time (framework and launch cost)
    allreduce_call_s: float = 0.0
    #: serving front end (``sim/engine/frontend.py``): each request holds one of ``frontend_servers``
    #: serial FIFO servers for ``frontend_request_s + frontend_token_s x prompt tokens`` before it reaches
    #: the replica's queue (tokenising and handing it to the engine core one request at a time); 0 and 0:
    #: no front end (every stack but ``vllm_v1_engine``)
    frontend_request_s: float = 0.0
    frontend_token_s: float = 0.0
    frontend_servers: int = 1


# Fitted values of the issue-17 stacks (see STACKS below; ``hardware.fidelity --fit`` prints them).
VLLM_V1_ITERATION_S = 3.0e-3
VLLM_V1_LAYER_DECODE_S = 20e-6
VLLM_V1_SEQ_S = 10e-6
VLLM_V1_REQUEST_S = 90e-3  # edge of the fit grid: absorbs vLLM 0.6 multi-step (10) first-token delay
#: vLLM >= 0.8, the V1 engine (issue 17, fid5): engine core in its own process, async scheduling,
#: torch.compile + piecewise CUDA graphs, chunked prefill always on. ``VLLM_V1_ENGINE_ITERATION_S`` (per
#: step) and ``VLLM_V1_ENGINE_REQUEST_S`` (per request: tokenise, detokenise, HTTP, engine-core IPC) are
#: solved by ``python -m hardware.fit_v05`` (``hardware.fit_v1_engine``) from the
#: ``inferencebench_marathon_h100`` calibration rows (vLLM 0.21.0 on H100, four models, 4 closed-loop
#: clients): median signed error zero over the source's TPOT rows and over its TTFT rows. The per-sequence
#: cost was NOT adopted in fid5 (``VLLM_V1_SEQ_S`` kept). The marathon runs at most 4 sequences; the high-batch
#: calibration run ``kvcached_h100_inf`` (vLLM 0.19.0, 500 requests at once) needs 46.7 us per sequence to
#: match its throughput but then misses its own TPOT by +540% and TTFT by -87%: its requests reached the
#: engine about 1 / throughput apart (a serial front end), a mechanism the stack does not have.
#: fid7: the serial front end is that mechanism. ``VLLM_V1_ENGINE_FRONTEND_S`` (``frontend_request_s``: one
#: serial server per replica, each request holding it this long before it reaches the engine's queue) is
#: solved from ``kvcached_h100_inf``'s request throughput, ``VLLM_V1_ENGINE_SEQ_S`` from the same run's
#: median TPOT, jointly with the marathon's per-step and per-request costs (``hardware.fit_v1_engine.
#: solve_joint``, printed by ``python -m hardware.fit_v05``); the run's median TTFT, solved from nothing,
#: is then within 16%. Source of the front end: the run's figures only (95 req/s with 500 requests sent at
#: once; inferred, not measured): the serial cost could be the API server's (tokenising a 512-token prompt,
#: the engine-core hand-off) or the benchmark client's own serial sends; this data does not separate a
#: client-side from a server-side cost, nor a per-request from a per-prompt-token cost (``frontend_token_s``
#: stays 0: one prompt length). ``request_s`` (the rest of the per-request delay, added after the run) is
#: re-solved with the front end's service time in every TTFT: 18.5 -> 7.3 ms. fid15g re-ran the same solve
#: with the marathon's 10 prompts replayed through the prefix cache: 0.105 ms, 7.30 ms and 31.5 us again, the
#: front end 9.526 -> 9.520 ms (9.53 -> 9.52 ms stored).
VLLM_V1_ENGINE_ITERATION_S = 0.105e-3
VLLM_V1_ENGINE_REQUEST_S = 7.3e-3
VLLM_V1_ENGINE_SEQ_S = 31.5e-6
VLLM_V1_ENGINE_FRONTEND_S = 9.52e-3
SGLANG_ITERATION_S = 2.0e-3
SGLANG_LAYER_DECODE_S = 20e-6
SGLANG_SEQ_S = 60e-6
SGLANG_REQUEST_S = 5e-3

#: Per-layer cost of an eager (not graph-captured) vLLM forward: the 2023 ``vllm`` stack's fit.
VLLM_EAGER_LAYER_S = 150e-6

#: vLLM 0.4-0.5 (CUDA graphs, synchronous CPU loop): the per-step CPU cost a + b x batch that
#: blocks the GPU. Solved by ``python -m hardware.fit_v05`` from the ``vllm_blog_v060``
#: calibration source (the vLLM v0.6.0 blog's statements about v0.5.x, Llama-3-8B on 1x H100):
#: one decode step every 13 ms under light load, and GPU execution 38% of the time at load.
VLLM_V05_ITERATION_S = 6.56e-3
VLLM_V05_SEQ_S = 43.5e-6

#: vLLM 0.4-0.5's engine loop, per sequence per step, measured where the batch is known (issue 17,
#: fid3): solved by ``python -m hardware.fit_v05`` from the ``vllm_pr7117_h100`` and
#: ``vllm_pr5399_h100`` calibration rows (benchmark_throughput of 1000 fixed 256/256 requests on H100,
#: TP1 and TP8: 256 sequences running) so that their median signed error is zero; the per-step part
#: is re-solved from the blog's light-load step (13 ms). ``vllm_v05`` and ``vllm_v05_offline`` use
#: these; the blog-only pair above (batch of the profile assumed 256) stays the base of ``vllm_v06``.
VLLM_V05_ENGINE_SEQ_S = 73.8e-6
VLLM_V05_ENGINE_ITERATION_S = 6.53e-3

#: vLLM 0.6 single-step: share of vLLM 0.5's per-step CPU cost that multi-step scheduling
#: would amortise; solved by ``python -m hardware.fit_v05`` from the v0.6.0 blog's "+28%
#: throughput from multi-step, Llama 70B on 4x H100" at the sgl-4 calibration setting.
VLLM_V06_CPU_SHARE = 0.607

#: vLLM 0.4-0.5 offline (``benchmark_latency`` / ``benchmark_throughput`` drive the ``LLM``
#: engine in-process, no OpenAI server): the share of ``vllm_v05``'s per-step CPU cost that is
#: not the API server. The v0.6.0 blog's profile of v0.5.x (Llama-3-8B, 1x H100): API server
#: 33%, scheduling and input preparation 29%, GPU execution 38%; offline keeps 29 / (33 + 29).
VLLM_V05_OFFLINE_CPU_SHARE = 29.0 / (33.0 + 29.0)

#: vLLM's fused_moe Triton kernel of 2024 (tuned configs): share of the dense GEMM compute
#: efficiency its routed-expert GEMMs reach. Solved by ``python -m hardware.fit_v05`` from the
#: ``vllm_pr3240_mixtral`` calibration rows (vllm-project/vllm#3240: Mixtral-8x7B on 2x A100,
#: benchmark_latency 1000/50): the latency step from batch 32 to 64 (32,000 more prompt tokens,
#: dominated by the experts' prefill GEMMs). Measured on Ampere only; applied to the 2024 vLLM
#: stacks on every GPU (uncertain on Hopper, where Triton of 2024 had no wgmma path either).
#: Cross-check, not a fit: vllm-project/vllm#24700's H100 kernel times (a 2025 build, Mixtral TP 2,
#: tuned config) reach 0.60 / 0.67 of the dense efficiency at 1024 / 1536 tokens
#: (``experiments/v05_mechanism_sensitivity.py``; README (l)).
VLLM_FUSED_MOE_COMPUTE_FACTOR = 0.63

#: SGLang's routed-expert kernel (its Triton fused_moe with tuned configs, block-FP8 weights, TP experts, no EP) on
#: Hopper: share of the dense GEMM compute efficiency its grouped GEMMs reach. Solved by ``python -m hardware.fit_v05``
#: (``hardware.fit_sglang_moe``: 0.2301, stored rounded, SOURCES.md fid15c) from the ``sglang_pr14764_dsv31_h200``
#: calibration row sgp-1 (sgl-project/sglang#14764: DeepSeek-V3.1 on 8x H200, TP 8, ``bench_one_batch`` 16 x 512
#: tokens prefilled in one iteration in 288.27 ms; 137.0 ms priced at factor 1). A constant of the engine's kernel,
#: applied to every model on the ``sglang`` stack, but solved at DeepSeek-V3's fine-grained shape (256 experts,
#: 2048 / TP 8 = 256 columns per GPU, ~256 tokens per expert): untested for coarse experts (Mixtral-like), where it
#: is likely pessimistic. Whatever else of that iteration the model misprices (MLA prefill attention, block-FP8
#: dense GEMMs, the 8192-token all-reduces) is absorbed into it.
SGLANG_FUSED_MOE_COMPUTE_FACTOR = 0.23

#: vLLM before its custom all-reduce (v0.3.0, 2024-01): every TP all-reduce went through NCCL
#: (torch.distributed), costing this much per call beyond the NCCL algorithm's own time.
#: Solved by ``python -m hardware.fit_v05`` from the ``vllm_pr2192_allreduce`` calibration row
#: (vllm-project/vllm#2192: Llama-70B on 4x A100-80GB, benchmark_latency 256/256 batch 64,
#: 16.37 s with NCCL, 14.57 s with the custom kernel; the 14.57 s is the ``vllm`` stack's own
#: calibration point, so the difference is the all-reduces' alone).
VLLM_NCCL_CALL_S = 40.7e-6

#: One profile per measured stack; ``stack: name`` in the cost-model params picks one.
STACKS = {
    "trtllm": StackOverheads(
        iteration_s=0.5e-3, layer_prefill_s=110e-6, layer_decode_s=30e-6, seq_s=0.0,
        source="TensorRT-LLM first-token latency (128 tokens) and static-batch throughput points",
    ),
    "vllm": StackOverheads(
        iteration_s=2.0e-3, layer_prefill_s=VLLM_EAGER_LAYER_S, layer_decode_s=VLLM_EAGER_LAYER_S, seq_s=60e-6,
        source="vLLM Llama-70B TP4 A100 batch 64 end-to-end 14.57 s (2023 vLLM, eager mode)",
    ),
    "distserve": StackOverheads(
        iteration_s=3.0e-3, layer_prefill_s=30e-6, layer_decode_s=30e-6, seq_s=38.5e-6,
        source="DistServe's fitted OPT-13B A100 formulas (intercepts and per-batch term)",
    ),
    "sim_profile": StackOverheads(
        iteration_s=12.5e-3, layer_prefill_s=0.0, layer_decode_s=0.0, seq_s=360e-6,
        source="published simulator's Llama-2-70B DGX-H100 TP4 profile, batch 1-64",
    ),
    "ideal": StackOverheads(0.0, 0.0, 0.0, 0.0, source="kernels only"),
    # Current CUDA-graph engines (issue 17). Fitted by ``python -m hardware.fidelity --fit`` on
    # the calibration sources of hardware/corpus/points.csv (sglang_vllm060: SGLang 0.3.0 and
    # vLLM 0.6.0 on A100 TP1 and H100 TP4, offline and Poisson online); the other sources are
    # held out. Graph-captured decode leaves a small per-layer cost; sampling and bookkeeping
    # remain per sequence.
    # NB: despite its name, ``vllm_v1`` is vLLM 0.6.0 with multi-step scheduling (10 steps): it is fitted on
    # the sglang_vllm060 rows, and its 90 ms per-request delay is the multi-step first-token wait. It is
    # kept for the configs and gates that use it; the V1 engine (vLLM >= 0.8) is ``vllm_v1_engine``.
    "vllm_v1": StackOverheads(
        iteration_s=VLLM_V1_ITERATION_S, layer_prefill_s=60e-6, layer_decode_s=VLLM_V1_LAYER_DECODE_S,
        seq_s=VLLM_V1_SEQ_S, request_s=VLLM_V1_REQUEST_S,
        source="sglang_vllm060 corpus source (vLLM 0.6.0 rows), fitted by hardware.fidelity --fit",
    ),
    # vLLM >= 0.8 (V1 engine, 2025-2026): the scheduler and the model runner in an engine-core process,
    # tokenisation / detokenisation / HTTP in the API-server process, async scheduling overlapping the next
    # step's scheduling with the current one's execution, torch.compile with piecewise CUDA graphs (V1's
    # capture sizes cover steps up to 512 tokens, prefill pieces included, so steps with a prefill take the
    # graphed per-layer cost too; longer prefill steps, compiled but not graphed, are priced the same:
    # uncertain). Per-step and per-request costs solved from inferencebench_marathon_h100, the serial front end
    # (API-server process: tokenising and handing requests to the engine core one at a time; vLLM scales it
    # out with --api-server-count) and the per-sequence cost from kvcached_h100_inf (fid7).
    "vllm_v1_engine": StackOverheads(
        iteration_s=VLLM_V1_ENGINE_ITERATION_S, layer_prefill_s=VLLM_V1_LAYER_DECODE_S,
        layer_decode_s=VLLM_V1_LAYER_DECODE_S, seq_s=VLLM_V1_ENGINE_SEQ_S, request_s=VLLM_V1_ENGINE_REQUEST_S,
        frontend_request_s=VLLM_V1_ENGINE_FRONTEND_S,
        source="inferencebench_marathon_h100 (vLLM 0.21.0, H100, 4 clients: per-step and per-request costs) and "
               "kvcached_h100_inf (vLLM 0.19.0, 500 requests at once: serial front end from its throughput, "
               "per-sequence cost from its TPOT) corpus sources, solved jointly by python -m hardware.fit_v05",
    ),
    "sglang": StackOverheads(
        iteration_s=SGLANG_ITERATION_S, layer_prefill_s=60e-6, layer_decode_s=SGLANG_LAYER_DECODE_S,
        seq_s=SGLANG_SEQ_S, request_s=SGLANG_REQUEST_S, moe_compute_factor=SGLANG_FUSED_MOE_COMPUTE_FACTOR,
        source="sglang_vllm060 corpus source (SGLang 0.3.0 rows), fitted by hardware.fidelity --fit; routed-expert "
               "factor from sglang_pr14764_dsv31_h200 (DeepSeek-V3.1, 8x H200), solved by python -m hardware.fit_v05",
    ),
    # vLLM 0.4-0.5.x (mid 2024): decode is CUDA-graphed (small per-layer cost, as vllm_v1), but
    # every step runs scheduling, input preparation, sampling, detokenisation and the OpenAI
    # server's streaming in one Python process, synchronously with the GPU (no multi-step, no
    # async output processing, API server in the same process: vLLM v0.6.0 blog, Sept 2024;
    # RFC vllm-project/vllm#6854 "5-13 ms of GPU bubble" per decode step). Modelled as a per-
    # iteration cost plus a per-sequence cost, added to (not overlapped with) the kernels.
    # vLLM v0's ModelRunner replays CUDA graphs only for decode-only batches ("Currently cuda
    # graph is only supported by the decode phase", vllm/worker/model_runner.py): iterations
    # with a prefill or a chunked-prefill piece run eagerly, at the eager per-layer cost of the
    # 2023 ``vllm`` stack (VLLM_EAGER_LAYER_S).
    "vllm_v05": StackOverheads(
        iteration_s=VLLM_V05_ENGINE_ITERATION_S, layer_prefill_s=VLLM_EAGER_LAYER_S,
        layer_decode_s=VLLM_V1_LAYER_DECODE_S, seq_s=VLLM_V05_ENGINE_SEQ_S, request_s=0.0,
        moe_compute_factor=VLLM_FUSED_MOE_COMPUTE_FACTOR,
        source="vllm_blog_v060 (light-load step) and vllm_pr7117_h100 / vllm_pr5399_h100 (per-sequence "
               "cost at 256 running) corpus sources, solved by python -m hardware.fit_v05",
    ),
    # vLLM 0.4-0.5 run offline (benchmark_latency / benchmark_throughput: the LLM engine with no
    # API server in the process): vllm_v05 with the API server's share of the CPU cost removed.
    "vllm_v05_offline": StackOverheads(
        iteration_s=VLLM_V05_OFFLINE_CPU_SHARE * VLLM_V05_ENGINE_ITERATION_S, layer_prefill_s=VLLM_EAGER_LAYER_S,
        layer_decode_s=VLLM_V1_LAYER_DECODE_S, seq_s=VLLM_V05_ENGINE_SEQ_S,
        request_s=0.0, moe_compute_factor=VLLM_FUSED_MOE_COMPUTE_FACTOR,
        source="vllm_v05 less the API server's share of its per-step CPU time (v0.6.0 blog profile); "
               "the per-sequence cost as measured offline (vllm_pr7117_h100, vllm_pr5399_h100)",
    ),
    # vLLM 0.6 with its default single scheduler step: the v0.6.0 engine (API server in its own
    # process, async output processing: vllm_v1's fit) but scheduling and input preparation
    # every step, not once per 10, and eager prefill steps (v0 ModelRunner). The extra per-step
    # cost is VLLM_V06_CPU_SHARE of vllm_v05's; no per-request delay (vllm_v1's 90 ms is the
    # multi-step first-token wait). An assumed split; see hardware/fit_v05.py.
    "vllm_v06": StackOverheads(
        iteration_s=VLLM_V1_ITERATION_S + VLLM_V06_CPU_SHARE * VLLM_V05_ITERATION_S,
        layer_prefill_s=VLLM_EAGER_LAYER_S, layer_decode_s=VLLM_V1_LAYER_DECODE_S,
        seq_s=VLLM_V1_SEQ_S + VLLM_V06_CPU_SHARE * VLLM_V05_SEQ_S, request_s=0.0,
        moe_compute_factor=VLLM_FUSED_MOE_COMPUTE_FACTOR,
        source="vllm_v1 plus a share of vllm_v05's per-step CPU cost solved from the v0.6.0 blog's "
               "multi-step gain (python -m hardware.fit_v05)",
    ),
}

# 2023 vLLM before the custom all-reduce kernel (vllm-project/vllm#2192, in v0.3.0): the ``vllm``
# stack with NCCL all-reduces at every size and their per-call cost.
STACKS["vllm_nccl"] = replace(
    STACKS["vllm"], custom_allreduce=False, allreduce_call_s=VLLM_NCCL_CALL_S,
    source="vllm stack with NCCL all-reduces; per-call cost solved from vllm-project/vllm#2192 "
           "(python -m hardware.fit_v05)")

#: The stack a cost model assumes unless told (the most efficient measured one).
DEFAULT_STACK = "trtllm"

# ---------------------------------------------------------------- memory and host link

#: Per-GPU memory held back for activations, workspace and CUDA graphs: this many bytes plus
#: the activations of ``ACTIVATION_RESERVE_TOKENS`` tokens (vLLM profiles one max batch).
ACTIVATION_RESERVE_BYTES = 1 << 30
ACTIVATION_RESERVE_TOKENS = 2048

#: Fixed cost of one swap call (copy launch and synchronisation); uncertain.
SWAP_OVERHEAD_S = 50e-6
