"""Predict one measured point of the corpus (``hardware/corpus/points.csv``) with servesim.

Each corpus row says what was measured (``kind``) on what (device, model, TP, dtypes, engine
and version) and the figure (``metric``, ``value``). This module turns a row into a
prediction:

- ``legacy``: a HARDWARE.md section 5 point; the predictor of ``hardware.calibrate`` whose
  setting text is the row's ``notes``.
- ``static``: a static batch (``batch`` prompts of ``input_len``, ``output_len`` outputs) by
  the analytic cost model (prefill all, then decode), as ``benchmark_latency`` /
  TensorRT-LLM's static benchmark / ``sglang.bench_one_batch`` run it: the whole latency
  (``latency_s``), output throughput, or bench_one_batch's ``prefill_s`` (the prefill iteration)
  and ``decode_median_s`` (the median decode iteration).
- ``decode_step``: one pure-decode iteration of ``batch`` sequences at ``input_len`` tokens of
  context each (``step_ms``), or the kernels' share of it (``gpu_share_pct``: the ``ideal``
  stack's step over the row's stack's step), for engine profiles quoted in prose.
- ``kernel``: a device microbenchmark: ``gemm_tflops`` (an ``batch`` x ``input_len`` @
  ``input_len`` x ``output_len`` GEMM in ``weight_dtype``, reached TFLOPS by the cost model's
  roofline), ``hbm_tbps`` (a streaming copy: the HBM bandwidth times the memory efficiency) or
  ``allreduce_us`` (nccl-tests ``all_reduce_perf``: ``batch`` bytes per GPU over ``tp`` GPUs, NCCL
  at every size, i.e. the algorithm and link ``allreduce_choice`` gives a stack without a custom kernel).
- ``offline`` / ``offline_fixed`` / ``online``: a whole simulation with servesim (one
  replica), ``num_prompts`` requests all at once or Poisson at ``rate_rps``; ShareGPT
  lengths for ``offline`` / ``online``, the row's fixed lengths for ``offline_fixed`` and
  ``online_fixed`` (Poisson at ``rate_rps`` with fixed lengths, e.g. ``vllm bench serve`` of the random
  dataset). An MLPerf Offline row (notes "OpenOrca output mean OUT") replays the benchmark's own
  OpenOrca prompts (``OPENORCA``) with outputs scaled to the run's mean, all at t = 0, and a row whose
  notes say "N replicas" (an 8-GPU system of TP-2 or TP-1 replicas) is one replica's throughput times N.
- ``closed_loop``: an online concurrency sweep point: ``batch`` clients, each sending its next
  request (``input_len`` / ``output_len`` tokens) when it sees its previous one finish (servesim's
  ``closed_loop`` workload; the stack's frontend delay ``request_s`` is the think time),
  ``num_prompts`` requests in all (unset: ``max(200, 20 x clients)``, the source's request count
  being unstated). The clients' first requests (one wave at
  t = 0, which the sources discard as warm-up) are left out of the medians, unless the notes say
  "every request counted" (``vllm bench serve --max-concurrency``). A row without fixed lengths sends
  ShareGPT requests: ``CLOSED_LOOP_SHAREGPT_DRAWS`` independent draws of ``num_prompts`` requests, the
  prediction being the median of the draws' figures.

The engine and version pick the cost model's stack and the scheduler the engine used
(``stack_for``, ``scheduler_for``: ``hardware.corpus_engines``); a row whose notes state draft-model speculation
("speculation draft MODEL k K acceptance R") runs servesim's fixed-k speculator (``speculation_for``);
``request_s`` of the stack (tokenisation, HTTP) is added to TTFT and end-to-end latency of simulated requests.
"""

from __future__ import annotations

import csv
import functools
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from hardware.analytic import AnalyticCostModel, AnalyticParams, allreduce_choice, gemm_time_s
from hardware.corpus_engines import (
    caches_prefixes,
    retains_preempted_blocks,
    scheduler_for,
    shared_prompts_for,
    speculation_for,
    stack_for,
)
from hardware.devices import get_device
from hardware.links import allreduce_time_s
from traces.lengths_file import write_lengths_csv

