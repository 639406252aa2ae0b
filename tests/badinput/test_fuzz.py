"""Issue 19: a fuzz test of the whole input path, bounded to about a minute.

Valid small configs (constant cost model, tiny workloads, a time limit) are mutated at random
paths: keys dropped, renamed, retyped, values set to NaN, inf, negative, zero or huge; random
trace files (bytes, or text near a real format) are replayed. Every outcome must be a clean run
whose counts add up, or a ServesimError with a one-line message: never another exception, never
a hang. Counts (``num_*`` sizes) are kept small when made huge, so that a correct simulator
finishes each example in milliseconds: a huge count is a valid long run, not bad input.
"""

from __future__ import annotations

import copy
import math
import signal
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sim import simulate
from sim.config import from_dict
from sim.errors import ServesimError

COST = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 1e-5, "kv_capacity_tokens": 4000}
ENGINE = {"progress": False, "max_time_s": 3.0}
SYNTHETIC = {"name": "synthetic", "num_requests": 6, "rate_rps": 4.0, "input_tokens": 16, "input_tokens_max": 64,
             "output_tokens": 2, "output_tokens_max": 8}


def _pool(**kw: Any) -> dict[str, Any]:
    pool = {"name": "main", "num_replicas": 2, "cost_model": dict(COST), "scheduler": {"name": "vllm_v1"},
            "kv": {"name": "paged", "num_blocks": 64, "block_size": 16}}
    pool.update(kw)
    return pool


BASES: list[dict[str, Any]] = [
    {"seed": 0, "workload": dict(SYNTHETIC), "cluster": {"router": "round_robin", "pools": [_pool()]},
     "slo": {"ttft_s": 1.0, "tpot_s": 0.05}, "engine": dict(ENGINE)},
    {"seed": 1, "workload": {"name": "synthetic", "num_requests": 5, "arrival": {"name": "gamma", "rate_rps": 3.0,
                                                                                "cv": 2.0},
                             "lengths": {"input": {"name": "lognormal", "median_tokens": 30, "sigma": 0.5,
                                                   "max_tokens": 200},
                                         "output": {"name": "uniform", "min_tokens": 1, "max_tokens": 6}}},
     "cluster": {"router": {"name": "least_outstanding"},
                 "pools": [_pool(scheduler={"name": "sarathi", "chunk_size": 32})]},
     "engine": dict(ENGINE)},
    {"seed": 2, "workload": {"name": "closed_loop", "num_users": 2, "num_requests": 5, "input_tokens": 16,
                             "output_tokens": 3, "think_time_s": 0.1},
     "cluster": {"pools": [_pool(num_replicas=1)]}, "engine": dict(ENGINE)},
    {"seed": 3, "workload": dict(SYNTHETIC),
     "cluster": {"router": "round_robin", "handoff": {"name": "distserve"},
                 "pools": [_pool(name="prefill", role="prefill", num_replicas=1),
                           _pool(name="decode", role="decode", num_replicas=1)]},
     "engine": dict(ENGINE)},
]

# names a mutated ``name:`` key takes: other policies of every kind, and refused plug-ins
POLICY_NAMES = ["vllm", "vllm_v1", "sarathi", "orca", "splitfuse", "strict_priority", "round_robin",
                "least_outstanding", "least_pending_tokens", "paged", "constant", "synthetic", "closed_loop",
                "sessions", "distserve", "splitwise", "gamma", "poisson", "uniform", "lognormal", "sys:exit",
                "tests.plugins.most_free_kv:MostFreeKVRouter", "os:getcwd"]
RETYPED = ["abc", [1, 2], {"a": 1}, None, True, 1.5, 7, ""]
SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every (container path, key) in a nested config."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out.extend(_paths(value, prefix + (key,)))
    return out


def _huge(key: Any, value: Any) -> Any:
    if isinstance(key, str) and (key.startswith("num_") or key.endswith(("_requests", "_users"))):
        return 300  # a count: large but quick (see the module docstring)
    if isinstance(value, float):
        return 1e300
    return 10**12


