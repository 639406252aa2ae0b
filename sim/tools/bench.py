"""``servesim bench``: fixed scenarios timed on this machine.

Each scenario runs in a fresh child process (so its peak RSS is its own) ``--repeat`` times;
each printed figure is the median. Figures: wall seconds from the import of ``sim.api`` to
the summary, split into start-up (import to first event), simulation (the event loop) and
end (frames and summary); simulated requests per wall second, SimPy events per second of
event loop, peak RSS in MB. ``--json`` prints the same as JSON. Plain ``servesim bench``
runs every scenario but the long ones (``synthetic-1m-128``: ``--all`` or by name).
The ``scaling`` scenario runs 10k, 100k and 1M requests at a constant load per replica and
prints the wall time per 1,000 requests at each size. ``--profile FILE`` runs the chosen
scenarios once each in this process under cProfile instead (see README, Performance).
The project's bytecode is compiled first (``compile_bytecode``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is sim/tools/bench.py)
DATA = ROOT / "traces" / "data"

H100_LLAMA3_8B = {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1}


def _pool(num_replicas: int, **extra: Any) -> dict:
    pool = {"name": "main", "num_replicas": num_replicas, "hardware": dict(H100_LLAMA3_8B),
            "cost_model": "analytic", "scheduler": "vllm_v1", "kv": {"name": "paged"}}
    pool.update(extra)
    return pool


def _config(workload: dict, pool: dict, router: str) -> dict:
    return {"seed": 0, "workload": workload, "cluster": {"router": router, "pools": [pool]},
            "slo": {"ttft_s": 2.0, "tpot_s": 0.1}, "engine": {"progress": False}}


# requests per second per replica in the synthetic scenarios (ShareGPT lengths on an H100)
SYNTHETIC_RATE_PER_REPLICA = 2.0


def synthetic_config(num_requests: int, num_replicas: int) -> dict:
    """Poisson arrivals with ShareGPT lengths at a fixed load per replica."""
    workload = {"name": "synthetic", "num_requests": num_requests,
                "rate_rps": SYNTHETIC_RATE_PER_REPLICA * num_replicas,
                "lengths": {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}}
    return _config(workload, _pool(num_replicas), "least_outstanding")


def vidur_config(scheduler: str, num_replicas: int) -> dict:
    """Vidur's comparison setting: the whole Azure 2023 conversation trace with prompt + output
    clipped to 4,096 tokens, Llama-2-7B on H100-SXM TP1, round robin; ``vllm`` capped at 128
    sequences / 4,096 tokens or ``sarathi`` with 512-token chunks."""
    sched = ({"name": "vllm", "max_num_seqs": 128, "max_num_batched_tokens": 4096} if scheduler == "vllm"
             else {"name": "sarathi", "chunk_size": 512, "max_num_seqs": 128})
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"),
                "transforms": [{"name": "clip_lengths", "max_context_tokens": 4096}]}
    pool = _pool(num_replicas, hardware={"device": "H100-SXM", "model": "Llama-2-7B", "tp": 1}, scheduler=sched)
    return _config(workload, pool, "round_robin")


def autoscale_config() -> dict:
    """A 4x rate step (4 -> 16 -> 4 requests/s over 60 / 240 / 300 s, ShareGPT lengths) on a pool
    of H100s the reactive autoscaler grows from 2 up to 8 replicas and shrinks again, with the
    default cold start (local NVMe, safetensors: 18.6 s for Llama-3-8B)."""
    rates, durations = [4.0, 16.0, 4.0], [60.0, 240.0, 300.0]
    workload = {"name": "synthetic", "num_requests": int(sum(r * d for r, d in zip(rates, durations, strict=True))),
                "arrival": {"name": "phases", "rates_rps": rates, "durations_s": durations},
                "lengths": {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}}
    config = _config(workload, _pool(2), "least_outstanding")
    config["cluster"]["controllers"] = [{"name": "reactive_autoscaler", "pools": ["main"], "min_replicas": 2,
                                         "max_replicas": 8}]
    return config


def splitwise_reference_config() -> dict:
    """Splitwise as its reference simulator runs it (``mode: reference`` of the router,
    hand-off and scheduler) on the whole Azure 2023 conversation trace: 2 prompt + 6 token
    H100 machines of Llama-3-8B."""
    sched = {"name": "splitwise", "mode": "reference"}
    pools = [_pool(2, name="prompt", role="prefill", scheduler=sched),
             _pool(6, name="token", role="decode", scheduler=sched)]
    config = _config({"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv")}, pools[0], "least_outstanding")
    config["cluster"] = {"router": {"name": "splitwise", "mode": "reference"},
                         "handoff": {"name": "splitwise", "mode": "reference"}, "pools": pools}
    return config


#: the Llumnix scenario's rate, in multiples of the trace's (2.0 x the 0.775x KV of a 22.06 GiB A10G)
LLUMNIX_RATE_SCALE = 1.55


def llumnix_config() -> dict:
    """Llumnix on the whole Azure 2023 conversation trace near saturation: 16 A10G replicas of
    Llama-2-7B (small KV caches), contexts clipped to 4,096 tokens, the ``llumnix`` router and
    ``llumnix_migration`` pairing every 50 ms, live KV copies over 100 GbE.

    The rate is ``LLUMNIX_RATE_SCALE`` times the trace's. It was 2.0 while an A10G held 24 GiB; at
    the CUDA-visible 22.06 GiB (round 14) a replica's KV is 0.775x (7.78 -> 6.03 GiB), so the
    scenario scales the load by that factor, as the Llumnix trend tests did (tests/test_llumnix.py).
    At 2.0 the fleet is now far past saturation (mean TTFT 444 s, 29k preemptions, 14k migrations,
    329k events); at 1.55 it is near it (TTFT p50 0.30 s, p99 1.29 s, 353 preemptions, 640
    migrations), the regime the scenario was defined for."""
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"), "rate_scale": LLUMNIX_RATE_SCALE,
                "transforms": [{"name": "clip_lengths", "max_context_tokens": 4096}]}
    pool = _pool(16, hardware={"device": "A10G", "model": "Llama-2-7B", "tp": 1})
    config = _config(workload, pool, "llumnix")
    config["cluster"]["transfer"] = {"link": "ethernet-100g"}
    config["cluster"]["controllers"] = [{"name": "llumnix_migration"}]
    return config


def trtllm_max_utilization_config() -> dict:
    """TensorRT-LLM's ``MAX_UTILIZATION`` capacity policy (KV for the next step only; the last started request
    paused and recomputed when a block does not fit; round 15) on the Azure 2023 conversation trace at x0.4,
    clipped to 4,096 tokens, on 4 A10G replicas of Llama-2-7B, whose small KV makes it pause (315 pauses; TTFT
    p50 0.31 s, p99 8.7 s: near saturation), 8,192-token budget with chunked context, ``least_outstanding``."""
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"), "rate_scale": 0.4,
                "transforms": [{"name": "clip_lengths", "max_context_tokens": 4096}]}
    sched = {"name": "trtllm_capacity", "policy": "max_utilization", "max_num_tokens": 8192,
             "enable_chunked_context": True}
    pool = _pool(4, hardware={"device": "A10G", "model": "Llama-2-7B", "tp": 1}, scheduler=sched)
    return _config(workload, pool, "least_outstanding")


def v1_retention_config() -> dict:
    """vLLM V1's prefix cache keeping preempted requests' blocks (``retain_preempted_blocks``, SOURCES.md fid15a)
    under KV pressure: the Azure 2023 conversation trace at x0.4, clipped to 4,096 tokens, on 4 A10G replicas of
    Llama-2-7B (the small KV of ``trtllm_max_utilization_config``), ``vllm_v1`` with its 2,048-token budget,
    ``least_outstanding``."""
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"), "rate_scale": 0.4,
                "transforms": [{"name": "clip_lengths", "max_context_tokens": 4096}]}
    pool = _pool(4, hardware={"device": "A10G", "model": "Llama-2-7B", "tp": 1},
                 kv={"name": "paged", "retain_preempted_blocks": True})
    return _config(workload, pool, "least_outstanding")


def sglang_config() -> dict:
    """SGLang's own scheduler (``sglang``: prefill batches admitted against the running requests' estimated future
    decode tokens, 8,192-token chunks, decode retraction) in ``trtllm_max_utilization_config``'s setting: the Azure
    2023 conversation trace at x0.4, clipped to 4,096 tokens, on 4 A10G replicas of Llama-2-7B (small KV), every
    request stating max_new_tokens 1,024, ``least_outstanding``: no retraction (the stated 1,024 over-estimates the
    trace's outputs), TTFT p50 0.33 s, p99 16.4 s (the estimate queues requests that max_utilization starts)."""
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"), "rate_scale": 0.4,
                "transforms": [{"name": "clip_lengths", "max_context_tokens": 4096}]}
    pool = _pool(4, hardware={"device": "A10G", "model": "Llama-2-7B", "tp": 1},
                 scheduler={"name": "sglang", "max_new_tokens": 1024})
    return _config(workload, pool, "least_outstanding")


