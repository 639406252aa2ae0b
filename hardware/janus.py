"""JANUS's performance model and SLO-aware scaler (attention and experts on separate GPUs).

JANUS (2026) serves a MoE model with ``n_attn`` attention GPUs (attention, dense layers and
KV; data-parallel) and ``n_moe`` expert GPUs (the routed experts, spare slots holding extra
replicas of the hottest experts). Per decode step of batch B::

    TPOT(B) = sum over layers of  T_attn(b = B / n_attn)  +  T_moe(B)  +  T_comm(B)
      T_attn  analytic model of one attention GPU with b sequences of context S
      T_moe   slowest expert GPU (activated experts' weights, its tokens): the EP table of
              hardware/moe.py with JANUS's activation scheduler (``least_loaded``)
      T_comm  two-phase dispatch + combine of the busiest expert GPU's token-expert pairs
    steady batch  B* = lambda x output_tokens x TPOT(B*)        (bisection; Little's law)
    feasible      TPOT(B*) <= SLO  and  B* x S x KV bytes fits the attention GPUs

The scaler picks, every ``interval_s`` (15 min), the feasible (n_attn, n_moe) with the fewest
GPUs for the window's peak rate. ``MonolithicModel`` is the baseline on N GPUs that hold
attention and experts together (SGLang-style DP attention + EP over N), with the same steady
batch and SLO test. Decode only: prefill is left out of both (JANUS's model is a decode model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from hardware.analytic import AnalyticCostModel, AnalyticParams
from hardware.devices import GIB
from hardware.models import dtype_bytes
from hardware.moe import ExpertParallel, ExpertParallelParams


@dataclass
class Workload:
    """Steady-state decode load: request rate, mean output tokens and mean context."""

    rate_rps: float
    output_tokens: float
    context_tokens: float


def steady_batch(tpot: Any, rate_rps: float, output_tokens: float, max_batch: float = 1e6) -> float:
    """Smallest B with B >= rate x output x TPOT(B) (bisection); ``inf`` if none below max_batch."""
    demand = rate_rps * output_tokens
    if demand <= 0:
        return 0.0
    lo, hi = 1.0, 2.0
    while hi - demand * tpot(hi) < 0:
        lo, hi = hi, hi * 2
        if hi > max_batch:
            return math.inf
    if lo - demand * tpot(lo) >= 0:
        return lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if mid - demand * tpot(mid) >= 0:
            hi = mid
        else:
            lo = mid
    return hi


def _hw(device: str, model: str, dtype: str) -> SimpleNamespace:
    return SimpleNamespace(device=device, model=model, tp=1, pp=1, weight_dtype=dtype, kv_dtype=dtype)


class JanusModel:
    """TPOT and memory of ``n_attn`` attention GPUs + ``n_moe`` expert GPUs (see module doc)."""

    def __init__(self, device: str, model: str, n_attn: int, n_moe: int, dtype: str = "fp8",
                 routing: dict | None = None, max_spare: int = 8, gpu_memory_utilization: float = 0.9,
                 replica_choice: str = "least_loaded", spare_slots: int | None = None,
                 shared_ep: ExpertParallel | None = None):
        self.cm = cm = AnalyticCostModel(AnalyticParams(), _hw(device, model, dtype))
        m, d = cm.model, cm.device
        self.n_attn, self.n_moe = n_attn, n_moe
        per_expert = m.num_moe_layers * m.expert_params * dtype_bytes(dtype)  # one expert, all layers
        routed = m.num_experts * per_expert
        self.attn_weight_bytes = m.weight_bytes(dtype) - routed
        usable = d.memory_bytes * gpu_memory_utilization - cm.activation_reserve_bytes()
        self.slots_per_gpu = int(usable // per_expert)
        base = m.num_experts // n_moe if m.num_experts % n_moe == 0 else 0
        self.fits = base > 0 and self.slots_per_gpu >= base and usable > self.attn_weight_bytes
        spare = max(0, min(max_spare, self.slots_per_gpu - base)) if self.fits else 0
        if spare_slots is not None:
            spare = spare_slots
        self.kv_capacity_tokens = max(0.0, (usable - self.attn_weight_bytes) * n_attn / cm.kv_bytes_per_token)
        if shared_ep is not None:  # the expert side does not depend on n_attn: reuse its table
            self.ep = shared_ep
        elif self.fits:
            p = ExpertParallelParams(ep=n_moe, spare_slots=spare, replica_choice=replica_choice, a2a="two_phase",
                                     **(routing or {}))
            self.ep = ExpertParallel(p, cm)

    def attention_s(self, b: float, context: float) -> float:
        """All layers' attention-side seconds of one attention GPU with ``b`` sequences."""
        cm, ep = self.cm, self.ep
        t = math.hypot(b * cm._dense_c, cm._dense_w + b * cm._dense_a)
        t += math.hypot(b * ep.fixed_c, ep.fixed_w + b * ep.fixed_a)
        ctx = b * context
        t += math.hypot(ctx * cm._attn_dc, ctx * cm._kv_read + b * cm._kv_write)
        t += cm._lo_decode + math.hypot(b * cm._head_c, cm._head_w)
        return t + cm._o_it + b * cm._o_seq

    def tpot_s(self, batch: float, context: float) -> float:
        """Seconds per decode step of ``batch`` sequences in all."""
        ep = self.ep
        routed = sum(ep._interp(ep._time, batch, k) for k in range(len(ep._time))) / len(ep._time)
        pairs = sum(ep._interp(ep._tmax, batch, k) for k in range(len(ep._tmax))) / len(ep._tmax)
        comm = ep.one_way_s(pairs, ep.params.dispatch_bytes) + ep.one_way_s(pairs, ep.params.combine_bytes)
        moe = (routed + comm) * ep.num_moe_layers
        return self.attention_s(batch / self.n_attn, context) + moe

    @property
    def num_gpus(self) -> int:
        return self.n_attn + self.n_moe