def mutate(data: dict[str, Any], ops: list[tuple[int, str, int]]) -> dict[str, Any]:
    """Apply ``ops`` ((path selector, operation, payload) each) to a copy of ``data``."""
    data = copy.deepcopy(data)
    for selector, op, payload in ops:
        paths = _paths(data)
        if not paths:
            break
        *parent_path, key = paths[selector % len(paths)]
        parent: Any = data
        for part in parent_path:
            parent = parent[part]
        value = parent[key]
        if op == "drop":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[f"{key}{'xs_'[payload % 3]}"] = parent.pop(key)
        elif op == "retype":
            parent[key] = copy.deepcopy(RETYPED[payload % len(RETYPED)])
        elif op in SPECIAL:
            parent[key] = SPECIAL[op]
        elif op == "negative":
            parent[key] = -abs(value) - 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else -1
        elif op == "zero":
            parent[key] = 0.0 if isinstance(value, float) else 0
        elif op == "huge":
            parent[key] = _huge(key, value)
        elif op == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = type(value)(value * (payload + 1) / 10) if value else payload
        elif op == "policy" and key == "name":
            parent[key] = POLICY_NAMES[payload % len(POLICY_NAMES)]
    return data


class Hang(Exception):
    """An example ran past HANG_S of wall time."""


HANG_S = 10.0  # each example takes milliseconds; this turns a hang into a failure, not a stuck CI job


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang(f"example ran past {HANG_S} s")


def check_outcome(data: Any) -> None:
    """A clean run whose counts add up, or a one-line ServesimError; never a hang."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        _check_outcome(data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_outcome(data: Any) -> None:
    try:
        result = simulate(from_dict(data))
    except ServesimError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not a one-line error: {message!r}"
        event(f"named error: {type(exc).__name__}")
        return
    event("clean run")
    s = result.summary
    assert s["num_completed"] + s["num_rejected"] + s["num_unfinished"] == s["num_requests"]
    assert len(result.requests) == s["num_requests"]
    if "truncated" in s:
        assert s["num_requests"] + s["num_not_arrived"] == s["num_workload_requests"]


OPS = st.sampled_from(["drop", "rename", "retype", "nan", "inf", "-inf", "negative", "zero", "huge", "scale",
                       "scale", "policy", "policy"])
MUTATIONS = st.lists(st.tuples(st.integers(0, 10**6), OPS, st.integers(0, 100)), min_size=1, max_size=3)
FUZZ = settings(max_examples=2400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(base=st.sampled_from(range(len(BASES))), ops=MUTATIONS)
@example(base=0, ops=[(8, "huge", 0), (25, "huge", 0)])  # once a 5 TiB array: 1e12-token requests
def test_mutated_configs_run_clean_or_fail_named(base, ops):
    check_outcome(mutate(BASES[base], ops))


# ---------------------------------------------------------------------------- trace bytes

TRACE_DIR = Path(tempfile.mkdtemp(prefix="servesim-fuzz-"))
HEADERS = ["arrival_s,input_tokens,output_tokens", "TIMESTAMP,ContextTokens,GeneratedTokens",
           "prompt_len,output_len", '{"arrival_s": 0.5, "input_tokens": 3, "output_tokens": 2}',
           "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type", ""]
CELLS = st.one_of(st.integers(-5, 50).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["", "x", "2023-11-16 18:17:03.0", "nan", "1e400", '"', "{", "\x00", "\xff"]))
TEXT_ROW = st.lists(CELLS, min_size=0, max_size=4).map(",".join)
TEXT_TRACE = st.tuples(st.sampled_from(HEADERS), st.lists(TEXT_ROW, max_size=6)).map(
    lambda t: ("\n".join([t[0], *t[1]]) + "\n").encode("utf-8", "surrogatepass"))
GOOD_ROW = st.tuples(st.floats(0, 2), st.integers(0, 300), st.integers(0, 20))
GOOD_TRACE = st.lists(GOOD_ROW, max_size=8).map(lambda rows: (HEADERS[0] + "\n" + "".join(
    f"{sum(r[0] for r in rows[:i + 1])!r},{n_in},{n_out}\n" for i, (_gap, n_in, n_out) in enumerate(rows))).encode())
TRACE_BYTES = st.one_of(st.binary(max_size=200), TEXT_TRACE, GOOD_TRACE)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(content=TRACE_BYTES, compressed=st.booleans(), fmt=st.sampled_from(["auto", "csv", "azure", "jsonl"]))
@example(content=b"prompt_len,output_len\n0,1e20", compressed=False, fmt="auto")  # once an OverflowError
def test_random_trace_bytes_run_clean_or_fail_named(content, compressed, fmt):
    import gzip

    path = TRACE_DIR / "trace.csv"
    path.write_bytes(gzip.compress(content) if compressed else content)
    workload = {"name": "trace", "path": str(path), "format": fmt}
    if fmt == "auto" and content.startswith(b"prompt_len"):
        workload["arrival"] = {"name": "poisson", "rate_rps": 5.0}
    check_outcome({**copy.deepcopy(BASES[0]), "workload": workload})