def vtc_config() -> dict:
    """VTC on the whole Azure 2023 conversation trace: 27 clients (lognormal rates), 16 replicas
    sharing their counters through the ``vtc`` router."""
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"),
                "transforms": [{"name": "assign_clients", "num_clients": 27, "rate_dist": "lognormal"}]}
    return _config(workload, _pool(16, scheduler="vtc"), "vtc")
def c2cserve_config() -> dict:
    """C2CServe on 8 GH200 1g.24gb slices (2 chips): the first 600 s of the Azure 2023 conversation
    trace at half rate, 12 models by Zipf popularity with bursts, weights streamed over C2C."""
    bases = ["Llama-3-8B", "Qwen2.5-7B", "Llama-3.2-1B"]
    models = [f"{b}@v{k}" for k in range(4) for b in bases]
    workload = {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"), "transforms": [
        {"name": "window", "start_s": 0, "duration_s": 600}, {"name": "rate_scale", "factor": 0.5},
        {"name": "clip_lengths", "max_context_tokens": 4096},
        {"name": "assign_models", "models": models, "zipf_a": 1.0, "burst_factor": 4.0}]}
    pool = {"name": "mig", "num_replicas": 8, "hardware": {"device": "GH200-96GB:1g.24gb", "model": bases[0]},
            "serving": {"models": models, "weights_home": "grace", "stream": True, "slices_per_chip": 4}}
    data = _config(workload, pool, "c2cserve")
    data["cluster"]["controllers"] = [{"name": "c2cserve_rho"}]
    return data