class MonolithicModel:
    """N GPUs holding attention and experts together: DP attention + EP over N (SGLang-style)."""

    def __init__(self, device: str, model: str, n: int, dtype: str = "fp8", routing: dict | None = None,
                 gpu_memory_utilization: float = 0.9):
        p = ExpertParallelParams(ep=n, a2a="normal", placement="contiguous", **(routing or {}))
        self.n = n
        try:
            self.cm = AnalyticCostModel(AnalyticParams(expert_parallel=p), _hw(device, model, dtype))
            free = (self.cm.device.memory_bytes * gpu_memory_utilization - self.cm.weight_bytes_per_gpu
                    - self.cm.activation_reserve_bytes())
            self.fits = free > 0
            self.kv_capacity_tokens = max(0.0, free * n / self.cm.kv_bytes_per_token)
        except Exception:  # ep does not divide the experts
            self.fits = False
            self.kv_capacity_tokens = 0.0

    def tpot_s(self, batch: float, context: float) -> float:
        b = max(1, int(round(batch)))
        return sum(self.cm.step_time_s((), b, b, int(b * context) + k) for k in range(8)) / 8

    @property
    def num_gpus(self) -> int:
        return self.n


def feasible(system: Any, load: Workload, slo_s: float) -> tuple[bool, float, float]:
    """(meets the SLO with KV room, steady batch B*, TPOT(B*)) of ``system`` under ``load``."""
    if not system.fits:
        return False, math.inf, math.inf
    b = steady_batch(lambda x: system.tpot_s(x, load.context_tokens), load.rate_rps, load.output_tokens)
    if not math.isfinite(b):
        return False, b, math.inf
    t = system.tpot_s(b, load.context_tokens)
    kv_ok = b * load.context_tokens <= system.kv_capacity_tokens
    return t <= slo_s and kv_ok, b, t


def max_rate(system: Any, load: Workload, slo_s: float, hi: float = 1e5) -> float:
    """Highest request rate ``system`` serves within the SLO (bisection over the rate)."""
    if not system.fits:
        return 0.0
    lo = 0.0
    ok = lambda r: feasible(system, Workload(r, load.output_tokens, load.context_tokens), slo_s)[0]  # noqa: E731
    if not ok(1e-3):
        return 0.0
    hi_r = 1.0
    while ok(hi_r) and hi_r < hi:
        lo, hi_r = hi_r, hi_r * 2
    for _ in range(30):
        mid = 0.5 * (lo + hi_r)
        if ok(mid):
            lo = mid
        else:
            hi_r = mid
    return lo


def memory_gib(system: Any) -> float:
    """KV capacity in GiB-equivalent tokens (for tables)."""
    return system.kv_capacity_tokens * system.cm.kv_bytes_per_token / GIB
