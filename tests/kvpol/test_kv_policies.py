"""CacheOPT, MemShare, the swap cost model and the reasoning lengths: unit checks and trends."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from sim import simulate
from sim.config import from_dict
from sim.engine.seams import BuildContext
from sim.errors import ConfigError
from sim.registry import SCHEDULERS
from sim.tools.gates import scenario

LENGTHS_REASONING = {"input": {"name": "lognormal", "median_tokens": 120, "sigma": 0.5, "max_tokens": 1024},
                     "output": {"name": "reasoning_cot", "benchmark": "math500", "max_tokens": 2048}}


# ------------------------------------------------------------------ swap cost
def test_swap_call_overhead_prices_many_small_copies():
    from hardware.analytic import AnalyticCostModel, AnalyticParams
    from sim.config import HardwareConfig

    hw = HardwareConfig(device="H100-SXM", model="Llama-3-8B")
    plain = AnalyticCostModel(AnalyticParams(), hw)
    assert plain.swap_copy_time_s(1e9, 5000) == plain.swap_time_s(1e9)  # default: bytes only, as before
    calls = AnalyticCostModel(AnalyticParams(swap_call_overhead_s=5e-6), hw)
    extra = calls.swap_copy_time_s(1e9, 5000) - calls.swap_time_s(1e9)
    assert extra == pytest.approx(5000 * 2 * 32 * 5e-6)
    # the same bytes in 4x fewer (bigger) blocks cost less
    assert calls.swap_copy_time_s(1e9, 1250) < calls.swap_copy_time_s(1e9, 5000)


# ------------------------------------------------------------------ CacheOPT
class _Stub:
    """A predictor stand-in: a fixed factor times the truth."""

    def __init__(self, factor):
        self.factor = factor

    def predict(self, req):
        return max(1, int(req._r.output_tokens * self.factor))


def _cacheopt_scheduler(**kw):
    return SCHEDULERS.get("cacheopt")(SCHEDULERS.get("cacheopt").Params(**kw),
                                      BuildContext(rng=np.random.default_rng(0), predictor=_Stub(1.0)))


def test_cacheopt_needs_a_predictor():
    cls = SCHEDULERS.get("cacheopt")
    with pytest.raises(ConfigError, match="cluster.predictor"):
        cls(cls.Params(), BuildContext(rng=np.random.default_rng(0)))


def test_padding_is_hoeffding_and_shrinks_as_the_rate_rises():
    s = _cacheopt_scheduler(range_ratio=0.5, rate_coeff=0.01)
    t = s.padding_tokens(1000)
    assert t == math.ceil(500 * math.sqrt(math.log(1 / (1 - 0.95)) / 2))
    s._arrivals.extend(np.arange(0, 60, 0.01))  # 100 requests per second
    assert s.confidence() == pytest.approx(0.95 / (1 + 0.01 * 100), rel=1e-3)
    assert s.padding_tokens(1000) < t


def _memory_bound(scheduler: dict, kv: str, predictor: dict | None = None, rate: float = 30.0) -> dict:
    d = copy.deepcopy(scenario("scheduler", "vllm_v1"))
    d["workload"]["rate_rps"] = rate
    d["workload"]["num_requests"] = 300
    d["cluster"]["pools"][0]["scheduler"] = scheduler
    d["cluster"]["pools"][0]["kv"] = {"name": kv, "block_size": 16, "num_blocks": 800}
    if predictor is not None:
        d["cluster"]["predictor"] = predictor
    return d


def test_cacheopt_preempts_less_and_bounds_tbt_vs_vllm_v1():
    """Memory-bound: CacheOPT (oracle) preempts far less than vLLM v1 and its p99 worst gap is lower."""
    base = simulate(from_dict(_memory_bound({"name": "vllm_v1"}, "paged"))).requests
    co = simulate(from_dict(_memory_bound({"name": "cacheopt"}, "cacheopt", {"name": "oracle"}))).requests
    assert (co["state"] == "finished").all() and (base["state"] == "finished").all()
    assert co["num_preemptions"].sum() < 0.5 * base["num_preemptions"].sum()
    assert co["itl_max_s"].quantile(0.99) < base["itl_max_s"].quantile(0.99)


def test_cacheopt_gain_shrinks_with_predictor_error():
    """A worse predictor pads more (larger measured R): fewer requests fit, queueing grows."""
    runs = {}
    for sigma in (0.0, 1.0):
        r = simulate(from_dict(_memory_bound({"name": "cacheopt"}, "cacheopt", {"name": "noisy", "sigma": sigma})))
        runs[sigma] = r.summary
    assert runs[1.0]["queueing_mean_s"] > runs[0.0]["queueing_mean_s"]


# ------------------------------------------------------------------ MemShare and reasoning lengths
def test_reasoning_lengths_follow_the_benchmark_means():
    from traces.reasoning import MEAN_OUTPUT_TOKENS, ReasoningCoT, ReasoningParams

    x = ReasoningCoT(ReasoningParams(benchmark="aime2024")).sample(np.random.default_rng(1), 20000)
    assert abs(x.mean() / MEAN_OUTPUT_TOKENS["aime2024"] - 1) < 0.05 and x.max() <= 32768
    y = ReasoningCoT(ReasoningParams(benchmark="math500")).sample(np.random.default_rng(1), 20000)
    assert y.mean() < x.mean()


def _reasoning(kv: dict, num_blocks: int, rate: float = 2.0) -> dict:
    d = copy.deepcopy(scenario("kv manager", "paged"))
    d["workload"] = {"name": "synthetic", "num_requests": 80, "rate_rps": rate, "lengths": LENGTHS_REASONING}
    d["cluster"]["pools"][0]["kv"] = {**kv, "block_size": 16, "num_blocks": num_blocks}
    return d


def test_memshare_raises_throughput_when_memory_bound_only():
    paged = simulate(from_dict(_reasoning({"name": "paged"}, 1500))).summary
    share = simulate(from_dict(_reasoning({"name": "memshare"}, 1500))).summary
    assert share["throughput_output_tps"] > 1.08 * paged["throughput_output_tps"]
    assert share["mean_batch_size"] > paged["mean_batch_size"]  # more requests resident
    # plenty of memory: nothing to gain
    paged_big = simulate(from_dict(_reasoning({"name": "paged"}, 100000))).summary
    share_big = simulate(from_dict(_reasoning({"name": "memshare"}, 100000))).summary
    assert share_big["throughput_output_tps"] == pytest.approx(paged_big["throughput_output_tps"], rel=0.01)


def test_memshare_never_uses_more_than_distinct_blocks(monkeypatch):
    from sim.engine.replica import Replica
    from tests.cluster_run import run_cluster

    original = Replica._account

    def checked(self, plan, step_s):  # after every iteration: blocks used = distinct blocks held
        original(self, plan, step_s)
        kv = self.kv
        kv.check_invariants()
        held = sum(r.kv_blocks for r in self.running)
        logical = sum(r.kv_blocks + r.kv_shared_blocks for r in self.running)
        assert kv.num_used == held <= logical
        assert logical - held == kv.attention_saved_tokens(self.running) // kv.block_size

    monkeypatch.setattr(Replica, "_account", checked)
    for share in ((0.0, 0.0), (0.15, 0.40), (1.0, 1.0)):
        d = _reasoning({"name": "memshare", "redundant_share_min": share[0], "redundant_share_max": share[1]}, 1500)
        d["engine"]["fast_forward"] = False
        cluster = run_cluster(from_dict(d))
        kv = cluster.replicas[0].kv
        kv.check_invariants()
        assert kv.num_used == 0 and kv.num_mapped == 0
        if share[1] == 0.0:
            assert kv.num_mapped_total == 0
        else:
            assert kv.num_mapped_total > 0


def test_cacheopt_lending_shortens_queueing():
    """Running waiting requests inside others' unused reservations lowers mean queueing."""
    from tests.cluster_run import run_cluster

    out = {}
    for reuse in (True, False):
        d = copy.deepcopy(scenario("scheduler", "cacheopt"))
        d["cluster"]["pools"][0]["scheduler"]["reuse"] = reuse
        cluster = run_cluster(from_dict(d))
        queueing_s = cluster.recorder.requests_frame()["queueing_s"].mean()
        out[reuse] = (cluster.replicas[0].scheduler.num_borrowed, queueing_s)
    assert out[True][0] > 0 and out[False][0] == 0
    assert out[True][1] < out[False][1]