def cacheopt_config(num_replicas: int) -> dict:
    """The Azure 2023 conversation trace on CacheOPT (scheduler + KV manager, lognormal predictor
    error 0.5, swaps priced per block copy call)."""
    pool = _pool(num_replicas, scheduler={"name": "cacheopt"}, kv={"name": "cacheopt"},
                 cost_model={"name": "analytic", "swap_call_overhead_s": 5e-6})
    config = _config({"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv")}, pool, "least_outstanding")
    config["cluster"]["predictor"] = {"name": "noisy", "sigma": 0.5}
    return config


SCENARIOS: dict[str, Any] = {
    "azure-conv-16": lambda: _config({"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv")},
                                     _pool(16), "least_outstanding"),
    "azure-code-16": lambda: _config({"name": "trace", "path": str(DATA / "azure_llm_2023_code.csv")},
                                     _pool(16), "least_outstanding"),
    "mooncake-prefix-8": lambda: _config(
        {"name": "trace", "path": str(DATA / "mooncake_conversation_trace.jsonl")},
        _pool(8, kv={"name": "paged", "enable_prefix_caching": True}), "prefix_affinity"),
    "azure-conv-16-spec": lambda: _config({"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"),
                                           "max_requests": 4000},
                                          _pool(16, speculation={"name": "fixed", "k": 4, "acceptance_rate": 0.7,
                                                                 "draft_model": "Llama-3.2-1B"}),
                                          "least_outstanding"),
    "synthetic-1m-128": lambda: synthetic_config(1_000_000, 128),
    "autoscale-burst": autoscale_config,
    "vidur-vllm-1": lambda: vidur_config("vllm", 1),
    "vidur-vllm-4": lambda: vidur_config("vllm", 4),
    "vidur-sarathi-1": lambda: vidur_config("sarathi", 1),
    "vidur-sarathi-4": lambda: vidur_config("sarathi", 4),
    "azure-conv-4-trtllm": lambda: _config(  # issue 17: TensorRT-LLM's no-evict capacity scheduler
        {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv")},
        _pool(4, scheduler={"name": "trtllm_capacity", "max_num_tokens": 8192, "enable_chunked_context": True,
                            "max_seq_len": 8192}), "least_outstanding"),
    "azure-conv-4-trtllm-maxutil": trtllm_max_utilization_config,
    "azure-conv-4-v1-retain": v1_retention_config,
    "azure-conv-4-sglang": sglang_config,  # issue 17: SGLang's admission and retraction
    "splitwise-reference": splitwise_reference_config,
    "azure-conv-moe-ep": lambda: _config(  # Qwen3-30B-A3B, EP8 with DP attention, skewed routing
        {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv")},
        _pool(2, hardware={"device": "H100-SXM", "model": "Qwen3-30B-A3B", "tp": 1},
              cost_model={"name": "analytic", "expert_parallel": {"ep": 8, "routing": "zipf", "noise_sigma": 0.3}}),
        "least_outstanding"),
    "azure-conv-16-llumnix": llumnix_config,
    "azure-conv-16-vtc": vtc_config,
    "azure-conv-16-specserve": lambda: _config({"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"),
                                                "max_requests": 4000},
                                               _pool(16, speculation={"name": "specserve", "acceptance": "chat",
                                                                      "draft_model": "Llama-3.2-1B"}),
                                               "least_outstanding"),
    "c2cserve-mig": c2cserve_config,
    "azure-conv-16-cacheopt": lambda: cacheopt_config(16),
    "azure-conv-4-v1-frontend": lambda: _config(  # fid7: vllm_v1_engine's serial front end queues (25x rate)
        {"name": "trace", "path": str(DATA / "azure_llm_2023_conv.csv"), "rate_scale": 25.0},
        _pool(4, hardware={"device": "H100-SXM", "model": "Qwen3-0.6B", "tp": 1},
              cost_model={"name": "analytic", "stack": "vllm_v1_engine"}), "least_outstanding"),
}
LONG = ("synthetic-1m-128",)  # run only with --all or by name
SCALING_SIZES = (10_000, 100_000, 1_000_000)


