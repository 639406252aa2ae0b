"""JANUS's SLO-aware scaler for an attention pool that holds an expert pool.

Every ``period_s`` (JANUS: 15 min) it takes the request rate of the last period and picks
the fewest attention replicas ``n_attn`` such that, in JANUS's decode model
(``hardware/janus.py``) with the expert pool's ``n_moe`` GPUs::

    B* = rate x output_tokens x TPOT(B*)     (steady batch, bisection)
    TPOT(B*) <= tpot_slo_s  and  B* x context_tokens fits the attention replicas' KV

then adds attention replicas (they serve after their cold start) or drains the least loaded
ones to reach it, within ``min_replicas`` .. ``max_replicas``. The mean output and decode
context lengths are a profile of the workload (parameters; defaults: the Azure 2023
conversation trace's means), not the requests' true lengths. ``headroom`` scales the
measured rate (1: none).

Limits: ``n_moe`` is the expert pool's ``ep`` and stays fixed (the engine cannot change an
expert pool's expert-parallel degree at run time, so JANUS's joint (n_attn, n_moe) choice
and its replication of hot experts into spare slots happen in the analytic planner,
``experiments/moe_janus.py``); attention replicas must be one GPU each (``tp: 1``), as in
JANUS's data-parallel attention instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.janus import JanusModel, Workload, feasible
from sim.engine.seams import Action, AddReplica, BuildContext, ControllerBase, DrainReplica
from sim.engine.views import ClusterView
from sim.errors import ConfigError
from sim.registry import CONTROLLERS
from sim.schema import param


@dataclass
class JanusScalerParams:
    """The pools, the SLO, the workload profile and the scaling period."""

    attention_pool: str = param("attn", doc="the attention pool to scale")
    period_s: float = param(900.0, gt=0, doc="seconds between decisions (JANUS: 15 min)")
    tpot_slo_s: float = param(0.05, gt=0, doc="TPOT objective of the steady batch")
    output_tokens: float = param(211.0, gt=0, doc="profiled mean output tokens (Azure 2023 conversation trace)")
    context_tokens: float = param(1260.0, gt=0, doc="profiled mean decode context (prompt + half the output)")
    headroom: float = param(1.0, gt=0, doc="factor on the measured rate")
    min_replicas: int = param(1, ge=1, doc="fewest attention replicas")
    max_replicas: int = param(16, ge=1, doc="most attention replicas")


@CONTROLLERS.register("janus_scaler")
class JanusScaler(ControllerBase):
    """Every period: the fewest attention replicas whose steady batch meets the TPOT SLO."""

    Params = JanusScalerParams

    def __init__(self, params: JanusScalerParams, ctx: BuildContext):
        super().__init__(params, ctx)
        pools = {p.name: p for p in ctx.cluster.pools} if ctx.cluster is not None else {}
        where = ctx.where
        if params.attention_pool not in pools or pools[params.attention_pool].role != "attention":
            names = [n for n, p in pools.items() if p.role == "attention"]
            raise ConfigError(f"no attention pool {params.attention_pool!r} (attention pools: {', '.join(names)})",
                              f"{where}.attention_pool")
        attn = pools[params.attention_pool]
        hw = attn.hardware
        if hw.tp != 1 or hw.pp != 1:
            raise ConfigError("JANUS attention instances are single GPUs: use tp: 1, pp: 1", f"{where}.attention_pool")
        held = attn.holds
        ep = held.cost_model.expert_parallel
        self._build = dict(device=hw.device, model=hw.model, dtype=hw.weight_dtype, n_moe=ep.ep * len(held.replicas))
        self._shared_ep = ep
        self._models: dict[int, JanusModel] = {}
        self._last_arrived = 0
        self._last_s = 0.0
        self.decisions: list[tuple[float, float, int]] = []  # (time, rate, n_attn) for experiments

    def model(self, n_attn: int) -> JanusModel:
        """JANUS's decode model with ``n_attn`` attention GPUs (memoised; the expert side is shared)."""
        m = self._models.get(n_attn)
        if m is None:
            b = self._build
            m = self._models[n_attn] = JanusModel(b["device"], b["model"], n_attn, b["n_moe"], dtype=b["dtype"],
                                                  shared_ep=self._shared_ep)
        return m

    def needed(self, rate_rps: float) -> int:
        """Fewest attention replicas meeting the SLO at ``rate_rps`` (max_replicas if none does)."""
        p = self.params
        load = Workload(rate_rps * p.headroom, p.output_tokens, p.context_tokens)
        for n in range(p.min_replicas, p.max_replicas + 1):
            if feasible(self.model(n), load, p.tpot_slo_s)[0]:
                return n
        return p.max_replicas

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        p = self.params
        elapsed = now_s - self._last_s
        rate = (cluster.num_arrived - self._last_arrived) / elapsed if elapsed > 0 else 0.0
        self._last_arrived, self._last_s = cluster.num_arrived, now_s
        want = self.needed(rate)
        self.decisions.append((now_s, rate, want))
        replicas = cluster.pool(p.attention_pool).replicas
        live = [r for r in replicas if r.lifecycle in ("active", "starting")]
        if want > len(live):
            return [AddReplica(p.attention_pool) for _ in range(want - len(live))]
        active = sorted((r for r in live if r.lifecycle == "active"), key=lambda r: (r.num_outstanding, -r.id))
        drains = max(0, min(len(live) - want, len(active) - 1))
        return [DrainReplica(r.id) for r in active[:drains]]

    @classmethod
    def example_config(cls) -> dict:
        """A low -> high -> low rate on 1..4 attention replicas holding an EP4 expert pool, 10 s periods."""
        hw = {"device": "H100-SXM", "model": "Qwen3-30B-A3B"}
        return {
            "workload": {"name": "synthetic", "num_requests": 260,
                         "arrival": {"name": "phases", "rates_rps": [1.0, 10.0, 1.0],
                                     "durations_s": [30.0, 20.0, 30.0]},
                         "input_tokens": 64, "input_tokens_max": 512, "output_tokens": 1000,
                         "output_tokens_max": 2000},
            "cluster": {"router": "least_outstanding", "pools": [
                {"name": "attn", "role": "attention", "num_replicas": 1, "hardware": hw,
                 "cost_model": {"name": "analytic", "moe_layers": "remote"}, "holds": {"pool": "experts"},
                 "kv": {"name": "paged"}, "cold_start": {"source": "custom", "load_gbps": 20.0, "engine_start_s": 2.0}},
                {"name": "experts", "role": "expert", "hardware": hw, "kv": {"name": "paged"},
                 "cost_model": {"name": "analytic", "expert_parallel": {"ep": 4, "routing": "zipf"}}}],
                "controllers": [{"name": "janus_scaler", "period_s": 10.0, "tpot_slo_s": 0.01,
                                 "output_tokens": 1500.0, "context_tokens": 1040.0, "max_replicas": 4}]},
            "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
        }