CORPUS = Path(__file__).parent / "corpus" / "points.csv"
SHAREGPT = Path(__file__).parents[1] / "traces" / "data" / "sharegpt_8k_lengths_llama2_tokenizer.csv"
#: vLLM's and SGLang's benchmark_serving keep ShareGPT conversations with a prompt of at most
#: 1024 tokens and prompt + answer of at most 2048 (their sample_sharegpt_requests filter).
SHAREGPT_MAX_INPUT, SHAREGPT_MAX_TOTAL = 1024, 2048
#: Simulated requests per serving point at most (the first N of the stream; enough for the
#: medians and the steady-state throughput, and keeps ``servesim calibrate`` quick).
MAX_SIM_REQUESTS = 1200
#: Mean lengths of the benchmarks' ShareGPT sample with a Llama-3 tokenizer: a published
#: vLLM 0.6.2 benchmark_serving run (1000 prompts, seed 12345) read 230,969 input and 194,523
#: output tokens; SGLang's table (sglang_vllm060) gives 4281.51 / 22.03 = 194.3 output tokens
#: per request. The shipped length table (Llama-2 tokenizer, whole conversations) is scaled
#: to these means.
SHAREGPT_MEAN_INPUT, SHAREGPT_MEAN_OUTPUT = 231.0, 194.5
#: Realised per-request lengths a source published with its results (``hardware/corpus/
#: lengths.csv``: source, model, num_prompts, input, output tokens, in request order). Rows of
#: that (source, model, num_prompts) replay them instead of sampling ShareGPT: e.g. vLLM's
#: benchmark_serving of 2024 did not set ignore_eos, so outputs end at the model's EOS (many
#: at 0-10 tokens, none past the sample's reference length) rather than at ShareGPT's lengths.
LENGTHS = Path(__file__).parent / "corpus" / "lengths.csv"
#: MLPerf Inference's Llama-2-70B dataset (OpenOrca, 24,576 samples): per-sample prompt and reference-answer
#: token counts (``tok_input_length``, ``tok_output_length``; provenance in SOURCES.md, fid9), in dataset order.
OPENORCA = Path(__file__).parent / "corpus" / "openorca_llama2_lengths.csv"
#: The benchmark's output limit (max_output_len 1024 tokens).
OPENORCA_MAX_OUTPUT = 1024
#: An MLPerf Offline replica serves tens of thousands of samples; the replay simulates every 4th sample of the
#: dataset (6,144 per replica, all issued at t = 0 as LoadGen's one Offline query), which keeps ``servesim
#: calibrate`` quick; its drain at the end weighs about 1% more than in the measured 40-minute run.
OPENORCA_STRIDE = 4


def load_corpus(path: Path | str = CORPUS) -> list[dict[str, Any]]:
    """Rows of the corpus CSV with numbers parsed (empty cells are None)."""
    ints = ("tp", "batch", "input_len", "output_len", "num_prompts", "max_num_seqs")
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = dict(r)
            for k in ints:
                row[k] = int(r[k]) if r[k] else None
            row["rate_rps"] = float(r["rate_rps"]) if r["rate_rps"] else None
            row["value"] = float(r["value"])
            rows.append(row)
    return rows


def cost_model(row: dict[str, Any], stack: str | None = None, **overrides: Any) -> AnalyticCostModel:
    hw = SimpleNamespace(device=row["device"], model=row["model"], tp=row["tp"], pp=1,
                         weight_dtype=row["weight_dtype"], kv_dtype=row["kv_dtype"])
    return AnalyticCostModel(AnalyticParams(stack=stack or stack_for(row), **overrides), hw)


def static_batch_steps_s(cm: AnalyticCostModel, batch: int, prompt: int, output: int) -> tuple[float, np.ndarray]:
    """(the prefill iteration of the whole batch, the ``output - 1`` decode iterations after it) in seconds."""
    prefill = cm.step_time_s([(prompt, 0)] * batch, 0, 0, 0)
    return prefill, cm.decode_step_times_s(batch, batch * (prompt + 1), output - 1)


def static_batch_s(cm: AnalyticCostModel, batch: int, prompt: int, output: int) -> float:
    """Prefill the whole batch in one iteration, then ``output - 1`` decode iterations."""
    prefill, decode = static_batch_steps_s(cm, batch, prompt, output)
    return prefill + float(decode.sum())


