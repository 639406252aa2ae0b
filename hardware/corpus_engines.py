"""How each corpus row's engine ran: the cost-model stack of its engine and version (``stack_for``), the
scheduler config that batches as it did (``scheduler_for``), the speculative decoding it ran
(``speculation_for``) and whether its KV keeps preempted requests' blocks (``retains_preempted_blocks``), from
what the row and its notes state.

Used by ``hardware.corpus_predict`` (which re-exports the first three); the notes patterns each function reads
are documented beside it.
"""

from __future__ import annotations

import re
from typing import Any

from hardware.devices import GIB, get_device
from policies.speculators.estimate import expected_emitted


def stack_for(row: dict[str, Any]) -> str:
    """The cost-model stack of the row's engine and version."""
    engine, version = row["engine"], row["engine_version"]
    if engine == "trtllm":
        return "trtllm"
    if engine == "sglang":
        return "sglang"
    if engine == "vllm":
        if is_v1_engine(version):
            return "vllm_v1_engine"  # the V1 engine, vLLM's default from 0.8.0 (2025-03)
        parts = version.split(".")
        if len(parts) >= 2 and parts[0] == "0" and parts[1].isdigit():
            minor = int(parts[1])
            if minor == 7:
                return "vllm_v1"
            if minor == 6:
                # 0.6's default is one scheduler step; multi-step runs say so in the notes
                steps = re.search(r"(?:multi-step|num-scheduler-steps)\s+(\d+)", row.get("notes") or "")
                return "vllm_v1" if steps and int(steps.group(1)) > 1 else "vllm_v06"
            if minor >= 4:
                return _v05(row)  # CUDA graphs, synchronous per-step CPU loop
        dated = re.search(r"(20\d\d)-(\d\d)", version)  # an unstated build, dated by its source
        if dated and (int(dated.group(1)), int(dated.group(2))) >= (2024, 9):
            return "vllm_v06"  # after v0.6.0 (2024-09-04): 0.6-era engine, one scheduler step by default
        if "2024" in version:
            return _v05(row)  # an unstated 2024 build (0.4-0.5 era: graphs on, CPU loop synchronous)
        if "2023" in version:
            # 2023 builds predate the custom all-reduce kernel (vllm-project/vllm#2192, v0.3.0 of
            # 2024-01): NCCL all-reduces on the eager-era stack
            return "vllm_nccl"
        return "vllm"  # older or unstated builds: the eager-era stack
    raise ValueError(f"corpus row {row['id']}: unknown engine {engine!r}")


def _v05(row: dict[str, Any]) -> str:
    """vLLM 0.4-0.5: static batches (benchmark_latency) and benchmark_throughput runs drive the engine
    offline (no API server in the process)."""
    offline = row.get("kind") == "static" or "benchmark_throughput" in (row.get("notes") or "")
    return "vllm_v05_offline" if offline else "vllm_v05"


#: A row whose source states the engine's per-step token budget says so in its notes ("max-num-batched-tokens N").
_STATED_BUDGET = re.compile(r"max-num-batched-tokens\s+(\d+)")


