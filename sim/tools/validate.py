"""``servesim validate RESULT --config C`` and ``servesim fit RESULT --config C --out STACK``.

RESULT is what a user measured on their own cluster: a ``vllm bench serve`` /
``benchmark_serving.py`` result JSON (``--save-result``: ``input_lens``, ``output_lens``,
``ttfts``, ``itls``, ``request_rate``, ``max_concurrency``), an LLMPerf
``*_individual_responses.json`` (concurrency from its ``*_summary.json``) or a per-request CSV with columns
``input_tokens``, ``output_tokens`` and at least one of ``ttft_s``, ``tpot_s`` (or
``itl_s``), ``e2e_s`` (a metric not measured is left out of the errors), optional
``arrival_s`` or ``concurrency``. The same requests are simulated on the config's first pool:
the CSV's arrival times, or a closed loop of ``concurrency`` clients (in file order); for a
JSON (which stores no send times) the benchmark's closed loop of ``max_concurrency`` clients,
else Poisson arrivals at ``request_rate`` (seeded), else all at once; ``--concurrency N``
overrides it. A closed loop replays the requests in file order. ``validate`` prints the
relative error of mean, p50 and p99 TTFT, TPOT and end-to-end latency and draws their CDFs
(``--stack-file`` applies a fitted stack); ``fit`` searches the stack's overhead and
efficiency constants (coordinate search on a shrinking multiplicative grid) to minimise the
log errors of the means and medians and writes a stack file (``hardware.stack_file``) to use
as ``cost_model: {stack_file: ...}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hardware import calibration_constants as cc
from hardware.stack_file import read_stack_file, write_stack_file
from sim.errors import ConfigError
from traces.lengths_file import write_lengths_csv

METRICS = ("ttft_s", "tpot_s", "e2e_s")
STATS = ("mean", "p50", "p99")
#: fit parameter -> (cost-model param, stack-file key, lower, upper)
FIT_PARAMS = {
    "iteration_overhead_s": ("iteration_overhead_s", "iteration_s", 0.0, 0.1),
    "layer_overhead_decode_s": ("layer_overhead_decode_s", "layer_decode_s", 0.0, 1e-3),
    "seq_overhead_s": ("seq_overhead_s", "seq_s", 0.0, 1e-2),
    "memory_efficiency": ("memory_efficiency", "memory_efficiency", 0.05, 1.0),
    "gemm_compute_efficiency": ("gemm_compute_efficiency", "gemm_compute_efficiency", 0.05, 1.0),
    "request_overhead_s": ("request_overhead_s", "request_s", 0.0, 1.0),
    "frontend_request_s": ("frontend_request_s", "frontend_request_s", 0.0, 0.1),  # serial front end
}
DEFAULT_FIT = ("iteration_overhead_s", "memory_efficiency", "request_overhead_s")


def load_result(path: str | Path) -> dict[str, Any]:
    """{requests: [(arrival_s|None, input, output)], measured: {metric: array}, arrival: how}."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, list):
            return _load_llmperf(path, data)
        try:
            ins, outs, ttfts, itls = data["input_lens"], data["output_lens"], data["ttfts"], data["itls"]
        except KeyError as exc:
            raise ConfigError(f"{path}: not a vllm bench serve result with per-request data (no {exc.args[0]!r}; "
                              "save it with --save-result)", "RESULT") from None
        errors = data.get("errors") or [""] * len(ins)
        keep = [i for i in range(len(ins)) if not errors[i] and outs[i] > 0]
        ttft = np.array([ttfts[i] for i in keep], dtype=float)
        tpot = np.array([float(np.mean(itls[i])) if len(itls[i]) else math.nan for i in keep])
        e2e = ttft + np.array([float(np.sum(itls[i])) for i in keep])
        reqs = [(None, int(ins[i]), int(outs[i])) for i in keep]
        rate = data.get("request_rate")
        rate = None if rate in (None, "inf") or (isinstance(rate, float) and math.isinf(rate)) else float(rate)
        conc = data.get("max_concurrency")
        how = {"concurrency": int(conc)} if conc else ({"rate_rps": rate} if rate else {"all_at_once": True})
        return {"requests": reqs, "measured": {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e}, "arrival": how}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ConfigError(f"{path}: no rows", "RESULT")
    cols = rows[0].keys()
    tcol = "tpot_s" if "tpot_s" in cols else "itl_s" if "itl_s" in cols else None
    timed = [c for c in ("ttft_s", tcol, "e2e_s") if c and c in cols]
    if "input_tokens" not in cols or "output_tokens" not in cols or not timed:
        raise ConfigError(f"{path}: per-request CSV needs columns input_tokens, output_tokens and at least one "
                          "of ttft_s, tpot_s (or itl_s), e2e_s", "RESULT")
    has_arrival = "arrival_s" in cols
    reqs = [(float(r["arrival_s"]) if has_arrival else None, int(r["input_tokens"]), int(r["output_tokens"]))
            for r in rows]

    def column(name: str | None) -> np.ndarray:
        return np.array([float(r[name]) for r in rows]) if name in cols else np.full(len(rows), math.nan)

    ttft, tpot, e2e = column("ttft_s"), column(tcol), column("e2e_s")
    if "e2e_s" not in cols:
        e2e = ttft + tpot * np.array([max(0, o - 1) for _a, _i, o in reqs])
    if has_arrival:
        how: dict[str, Any] = {"trace": True}
    elif "concurrency" in cols:
        levels = {r["concurrency"] for r in rows}
        if len(levels) != 1:
            raise ConfigError(f"{path}: column concurrency must hold one value (found {sorted(levels)}); "
                              "split the file per concurrency level", "RESULT")
        how = {"concurrency": int(float(levels.pop()))}
    else:
        how = {"all_at_once": True}
    return {"requests": reqs, "measured": {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e}, "arrival": how}