def _kernel(row: dict[str, Any], overrides: dict[str, Any]) -> float:
    d, p = get_device(row["device"]), AnalyticParams(**overrides)
    if row["metric"] == "gemm_tflops":
        m, k, n = row["batch"], row["input_len"], row["output_len"]
        return 2.0 * m * k * n / gemm_time_s(d, m, k, n, row["weight_dtype"], p) / 1e12
    if row["metric"] == "hbm_tbps":
        return d.hbm_gbps * p.memory_efficiency / 1e3
    if row["metric"] == "allreduce_us":
        algo, gbps = allreduce_choice(d, row["batch"], row["tp"], p.allreduce, custom=False)
        return allreduce_time_s(row["batch"], row["tp"], gbps, algo) * 1e6
    raise ValueError(f"corpus row {row['id']}: kernel metric {row['metric']!r}")


def _decode_step(row: dict[str, Any], overrides: dict[str, Any]) -> float:
    b, ctx = row["batch"], row["input_len"]
    step = float(cost_model(row, **overrides).decode_step_times_s(b, b * ctx, 1)[0])
    if row["metric"] == "step_ms":
        return step * 1e3
    if row["metric"] == "gpu_share_pct":
        kernels = float(cost_model(row, stack="ideal").decode_step_times_s(b, b * ctx, 1)[0])
        return 100.0 * kernels / step
    raise ValueError(f"corpus row {row['id']}: decode_step metric {row['metric']!r}")


def _static(row: dict[str, Any], overrides: dict[str, Any]) -> float:
    cm = cost_model(row, **overrides)
    b, i, o = row["batch"], row["input_len"], row["output_len"]
    metric = row["metric"]
    if metric == "prefill_s":  # bench_one_batch's "Prefill. latency": the one prefill iteration
        return static_batch_steps_s(cm, b, i, 1)[0]
    if metric == "decode_median_s":  # bench_one_batch's "Decode. median latency": the median decode iteration
        return float(np.median(static_batch_steps_s(cm, b, i, o)[1]))
    seconds = static_batch_s(cm, b, i, o)
    if metric == "latency_s":
        return seconds
    if metric == "out_tput_per_gpu":
        return b * o / seconds / cm.num_gpus
    if metric == "out_tput":
        return b * o / seconds
    raise ValueError(f"corpus row {row['id']}: static metric {metric!r}")


@functools.lru_cache(maxsize=8)
def sharegpt_pairs(mean_input: float = SHAREGPT_MEAN_INPUT, mean_output: float = SHAREGPT_MEAN_OUTPUT) -> np.ndarray:
    """(input, output) pairs of the shipped ShareGPT length table, filtered as the benchmarks do and
    scaled to the given means (default: the benchmarks' ShareGPT sample above)."""
    data = np.loadtxt(SHAREGPT, delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.int64)
    keep = (data[:, 0] <= SHAREGPT_MAX_INPUT) & (data[:, 0] + data[:, 1] <= SHAREGPT_MAX_TOTAL)
    keep &= (data[:, 0] >= 4) & (data[:, 1] >= 4)
    data = data[keep].astype(np.float64)
    scale = np.array([mean_input, mean_output]) / data.mean(axis=0)
    return np.maximum(1, np.rint(data * scale)).astype(np.int64)


#: A source that prints its own ShareGPT sample's mean lengths (input / output tokens per request,
#: e.g. its input and output token throughputs over its request throughput) says so in the row's
#: notes: "ShareGPT sample means IN / OUT"; the row then replays the table scaled to those means.
_SAMPLE_MEANS = re.compile(r"ShareGPT sample means ([0-9.]+) / ([0-9.]+)")


#: An MLPerf run states its own mean output length (its tokens per second over its samples per second):
#: notes "OpenOrca output mean OUT"; the row replays the OpenOrca table with outputs scaled to that mean.
_OPENORCA_MEAN = re.compile(r"OpenOrca output mean ([0-9.]+)")
#: A multi-GPU system that runs independent replicas (MLPerf Offline: LoadGen's samples are split across them)
#: says so in the notes: "N replicas"; one replica is simulated and its throughput multiplied by N.
_REPLICAS = re.compile(r"(\d+) replicas")