def scaling_config(num_requests: int) -> dict:
    """The scaling scenario at one size: 128 replicas per million requests."""
    return synthetic_config(num_requests, max(1, round(num_requests * 128 / 1_000_000)))


def run_child(config: dict, t0: float) -> dict:
    """Run one config in this process and report its figures.

    ``startup_s`` runs from the import of ``sim.api`` to the first event (imports, config
    parsing, building the workload and the cluster); ``sim_s`` is the event loop;
    ``end_s`` the frames and summary after it; ``wall_s`` all three."""
    import time

    from sim.api import simulate
    from sim.engine.cluster import Cluster

    marks: dict[str, float] = {}
    run = Cluster.run

    def timed_run(cluster: Cluster) -> None:
        marks["start"] = time.perf_counter()
        run(cluster)
        marks["end"] = time.perf_counter()

    Cluster.run = timed_run  # this child process only
    result = simulate(config)
    t1 = time.perf_counter()
    s = result.summary
    wall_s = t1 - t0
    loop_s = marks["end"] - marks["start"]
    rss_kb = peak_rss_kb()
    return {"wall_s": wall_s, "startup_s": marks["start"] - t0, "sim_s": loop_s,
            "end_s": t1 - marks["end"], "num_requests": s["num_requests"], "num_events": s["num_events"],
            "requests_per_s": s["num_requests"] / wall_s, "events_per_s": s["num_events"] / loop_s,
            "peak_rss_mb": rss_kb / 1024.0, "simulated_duration_s": s["simulated_duration_s"],
            "num_completed": s["num_completed"]}