def _load_llmperf(path: Path, rows: list) -> dict[str, Any]:
    """LLMPerf's ``*_individual_responses.json``: one object per request; its concurrency is the
    sibling ``*_summary.json``'s ``num_concurrent_requests`` (else all at once)."""
    need = ("ttft_s", "end_to_end_latency_s", "number_input_tokens", "number_output_tokens")
    if not rows or not all(isinstance(r, dict) for r in rows) or any(k not in rows[0] for k in need):
        raise ConfigError(f"{path}: a JSON list must be LLMPerf individual responses with "
                          f"{', '.join(need)}", "RESULT")
    ok = [r for r in rows if not r.get("error_code") and all(r.get(k) is not None for k in need)
          and int(r["number_output_tokens"]) > 0]
    ttft = np.array([float(r["ttft_s"]) for r in ok])
    e2e = np.array([float(r["end_to_end_latency_s"]) for r in ok])
    outs = np.array([int(r["number_output_tokens"]) for r in ok])
    # TPOT from TTFT and E2E (LLMPerf's own inter_token_latency_s divides by all output tokens)
    tpot = np.where(outs > 1, (e2e - ttft) / np.maximum(outs - 1, 1), np.nan)
    reqs = [(None, int(r["number_input_tokens"]), int(r["number_output_tokens"])) for r in ok]
    how: dict[str, Any] = {"all_at_once": True}
    summary = path.with_name(path.name.replace("_individual_responses.json", "_summary.json"))
    if summary != path and summary.is_file():
        conc = json.loads(summary.read_text()).get("num_concurrent_requests")
        if conc:
            how = {"concurrency": int(conc)}
    return {"requests": reqs, "measured": {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e}, "arrival": how}