def openorca_mean(row: dict[str, Any]) -> float | None:
    """The mean output length an OpenOrca row's replay is scaled to (None: not an OpenOrca row)."""
    stated = _OPENORCA_MEAN.search(row.get("notes") or "")
    return float(stated.group(1)) if stated else None


def num_replicas(row: dict[str, Any]) -> int:
    """Independent replicas whose summed throughput the row measured (1 unless the notes say so)."""
    stated = _REPLICAS.search(row.get("notes") or "")
    return int(stated.group(1)) if stated else 1


@functools.lru_cache(maxsize=8)
def openorca_pairs(mean_output: float) -> np.ndarray:
    """(input, output) pairs of the replayed OpenOrca subset: the dataset's prompts, its reference answers
    scaled to ``mean_output`` and capped at the benchmark's output limit; every ``OPENORCA_STRIDE``-th sample."""
    data = np.loadtxt(OPENORCA, delimiter=",", skiprows=1, dtype=np.int64)
    out = data[:, 1].astype(np.float64) * mean_output / data[:, 1].mean()
    out = np.clip(np.rint(out), 1, OPENORCA_MAX_OUTPUT).astype(np.int64)
    return np.stack([np.maximum(1, data[:, 0]), out], axis=1)[::OPENORCA_STRIDE]


def sharegpt_means(row: dict[str, Any]) -> tuple[float, float]:
    """The mean (input, output) lengths a row's ShareGPT requests are scaled to."""
    stated = _SAMPLE_MEANS.search(row.get("notes") or "")
    if stated:
        return float(stated.group(1)), float(stated.group(2))
    return SHAREGPT_MEAN_INPUT, SHAREGPT_MEAN_OUTPUT


@functools.lru_cache(maxsize=1)
def realised_lengths() -> dict[tuple, np.ndarray]:
    """{(source, model, num_prompts, device, tp): (input, output) pairs} from ``LENGTHS``. A published
    output of 0 tokens (the model stopped at once) is simulated as 1: the engine still ran its step.
    ``device`` / ``tp`` are blank (``""`` / 0) for a source's generic table, set for the lengths one
    run itself published (its own result file), which that run's rows replay instead."""
    out: dict[tuple, list[tuple[int, int]]] = {}
    with open(LENGTHS, newline="") as fh:
        for r in csv.DictReader(fh):
            key = (r["source"], r["model"], int(r["num_prompts"]), r.get("device") or "", int(r.get("tp") or 0))
            out.setdefault(key, []).append((max(1, int(r["input_tokens"])), max(1, int(r["output_tokens"]))))
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def lengths_for(row: dict[str, Any]) -> np.ndarray | None:
    """The realised (input, output) pairs a row replays: its own run's, else its source's table."""
    table = realised_lengths()
    base = (row["source"], row["model"], row["num_prompts"] or 0)
    own = table.get(base + (row["device"], int(row["tp"] or 0)))
    return own if own is not None else table.get(base + ("", 0))


def _requests(row: dict[str, Any], seed: int = 0) -> list[tuple[float, int, int]]:
    mean_output = openorca_mean(row)
    if mean_output is not None:  # an MLPerf Offline run: one query of every sample at t = 0
        return [(0.0, int(i), int(o)) for i, o in openorca_pairs(mean_output)]
    n = min(row["num_prompts"] or 1000, MAX_SIM_REQUESTS)
    rng = np.random.default_rng(seed)
    realised = lengths_for(row)
    if realised is not None and row["kind"] == "offline":
        lengths = realised[:n]
    elif row["kind"] in ("offline_fixed", "online_fixed"):
        lengths = np.array([[row["input_len"], row["output_len"]]] * n)
    else:
        pairs = sharegpt_pairs(*sharegpt_means(row))
        lengths = pairs[rng.integers(0, len(pairs), n)]
    if row["rate_rps"]:
        arrivals = np.cumsum(rng.exponential(1.0 / row["rate_rps"], n))
    else:
        arrivals = np.zeros(n)
    return [(float(a), int(i), int(o)) for a, (i, o) in zip(arrivals, lengths, strict=True)]


