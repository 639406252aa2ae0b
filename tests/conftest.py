"""Builders shared by the tests: small configs on the constant cost model."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from sim.config import from_dict, set_dotted


def make_config_dict(
    *,
    scheduler: str | dict = "vllm_v1",
    router: str | dict = "round_robin",
    num_replicas: int = 1,
    num_blocks: int = 2000,
    workload: dict | None = None,
    cost: dict | None = None,
    kv: dict | None = None,
    slo: dict | None = None,
    seed: int = 0,
    **overrides: Any,
) -> dict:
    """A config mapping: synthetic Poisson workload, constant cost model, one pool."""
    data = {
        "seed": seed,
        "workload": workload or {"name": "synthetic", "num_requests": 200, "rate_rps": 20.0,
                                 "input_tokens": 64, "input_tokens_max": 512,
                                 "output_tokens": 4, "output_tokens_max": 64},
        "cluster": {
            "router": router,
            "pools": [{
                "name": "main",
                "num_replicas": num_replicas,
                "cost_model": cost or {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5},
                "scheduler": scheduler,
                "kv": {"name": "paged", "num_blocks": num_blocks, **(kv or {})},
            }],
        },
        "slo": slo or {"ttft_s": 1.0, "tpot_s": 0.05},
        "engine": {"progress": False},
    }
    for key, value in overrides.items():
        set_dotted(data, key.replace("__", "."), value)
    router_name = router if isinstance(router, str) else router["name"]
    if router_name in ROUTER_SETUPS:
        ROUTER_SETUPS[router_name](data)
    scheduler_name = scheduler if isinstance(scheduler, str) else scheduler["name"]
    if scheduler_name in SCHEDULER_SETUPS:
        SCHEDULER_SETUPS[scheduler_name](data)
    return data


def _with_long_pool(data: dict) -> None:
    """length_reservation: a second pool named 'long' and a threshold."""
    pools = data["cluster"]["pools"]
    long_pool = copy.deepcopy(pools[0])
    long_pool["name"] = "long"
    long_pool["num_replicas"] = 1
    pools.append(long_pool)
    if isinstance(data["cluster"]["router"], str):
        data["cluster"]["router"] = {"name": data["cluster"]["router"], "long_input_tokens": 400}


def _with_pecsched(data: dict) -> None:
    """pecsched: a threshold, small gangs, and a one-replica short-decode pool with the hand-off."""
    pools = data["cluster"]["pools"]
    decode_pool = copy.deepcopy(pools[0])
    decode_pool.update(name="shortdecode", role="decode", num_replicas=1, scheduler="vllm_v1")
    decode_pool["kv"] = dict(decode_pool["kv"], preemption_mode="recompute")  # vllm_v1 never swaps back
    pools.append(decode_pool)
    data["cluster"]["handoff"] = {"name": "pecsched"}
    if isinstance(data["cluster"]["router"], str):
        data["cluster"]["router"] = {"name": "pecsched", "long_input_tokens": 300, "replicas_per_node": 2,
                                     "sp_tokens_per_replica": 200}


# routers that need more than a name to run in the generic (property, trend) tests
ROUTER_SETUPS = {"length_reservation": _with_long_pool, "pecsched": _with_pecsched}


def _with_cacheopt(data: dict) -> None:
    """cacheopt: its own KV manager, and a predictor (lognormal error 0.5) unless one is set."""
    for pool in data["cluster"]["pools"]:
        pool["kv"]["name"] = "cacheopt"
    data["cluster"].setdefault("predictor", {"name": "noisy", "sigma": 0.5})


# schedulers that need more than a name (their paired KV manager, a predictor)
SCHEDULER_SETUPS = {"cacheopt": _with_cacheopt}


def same_value(a: Any, b: Any) -> bool:
    """Equality for summaries and goldens: NaN equals NaN, and None (how a baseline writes NaN)
    equals NaN; mappings and lists compare element by element. ``==`` says NaN != NaN, so a run
    whose requests have no inter-token gaps (NaN ITL and TPOT) would never equal itself."""
    if _nan_like(a) and _nan_like(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _nan_like(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def make_config(**kwargs: Any):
    """A parsed SimulationConfig from ``make_config_dict`` arguments."""
    return from_dict(copy.deepcopy(make_config_dict(**kwargs)))


@pytest.fixture
def config_dict():
    return make_config_dict