def summarize_metrics(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for m in METRICS:
        v = np.asarray(values[m], dtype=float)
        v = v[np.isfinite(v)]
        if not len(v):  # not measured
            out[m] = {s: math.nan for s in STATS}
            continue
        out[m] = {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
    return out


def _request_overhead(cost: dict[str, Any]) -> float:
    if cost.get("stack_file"):
        data = read_stack_file(cost["stack_file"])
        return float(data.get("request_s", cc.STACKS[data.get("base_stack", cc.DEFAULT_STACK)].request_s))
    return cc.STACKS[cost.get("stack", cc.DEFAULT_STACK)].request_s


def simulate_result(config: dict[str, Any], result: dict[str, Any], cost_overrides: dict[str, Any] | None = None,
                    request_overhead_s: float | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-request simulated TTFT, TPOT and E2E for the result's requests on ``config``."""
    from sim.api import simulate

    cfg = json.loads(json.dumps(config))
    pool = cfg["cluster"]["pools"][0]
    cost = pool.get("cost_model", {"name": "analytic"})
    cost = {"name": cost} if isinstance(cost, str) else dict(cost)
    cost.update(cost_overrides or {})
    if request_overhead_s is not None:
        cost["request_overhead_s"] = request_overhead_s
    pool["cost_model"] = cost
    how, reqs = result["arrival"], result["requests"]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.csv"
        if "concurrency" in how:
            write_lengths_csv(path, [(i, o) for _a, i, o in reqs])
            cfg["workload"] = {"name": "closed_loop", "num_users": how["concurrency"], "num_requests": len(reqs),
                               "think_time_s": 0.0, "think": "fixed",
                               "lengths": {"file": str(path), "order": "file"}}
        else:
            if "rate_rps" in how:
                arrivals = np.cumsum(rng.exponential(1.0 / how["rate_rps"], len(reqs)))
            elif "trace" in how:
                arrivals = np.array([a for a, _i, _o in reqs])
            else:
                arrivals = np.zeros(len(reqs))
            write_lengths_csv(path, [(i, o) for _a, i, o in reqs], arrivals)
            cfg["workload"] = {"name": "trace", "path": str(path)}
        cfg.setdefault("engine", {})["progress"] = False
        df = simulate(cfg).requests
    df = df[df["state"] == "finished"]  # the frontend delay (request_overhead_s) is already in
    return {"ttft_s": df["ttft_s"].to_numpy(dtype=float), "tpot_s": df["tpot_s"].to_numpy(dtype=float),
            "e2e_s": df["e2e_s"].to_numpy(dtype=float)}


def errors(measured: dict[str, dict[str, float]],
           simulated: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {m: {s: (simulated[m][s] - measured[m][s]) / measured[m][s] for s in STATS} for m in METRICS}


def _loss(err: dict[str, dict[str, float]]) -> float:
    return sum(math.log1p(err[m][s]) ** 2 for m in METRICS for s in ("mean", "p50")
               if math.isfinite(err[m][s]) and err[m][s] > -1)


def fit(config: dict[str, Any], result: dict[str, Any], names: tuple[str, ...] = DEFAULT_FIT,
        rounds: int = 4) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(fitted values, errors before, errors after) by coordinate search over ``names``."""
    from hardware.analytic import AnalyticParams

    measured = summarize_metrics(result["measured"])
    pool = config["cluster"]["pools"][0]
    cost = pool.get("cost_model", {"name": "analytic"})
    cost = {"name": cost} if isinstance(cost, str) else dict(cost)
    stack = cc.STACKS[cost.get("stack", cc.DEFAULT_STACK)]
    defaults = AnalyticParams()
    start = {"iteration_overhead_s": stack.iteration_s, "layer_overhead_decode_s": stack.layer_decode_s,
             "seq_overhead_s": stack.seq_s, "request_overhead_s": _request_overhead(cost),
             "memory_efficiency": defaults.memory_efficiency,
             "gemm_compute_efficiency": defaults.gemm_compute_efficiency,
             "frontend_request_s": stack.frontend_request_s}
    cur = {n: float(cost.get(FIT_PARAMS[n][0], start[n])) for n in names}

    def run(values: dict[str, float]) -> dict[str, dict[str, float]]:
        sim = simulate_result(config, result, {FIT_PARAMS[n][0]: v for n, v in values.items()})
        return errors(measured, summarize_metrics(sim))

    before = run(cur)
    best, best_loss = before, _loss(before)
    step = 1.0  # factors exp(+-step)
    for _ in range(rounds):
        for n in names:
            lo, hi = FIT_PARAMS[n][2], FIT_PARAMS[n][3]
            base = cur[n] if cur[n] > 0 else 1e-4 * (hi - lo) + lo
            for cand in (base * math.exp(step), base * math.exp(-step), base * math.exp(step / 2),
                         base * math.exp(-step / 2)):
                cand = min(hi, max(lo, cand))
                trial = dict(cur, **{n: cand})
                err = run(trial)
                loss = _loss(err)
                if loss < best_loss:
                    cur, best, best_loss = trial, err, loss
        step /= 2
    return cur, before, best


def _table(measured: dict, simulated: dict, err: dict) -> str:
    lines = [f"{'metric':8s} {'stat':5s} {'measured':>11s} {'simulated':>11s} {'error':>8s}"]
    for m in METRICS:
        for s in STATS:
            if not math.isfinite(measured[m][s]):
                lines.append(f"{m[:-2]:8s} {s:5s} {'-':>11s} {simulated[m][s] * 1e3:9.2f}ms {'(not measured)':>8s}")
                continue
            lines.append(f"{m[:-2]:8s} {s:5s} {measured[m][s] * 1e3:9.2f}ms {simulated[m][s] * 1e3:9.2f}ms "
                         f"{err[m][s]:+8.1%}")
    return "\n".join(lines)


def _figure(measured: dict[str, np.ndarray], simulated: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, m in zip(axes, METRICS, strict=True):
        for label, vals in (("measured", measured[m]), ("simulated", simulated[m])):
            v = np.sort(np.asarray(vals, dtype=float)[np.isfinite(vals)]) * 1e3
            if not len(v):
                ax.set_title(f"{label}: not recorded", fontsize=9)
                continue
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=label)
        ax.set_xlabel(f"{m[:-2].upper()} (ms)")
        ax.set_ylabel("CDF")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN (a metric not measured) as None, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def _load_config(path: str) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or "cluster" not in data:
        raise ConfigError(f"{path}: a servesim config with a cluster section is needed", "--config")
    return data


def add_cli(sub: argparse._SubParsersAction) -> None:
    for name, text in (("validate", "simulate a measured benchmark result and print per-metric errors"),
                       ("fit", "fit the stack's constants to a measured result and write a stack file")):
        p = sub.add_parser(name, help=text)
        p.add_argument("result", help="vllm bench serve result JSON or per-request CSV")
        p.add_argument("--config", required=True, help="servesim config; its first pool is the system measured")
        p.add_argument("--json", action="store_true", help="print the errors as JSON")
        p.add_argument("--concurrency", type=int, default=None,
                       help="replay as a closed loop of this many clients (overrides what RESULT says)")
        if name == "validate":
            p.add_argument("--figure", default="validate.png", help="CDF comparison figure (PNG)")
            p.add_argument("--stack-file", default=None,
                           help="stack file (from servesim fit) to use as the first pool's cost_model.stack_file")
        else:
            p.add_argument("--out", default="fitted_stack.yaml", help="stack file to write")
            p.add_argument("--params", default=",".join(DEFAULT_FIT),
                           help=f"comma-separated constants to fit (of {', '.join(FIT_PARAMS)})")
        p.set_defaults(handler=_cmd_validate if name == "validate" else _cmd_fit)


def _load(args: argparse.Namespace) -> dict[str, Any]:
    result = load_result(args.result)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise ConfigError(f"must be >= 1, not {args.concurrency}", "--concurrency")
        result["arrival"] = {"concurrency": args.concurrency}
    return result


def _cmd_validate(args: argparse.Namespace) -> int:
    config, result = _load_config(args.config), _load(args)
    if args.stack_file:
        pool = config["cluster"]["pools"][0]
        cost = pool.get("cost_model", {"name": "analytic"})
        pool["cost_model"] = dict({"name": cost} if isinstance(cost, str) else cost, stack_file=args.stack_file)
    sim = simulate_result(config, result)
    measured, simulated = summarize_metrics(result["measured"]), summarize_metrics(sim)
    err = errors(measured, simulated)
    if args.json:
        print(json.dumps(_finite({"measured": measured, "simulated": simulated, "rel_error": err}), indent=1))
    else:
        print(f"servesim validate {args.result}: {len(result['requests'])} requests, arrivals {result['arrival']}")
        print(_table(measured, simulated, err))
    _figure(result["measured"], sim, Path(args.figure))
    print(f"figure: {args.figure}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    names = tuple(n.strip() for n in args.params.split(",") if n.strip())
    unknown = [n for n in names if n not in FIT_PARAMS]
    if unknown:
        raise ConfigError(f"unknown fit parameter {unknown[0]!r} (choices: {', '.join(FIT_PARAMS)})", "--params")
    config, result = _load_config(args.config), _load(args)
    values, before, after = fit(config, result, names)
    cost = config["cluster"]["pools"][0].get("cost_model", {})
    base = cost.get("stack", cc.DEFAULT_STACK) if isinstance(cost, dict) else cc.DEFAULT_STACK
    write_stack_file(args.out, base, {FIT_PARAMS[n][1]: v for n, v in values.items()},
                     {"fitted_to": str(args.result),
                      "errors_before": {m: {s: round(v, 4) for s, v in d.items()} for m, d in before.items()
                                        if math.isfinite(d["mean"])},
                      "errors_after": {m: {s: round(v, 4) for s, v in d.items()} for m, d in after.items()
                                       if math.isfinite(d["mean"])}})
    if args.json:
        print(json.dumps(_finite({"values": values, "before": before, "after": after}), indent=1))
    else:
        print("fitted: " + ", ".join(f"{n}={v:.4g}" for n, v in values.items()))
        for label, e in (("before", before), ("after", after)):
            print(f"{label:6s} " + "  ".join(f"{m[:-2]} mean {e[m]['mean']:+.1%} p50 {e[m]['p50']:+.1%}"
                                             for m in METRICS if math.isfinite(e[m]["mean"])))
        print(f"wrote {args.out} (use: cost_model: {{name: analytic, stack: {base}, stack_file: {args.out}}})")
    return 0