#: TensorRT-LLM's KV share is of the memory still free once the engine is loaded (``KvCacheConfig::
#: freeGpuMemoryFraction``; NVIDIA's MLPerf harness flag reads "the fraction of free gpu memory that will be
#: used for kvcache storage"), not of the whole GPU as vLLM's; a row whose source states it says so in its notes.
_TRTLLM_FREE_FRACTION = re.compile(r"kv_cache_free_gpu_mem_fraction ([0-9.]+)")
#: SGLang's ``--mem-fraction-static`` is the GPU share of weights + KV pool, activations outside it
#: (``ServerArgs.mem_fraction_static``); a row whose source states it says so in its notes (SOURCES.md fid15f).
_SGLANG_STATIC_FRACTION = re.compile(r"mem[-_]fraction[-_]static\s+([0-9.]+)")


def memory_share(row: dict[str, Any]) -> float:
    """The GPU memory share the run's engine used: the source's ``--gpu-memory-utilization`` where its notes
    state it; for a TensorRT-LLM row that states ``kv_cache_free_gpu_mem_fraction f``, the whole-GPU share that
    leaves the same KV: f of what weights and activations leave free, i.e. f + (1 - f) x their share of the
    GPU; for an SGLang row that states ``mem-fraction-static f`` (weights + KV pool), the share that leaves the
    same KV once the activation reserve is taken too, f plus the reserve's share of the GPU; else vLLM's default 0.9."""
    notes = row.get("notes") or ""
    stated = re.search(r"gpu-memory-utilization\s+([0-9.]+)", notes)
    if stated:
        return float(stated.group(1))
    static = _SGLANG_STATIC_FRACTION.search(notes)
    if static and row["engine"] == "sglang":
        cm = cost_model(row)
        return float(static.group(1)) + cm.activation_reserve_bytes() / cm.device.memory_bytes
    free = _TRTLLM_FREE_FRACTION.search(notes)
    if free and row["engine"] == "trtllm":
        f, cm = float(free.group(1)), cost_model(row)
        held = (cm.weight_bytes_per_gpu + cm.activation_reserve_bytes()) / cm.device.memory_bytes
        return f + (1.0 - f) * held
    return 0.9