def scheduler_for(row: dict[str, Any]) -> dict[str, Any]:
    """The scheduler config that matches how the row's engine batched (parameters documented)."""
    seqs = row["max_num_seqs"] or 256
    if row["engine"] == "trtllm":
        # TensorRT-LLM's GUARANTEED_NO_EVICT capacity scheduler, chunked context, 8192-token budget.
        # Its admission reserves each request's prompt + max_new_tokens (KVCacheManager::
        # getRemainingBlocksToCompletion); the benchmarks set max_new_tokens to the row's output
        # length (a cap where outputs vary, as MLPerf's 1,024), so that is what is reserved.
        sched = {"name": "trtllm_capacity", "max_num_tokens": 8192, "enable_chunked_context": True}
        sched.update(trtllm_stated_setup(row))  # what the row's own harness configured, where it says
        if row["output_len"]:
            sched["max_new_tokens"] = int(row["output_len"])
        else:  # no stated output: the whole max_seq_len window, at least the prompt's
            sched["max_seq_len"] = max(row["input_len"] or 0, 2048)
        if row["max_num_seqs"]:  # the source's max batch size (e.g. MLPerf's gpu_batch_size)
            sched["max_batch_size"] = row["max_num_seqs"]
        return sched
    if row["engine"] == "sglang":
        # SGLang's own scheduler at the 0.4.x defaults (SOURCES.md fid15e; 0.3's are the same): prefill
        # batches of at most 16384 new prompt tokens, 8192-token chunks, admission against the running
        # requests' estimated future decode tokens, retraction on decode OOM. The max_new_tokens each
        # request states is what sglang.bench_serving sends: the fixed output length, else (ShareGPT)
        # each request's own dataset output length (oracle)
        sched: dict[str, Any] = {"name": "sglang", "max_running_requests": row["max_num_seqs"] or 4096,
                                 "chunked_prefill_size": 8192, "max_prefill_tokens": 16384}
        if row["output_len"]:
            sched["max_new_tokens"] = int(row["output_len"])
        else:
            sched["oracle"] = True
        return sched
    if is_v1_engine(row["engine_version"]):
        # vLLM >= 0.8 runs the V1 engine by default: chunked prefill always on, running requests
        # first, one token budget per step: the one the source states (its notes say
        # "max-num-batched-tokens N", e.g. the `LLM` class's own default for an offline run, fid13a),
        # else V1's usage-context default for the OpenAI server
        stated = _STATED_BUDGET.search(row.get("notes") or "")
        budget = int(stated.group(1)) if stated else v1_server_token_budget(row["device"])
        return {"name": "vllm_v1", "max_num_seqs": seqs, "max_num_batched_tokens": budget}
    if row["engine_version"].startswith("0.5"):
        if "chunked prefill" in (row["notes"] or ""):
            # chunked prefill switched on (the source says so): vLLM 0.5's 512-token budget
            return {"name": "vllm_v1", "max_num_seqs": seqs, "max_num_batched_tokens": 512}
        # vLLM 0.5 turns chunked prefill on by itself only above 32K context (EngineArgs); below
        # it schedules whole prompts first, max(max_model_len, 2048) tokens a step
        return {"name": "vllm", "max_num_seqs": seqs, "max_num_batched_tokens": 2048}
    # vLLM 0.6 without chunked prefill: whole prompts first, max(max_model_len, 2048) tokens
    # unless the source set --max-num-batched-tokens (its notes say so)
    budget = _STATED_BUDGET.search(row.get("notes") or "")
    return {"name": "vllm", "max_num_seqs": seqs, "max_num_batched_tokens": int(budget.group(1)) if budget else 4096}


#: A TensorRT-LLM row whose source states its batch-manager setup (its harness code or config) says so in its
#: notes: "capacity policy max_utilization" (or guaranteed_no_evict), "max_num_tokens N", "chunked context off".
_TRTLLM_POLICY = re.compile(r"capacity policy (max_utilization|guaranteed_no_evict)")
_TRTLLM_MAX_NUM_TOKENS = re.compile(r"max_num_tokens (\d+)")
_TRTLLM_NO_CHUNKING = "chunked context off"


def trtllm_stated_setup(row: dict[str, Any]) -> dict[str, Any]:
    """The ``trtllm_capacity`` parameters a TensorRT-LLM row's notes state (empty: none stated). MLPerf v4.1's
    NVIDIA harness, e.g., runs MAX_UTILIZATION, engines built with max_num_tokens 4096, no chunked context."""
    notes = row.get("notes") or ""
    setup: dict[str, Any] = {}
    if m := _TRTLLM_POLICY.search(notes):
        setup["policy"] = m.group(1)
    if m := _TRTLLM_MAX_NUM_TOKENS.search(notes):
        setup["max_num_tokens"] = int(m.group(1))
    if _TRTLLM_NO_CHUNKING in notes:
        setup["enable_chunked_context"] = False
    return setup


#: vLLM V1's default token budget of the OpenAI server (``EngineArgs.get_batch_defaults``): 8192 on a GPU with at
#: least 70 GiB of CUDA-visible memory that is not an A100 (vLLM excludes it by name, vllm-project/vllm#17885),
#: 2048 on every other GPU (e.g. the 22 GiB A10G and L4).
V1_LARGE_GPU_GIB, V1_LARGE_GPU_BUDGET, V1_SMALL_GPU_BUDGET = 70, 8192, 2048


def v1_server_token_budget(device_name: str) -> int:
    """The V1 engine's default ``max_num_batched_tokens`` for the OpenAI server on ``device_name``."""
    large = get_device(device_name).memory_bytes >= V1_LARGE_GPU_GIB * GIB and not device_name.startswith("A100")
    return V1_LARGE_GPU_BUDGET if large else V1_SMALL_GPU_BUDGET


#: A V1 row whose source disabled prefix caching says so in its notes (SOURCES.md fid15a).
_PREFIX_CACHING_OFF = re.compile(r"prefix caching off|no-enable-prefix-caching")


def retains_preempted_blocks(row: dict[str, Any]) -> bool:
    """Whether the row's engine keeps a recompute-preempted request's blocks cached for it (the paged
    manager's ``retain_preempted_blocks``): vLLM V1, whose prefix caching is on by default, unless the
    notes say it was off (SOURCES.md fid15a)."""
    return row["engine"] == "vllm" and is_v1_engine(row["engine_version"]) \
        and not _PREFIX_CACHING_OFF.search(row.get("notes") or "")