def test_cacheopt_preempts_by_the_cheaper_of_swap_and_recompute():
    """Priced as the paper says: 2 x swap copy time vs the prefill of prompt + generated tokens."""
    from types import SimpleNamespace

    s = _cacheopt_scheduler()
    kv = SimpleNamespace(blocks_for=lambda n: -(-n // 16), bytes_per_block=16 * 131072)
    req = SimpleNamespace(num_computed_tokens=4000, context_tokens=4000)
    slow_link = SimpleNamespace(kv=kv, cost_model=SimpleNamespace(swap_copy_time_s=lambda b, n: 1.0,
                                                                 prefill_time_s=lambda n: 0.3))
    fast_link = SimpleNamespace(kv=kv, cost_model=SimpleNamespace(swap_copy_time_s=lambda b, n: 0.01,
                                                                 prefill_time_s=lambda n: 0.3))
    assert s.preempt_mode(slow_link, req) == "recompute"
    assert s.preempt_mode(fast_link, req) == "swap"


def test_cacheopt_on_plain_paged_kv_is_a_config_error():
    d = _memory_bound({"name": "cacheopt"}, "paged", {"name": "oracle"})
    with pytest.raises(ConfigError, match=r"cluster.pools\[0\].kv.name"):
        simulate(from_dict(d))