def peak_rss_kb() -> float:
    """This process's peak resident memory in KiB: ``VmHWM`` where Linux gives it (it starts afresh
    at ``exec``), else ``ru_maxrss``, which on Linux a child started by fork and exec inherits from
    its parent (the ``servesim`` process that spawned it, pandas and all, about 108 MB here: round
    7's table reported that for every small scenario)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# the child's clock starts before anything of servesim is imported
CHILD = ("import time; t0 = time.perf_counter(); import json, sys; from sim.tools.bench import run_child; "
         "print(json.dumps(run_child(json.loads(sys.stdin.read()), t0)))")


def _spawn(config: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(config),
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(name: str, config: dict, repeat: int) -> dict:
    """Medians over ``repeat`` child runs (each figure its own median; RSS the largest)."""
    runs = [_spawn(config) for _ in range(repeat)]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {"scenario": name, "wall_s": med("wall_s"), "startup_s": med("startup_s"), "sim_s": med("sim_s"),
            "end_s": med("end_s"), "requests_per_s": med("requests_per_s"), "events_per_s": med("events_per_s"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "num_requests": runs[0]["num_requests"],
            "repeats": repeat}


def profile(name: str, path: str) -> None:
    """Run scenario ``name`` once under cProfile; write the stats to ``path``, print the top 25
    by own time (``python -m pstats PATH`` reads them again)."""
    import cProfile
    import pstats

    from sim.api import simulate

    config = scaling_config(SCALING_SIZES[0]) if name == "scaling" else SCENARIOS[name]()
    prof = cProfile.Profile()
    prof.runcall(simulate, config)
    prof.dump_stats(path)
    print(f"== {name}: profile written to {path}")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def compile_bytecode() -> None:
    """Write the project's bytecode (``__pycache__``, as any normal import does) before timing, so
    start-up measures servesim, not the compiler: with ``PYTHONDONTWRITEBYTECODE`` set and no
    cache, every child would compile some 70 modules from source (about 0.1 s)."""
    import compileall

    for package in ("sim", "hardware", "policies", "traces"):
        compileall.compile_dir(str(ROOT / package), quiet=2)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``servesim bench``."""
    parser = argparse.ArgumentParser(prog="servesim bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=[*SCENARIOS, "scaling"],
                        help="scenario to run (repeatable; default all but scaling and the long ones)")
    parser.add_argument("--all", action="store_true", help="also run the long scenarios (synthetic-1m-128)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="run each scenario once in this process under cProfile, write the stats to FILE "
                             "(one file per scenario: FILE.<scenario>) and print the 25 costliest functions")
    args = parser.parse_args(argv)
    names = args.scenario or [n for n in SCENARIOS if args.all or n not in LONG]
    compile_bytecode()
    if args.profile:
        for name in names:
            profile(name, f"{args.profile}.{name}" if len(names) > 1 else args.profile)
        return 0
    rows = []
    for name in names:
        if name == "scaling":
            for n in SCALING_SIZES:
                row = measure(f"scaling-{n // 1000}k", scaling_config(n), args.repeat)
                row["wall_s_per_1k_requests"] = row["wall_s"] / (n / 1000)
                rows.append(row)
                _print_row(row, args.json)
        else:
            row = measure(name, SCENARIOS[name](), args.repeat)
            rows.append(row)
            _print_row(row, args.json)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def _print_row(row: dict, as_json: bool) -> None:
    if as_json:
        return
    extra = f"  {row['wall_s_per_1k_requests'] * 1000:8.1f} ms/1k req" if "wall_s_per_1k_requests" in row else ""
    print(f"{row['scenario']:<20} wall {row['wall_s']:7.2f} s  start-up {row['startup_s']:5.2f} s  "
          f"sim {row['sim_s']:7.2f} s  end {row['end_s']:5.2f} s  {row['requests_per_s']:8.0f} req/s  "
          f"{row['events_per_s']:9.0f} events/s  peak RSS {row['peak_rss_mb']:6.0f} MB{extra}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