def serving_config(row: dict[str, Any], trace_path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    cost = {"name": "analytic", "stack": overrides.get("stack") or stack_for(row)}
    cost.update({k: v for k, v in overrides.items() if k != "stack"})
    pool = {
        "name": "main", "role": "mixed", "num_replicas": 1,
        "hardware": {"device": row["device"], "model": row["model"], "tp": row["tp"],
                     "weight_dtype": row["weight_dtype"], "kv_dtype": row["kv_dtype"]},
        "cost_model": cost, "scheduler": scheduler_for(row),
        "kv": {"name": "paged", "block_size": 16, "gpu_memory_utilization": memory_share(row)},
    }
    if retains_preempted_blocks(row):  # vLLM V1's prefix cache keeps a preempted request's blocks (fid15a)
        pool["kv"]["retain_preempted_blocks"] = True
    if caches_prefixes(row):  # a replayed prompt set on an engine that caches prefixes (fid15g)
        pool["kv"]["enable_prefix_caching"] = True
    speculation = speculation_for(row)  # draft-model speculative decoding the notes state (SOURCES.md fid14)
    if speculation is not None:
        pool["speculation"] = speculation
    return {"seed": 0, "workload": {"name": "trace", "path": trace_path}, "cluster": {"pools": [pool]}}


def simulate_requests(row: dict[str, Any], requests: list[tuple[float, int, int]],
                      overrides: dict[str, Any] | None = None) -> Any:
    """Run servesim on ``requests`` (arrival_s, input, output) with the row's hardware and
    engine; returns the finished requests' frame (the stack's request overhead is in it)."""
    from sim.api import simulate

    overrides = dict(overrides or {})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lengths_csv(Path(tmp) / "trace.csv", [(i, o) for _a, i, o in requests],
                                 [a for a, _i, _o in requests])
        result = simulate(serving_config(row, str(path), overrides))
    df = result.requests
    df = df[df["state"] == "finished"].copy()
    # the run's median gap between consecutive streamed tokens, over every token of every request
    # (benchmark_serving's median_itl_ms: np.median of all requests' itls)
    df.attrs["itl_p50_s"] = float(result.summary["itl_p50_s"])
    return df


#: Requests a closed-loop point simulates when its source does not state the count: at least this
#: many, and 20 per client (enough for stable medians after the first wave).
CLOSED_LOOP_MIN_REQUESTS, CLOSED_LOOP_PER_CLIENT = 200, 20


def closed_loop_requests(row: dict[str, Any]) -> int:
    """Requests simulated for a ``closed_loop`` row (its ``num_prompts``, else the default above)."""
    n = row["num_prompts"] or max(CLOSED_LOOP_MIN_REQUESTS, CLOSED_LOOP_PER_CLIENT * row["batch"])
    return min(n, MAX_SIM_REQUESTS)


#: A closed-loop row without fixed lengths draws ShareGPT requests (``sharegpt_pairs`` at the row's means); the
#: source's own sample cannot be replayed, so the row is simulated with this many independent draws of its
#: ``num_prompts`` requests (seeds 0, 1, ...) and predicted as the median of the draws' figures (SOURCES.md, fid12).
CLOSED_LOOP_SHAREGPT_DRAWS = 5
#: A source whose benchmark counts every request of its ``--max-concurrency`` run (``vllm bench serve``: no
#: warm-up wave is discarded) says so in the notes; the closed-loop predictor then keeps the first wave.
_EVERY_REQUEST = "every request counted"


def closed_loop_sharegpt(row: dict[str, Any]) -> bool:
    """True for a closed-loop row of ShareGPT requests (no fixed ``input_len`` / ``output_len``)."""
    return row["kind"] == "closed_loop" and not row["input_len"] and not row["output_len"]


def closed_loop_draws(row: dict[str, Any]) -> list[np.ndarray]:
    """The (input, output) pairs of each simulated draw of a ShareGPT closed-loop row."""
    pairs = sharegpt_pairs(*sharegpt_means(row))
    n = closed_loop_requests(row)
    return [pairs[np.random.default_rng(seed).integers(0, len(pairs), n)] for seed in range(CLOSED_LOOP_SHAREGPT_DRAWS)]


def simulate_closed_loop(row: dict[str, Any], overrides: dict[str, Any] | None = None,
                         lengths: np.ndarray | None = None) -> Any:
    """Run servesim's ``closed_loop`` workload for a concurrency-sweep row: ``batch`` clients, no think
    time, the row's fixed lengths (or ``lengths``: (input, output) pairs sent in order); returns the finished
    requests' frame without each client's first request (unless the notes say every request counted)."""
    from sim.api import simulate

    overrides = dict(overrides or {})
    clients = row["batch"]
    if not clients or (lengths is None and (not row["input_len"] or not row["output_len"])):
        raise ValueError(f"corpus row {row['id']}: closed_loop needs batch (clients), input_len and output_len")
    cfg = serving_config(row, "", overrides)
    # the stack's per-request frontend delay (request_s) is added to TTFT and E2E after the run, so a
    # client that sends when it sees its last token waits that long after the engine's finish: a
    # fixed think time of request_s keeps each client's cycle at its measured E2E
    stack = overrides.pop("stack", None)
    frontend_s = cost_model(row, stack, **overrides).request_overhead_s
    with tempfile.TemporaryDirectory() as tmp:
        workload = {"name": "closed_loop", "num_users": clients, "num_requests": closed_loop_requests(row),
                    "think_time_s": frontend_s, "think": "fixed"}
        if lengths is None:
            workload.update(input_tokens=row["input_len"], output_tokens=row["output_len"])
        else:
            path = write_lengths_csv(Path(tmp) / "lengths.csv", lengths)
            workload.update(num_requests=len(lengths), lengths={"file": str(path), "order": "file"})
        prompts = shared_prompts_for(row)  # a replayed prompt set (fid15g): its warm-up requests come first
        warmup = prompts["warmup_requests"] if prompts else 0
        if prompts:
            workload.update(prompts, num_requests=workload["num_requests"] + warmup)
        cfg["workload"] = workload
        result = simulate(cfg)
    df = result.requests
    first = warmup + (0 if _EVERY_REQUEST in (row.get("notes") or "") else clients)
    df = df[(df["state"] == "finished") & (df["id"] >= first)].copy()
    df.attrs["itl_p50_s"] = float(result.summary["itl_p50_s"])
    return df


_SIM_CACHE: dict[tuple, Any] = {}
#: The kinds predicted by a whole simulation (``serving_config``).
SERVING_KINDS = ("offline", "offline_fixed", "online", "online_fixed", "closed_loop")


def _serving_key(row: dict[str, Any], overrides: dict[str, Any]) -> tuple:
    keys = ("source", "engine", "engine_version", "device", "model", "tp", "weight_dtype", "kv_dtype",
            "kind", "input_len", "output_len", "num_prompts", "rate_rps", "max_num_seqs")
    if row["kind"] == "closed_loop":
        keys += ("batch",)  # the number of clients
    engine = (stack_for(row), repr(sorted(scheduler_for(row).items())), memory_share(row),
              sharegpt_means(row), openorca_mean(row), _EVERY_REQUEST in (row.get("notes") or ""),
              repr(sorted((speculation_for(row) or {}).items())), retains_preempted_blocks(row),
              repr(sorted((shared_prompts_for(row) or {}).items())), caches_prefixes(row))  # from the notes
    return tuple(row[k] for k in keys) + engine + tuple(sorted(overrides.items()))


def _serving(row: dict[str, Any], overrides: dict[str, Any]) -> float:
    key = _serving_key(row, overrides)
    df = _SIM_CACHE.get(key)
    if df is None:
        if closed_loop_sharegpt(row):  # one frame per draw of the row's ShareGPT requests
            df = _SIM_CACHE[key] = [simulate_closed_loop(row, overrides, draw) for draw in closed_loop_draws(row)]
        elif row["kind"] == "closed_loop":
            df = _SIM_CACHE[key] = simulate_closed_loop(row, overrides)
        else:
            df = _SIM_CACHE[key] = simulate_requests(row, _requests(row), overrides)
    if isinstance(df, list):  # the median of the draws' figures
        return float(np.median([_serving_metric(row, frame) for frame in df]))
    return _serving_metric(row, df)


def _serving_metric(row: dict[str, Any], df: Any) -> float:
    """The row's metric of one simulated run's finished requests."""
    metric = row["metric"]
    if metric == "out_tput":
        span = float(df["finish_s"].max() - df["arrival_s"].min())
        return float(df["num_output_tokens"].sum()) / span * num_replicas(row)
    if metric == "req_tput":  # benchmark_throughput's "requests/s": finished requests over the run
        return len(df) / float(df["finish_s"].max() - df["arrival_s"].min())
    if metric == "median_itl_ms":
        # benchmark_serving: the median of every inter-token gap of every request (np.median over
        # the concatenated itls), i.e. the simulator's ITL histogram median; a stall for a prefill
        # counts as one long gap, not spread over the request's TPOT
        return df.attrs["itl_p50_s"] * 1e3
    column, how = {"median_ttft_ms": ("ttft_s", "median"), "median_tpot_ms": ("tpot_s", "median"),
                   "median_e2e_ms": ("e2e_s", "median"), "mean_itl_ms": ("tpot_s", "mean"),
                   # benchmark_serving's means over requests (TPOT of requests with > 1 output token)
                   "mean_ttft_ms": ("ttft_s", "mean"), "mean_tpot_ms": ("tpot_s", "mean")}[metric]
    values = df[column].dropna()
    return float(values.median() if how == "median" else values.mean()) * 1e3


@functools.lru_cache(maxsize=1)
def _legacy_predictors() -> dict[str, Any]:
    from hardware import calibrate

    return {p.setting: p.predict for p in calibrate.points()}


def predict(row: dict[str, Any], overrides: dict[str, Any] | None = None) -> float:
    """servesim's prediction of one corpus row (same unit as its ``value``)."""
    overrides = overrides or {}
    kind = row["kind"]
    if kind == "legacy":
        return float(_legacy_predictors()[row["notes"]]())
    if kind == "static":
        return _static(row, overrides)
    if kind == "decode_step":
        return _decode_step(row, overrides)
    if kind == "kernel":
        return _kernel(row, overrides)
    if kind in SERVING_KINDS:
        return _serving(row, overrides)
    raise ValueError(f"corpus row {row['id']}: unknown kind {kind!r}")


def clear_cache() -> None:
    _SIM_CACHE.clear()