def is_v1_engine(version: str) -> bool:
    """A vLLM release whose default engine is V1 (0.8.0 of 2025-03 and later)."""
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (0, 8)


#: A row whose engine ran draft-model speculative decoding says so in its notes: "speculation draft MODEL k K
#: acceptance R", MODEL a catalog model, K the draft tokens per step (vLLM's ``num_speculative_tokens``) and R the
#: run's measured accepted / drafted tokens (vLLM's ``spec_decode_num_accepted_tokens`` over
#: ``spec_decode_num_draft_tokens``; SOURCES.md fid14).
_SPECULATION = re.compile(r"speculation draft (\S+) k (\d+) acceptance ([0-9.]+)")


def per_position_acceptance(ratio: float, k: int) -> float:
    """servesim's ``acceptance_rate`` a (each proposed token accepted with chance a, independently, the first
    rejection ending the run) whose accepted / drafted ratio equals ``ratio``: (a + a^2 + ... + a^k) / k = ratio,
    solved by bisection (k = 1: a = ratio). The mean tokens emitted per step, E[accepted] + 1, is then the run's."""
    if not 0.0 <= ratio <= 1.0 or k < 1:
        raise ValueError(f"accepted / drafted ratio {ratio} with k {k}: need 0 <= ratio <= 1 and k >= 1")
    lo, hi = 0.0, 1.0
    for _ in range(60):  # the ratio rises monotonically with a on [0, 1]
        mid = (lo + hi) / 2.0
        if (expected_emitted(mid, k) - 1.0) / k < ratio:  # accepted per step (emitted less the bonus) / k
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def speculation_for(row: dict[str, Any]) -> dict[str, Any] | None:
    """The pool's ``speculation`` config for a row whose notes state draft-model speculation (None: none):
    servesim's fixed-k speculator with the stated draft model and the per-position acceptance of the measured
    ratio (``per_position_acceptance``)."""
    stated = _SPECULATION.search(row.get("notes") or "")
    if stated is None:
        return None
    k = int(stated.group(2))
    return {"name": "fixed", "k": k, "draft_model": stated.group(1),
            "acceptance_rate": per_position_acceptance(float(stated.group(3)), k)}


#: A closed-loop row whose source states its prompt set says so in its notes (SOURCES.md fid15g): "distinct prompts
#: N" (its client replays N prompts round robin), optionally "shared prefix T tokens" (a prefix every prompt shares:
#: a chat template and system prompt) and "prefix warm-up W requests" (requests sent before the measured ones, which
#: leave the prompts cached: a warm-up pass, or the lower levels of a sweep on the same server).
_DISTINCT_PROMPTS = re.compile(r"distinct prompts (\d+)")
_SHARED_PREFIX = re.compile(r"shared prefix (\d+) tokens")
_PREFIX_WARMUP = re.compile(r"prefix warm-up (\d+) requests")
#: Tokens per prefix unit: vLLM's prefix cache hashes full KV blocks of 16 tokens (the corpus pools' block size);
#: SGLang's radix cache matches single tokens, which the paged manager cannot, so its rows use the same units
#: (fid15g: that understates their hits).
PREFIX_UNIT_TOKENS = 16


def shared_prompts_for(row: dict[str, Any]) -> dict[str, int] | None:
    """The ``closed_loop`` workload's prompt-set parameters a row's notes state (None: every prompt unique):
    ``distinct_prompts``, ``system_prompt_tokens`` (the shared prefix), ``warmup_requests``, ``prefix_block_tokens``."""
    notes = row.get("notes") or ""
    distinct = _DISTINCT_PROMPTS.search(notes)
    if distinct is None or row.get("kind") != "closed_loop":
        return None
    shared, warmup = _SHARED_PREFIX.search(notes), _PREFIX_WARMUP.search(notes)
    return {"distinct_prompts": int(distinct.group(1)), "system_prompt_tokens": int(shared.group(1)) if shared else 0,
            "warmup_requests": int(warmup.group(1)) if warmup else 0, "prefix_block_tokens": PREFIX_UNIT_TOKENS}


def caches_prefixes(row: dict[str, Any]) -> bool:
    """Whether the row runs with the paged manager's ``enable_prefix_caching``: its notes state a replayed prompt
    set (``shared_prompts_for``) and its engine caches prefixes by default, vLLM V1 or SGLang (radix cache), unless
    the notes say prefix caching was off (SOURCES.md fid15g)."""
    if shared_prompts_for(row) is None or _PREFIX_CACHING_OFF.search(row.get("notes") or ""):
        return False
    return row["engine"] == "sglang" or (row["engine"] == "vllm" and is_v1_engine(row["engine_version"]))
