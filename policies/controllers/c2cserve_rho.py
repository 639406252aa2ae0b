"""C2CServe's per-slice HybridGEMM split and chunk size, with online SLO feedback [abstract].

Every ``period_s``, for each weight-streaming slice (``serving.stream``)::

    n        = busy slices on its chip (they share its one C2C link)
    share    = BW_c2c / n                        (contention_aware: false -> BW_c2c, as if alone)
    rho_bal  = share / (share + BW_hbm_slice)    both legs of max(rho W / share, (1 - rho) W / hbm) equal
    feedback g (per slice, in (0, 1], starts at 1):  measured TPOT of its decoding requests
               > high x SLO, or its oldest wait > high x TTFT SLO -> g *= 1 - step (more HBM);
               TPOT < low x SLO -> g = min(1, g x (1 + step))
    rho      = g x rho_bal                       (the engine clamps it to what HBM holds)
    chunk    = the longest prefill chunk whose compute fits in high x TPOT SLO beside the
               iteration's weight stream (rho W / share), in [min_chunk, max_chunk]: an
               iteration as long as the TPOT SLO allows streams its weights the fewest times
               per prompt, so each slice's C2C demand (rho W per iteration) stays bounded

A lower rho copies more of the model into HBM in the background (over the same link); a
higher one frees HBM. ``contention_aware: false`` is the ablation of the paper's claim that
attainment falls when rho ignores contention: the split is computed for a lone slice and no
feedback corrects it. Thresholds, step and period are not public: parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hardware import calibration_constants as cc
from hardware.devices import get_device
from hardware.models import get_model
from hardware.weight_tiers import balanced_rho, weight_bytes_read
from sim.engine.seams import Action, BuildContext, ControllerBase, SetStreaming
from sim.engine.views import ClusterView, ReplicaView
from sim.errors import ConfigError
from sim.registry import CONTROLLERS
from sim.schema import param


@dataclass
class C2CServeRhoParams:
    """SLOs, feedback and chunk bounds of the rho controller."""

    pools: list[str] = param(default_factory=list, doc="pools to control (empty: every streaming pool)")
    period_s: float = param(0.5, gt=0, doc="seconds between decisions")
    ttft_slo_s: float = param(2.0, gt=0, doc="TTFT SLO the feedback defends")
    tpot_slo_s: float = param(0.1, gt=0, doc="TPOT SLO the feedback defends")
    high: float = param(0.8, gt=0, doc="lower rho when TPOT (or wait) passes high x SLO")
    low: float = param(0.4, gt=0, doc="raise rho (free HBM) when TPOT is below low x SLO")
    step: float = param(0.25, gt=0, lt=1, doc="multiplicative feedback step")
    contention_aware: bool = param(True, doc="split by the chip's current C2C share, with feedback "
                                             "(false: as if the slice had the link alone, no feedback)")
    adapt_chunk: bool = param(True, doc="set each slice's chunk (max_num_batched_tokens)")
    min_chunk: int = param(512, ge=1, doc="smallest chunk, tokens (Sarathi-Serve's budget)")
    max_chunk: int = param(4096, ge=1, doc="largest chunk, tokens")

    def validate(self) -> None:
        if self.low >= self.high:
            raise ConfigError(f"must be below high ({self.high})", "low")
        if self.min_chunk > self.max_chunk:
            raise ConfigError(f"must be <= max_chunk ({self.max_chunk})", "min_chunk")


def measured_tpot_s(rep: ReplicaView) -> float | None:
    """Mean TPOT so far of the requests decoding on ``rep`` (None: none has two tokens yet)."""
    total, n = 0.0, 0
    for r in rep.running:
        if r.num_output_tokens >= 2 and r.first_token_s is not None:
            total += (r.last_token_s - r.first_token_s) / (r.num_output_tokens - 1)
            n += 1
    return total / n if n else None


@CONTROLLERS.register("c2cserve_rho")
class C2CServeRhoController(ControllerBase):
    """rho and chunk per streaming slice from its chip's C2C share and its SLO feedback."""

    Params = C2CServeRhoParams

    def __init__(self, params: C2CServeRhoParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._gain: dict[int, float] = {}
        self._set: dict[int, tuple[float, int | None]] = {}
        self._catalog: dict[tuple[str, str], Any] = {}  # (kind, name) -> catalog entry, looked up once

    @classmethod
    def example_config(cls) -> dict:
        """C2CServe's placement and rho controller on 4 GH200 slices streaming 4 models."""
        from policies.routers.c2cserve import C2CServeRouter

        data = C2CServeRouter.example_config()
        data["cluster.controllers"] = [{"name": "c2cserve_rho"}]
        data["cluster.pools[0].num_replicas"] = 4
        data["cluster.pools[0].kv.num_blocks"] = 4000
        return data

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        p = self.params
        reps = [r for pool in cluster.pools if not p.pools or pool.name in p.pools
                for r in pool.active_replicas if r.chip is not None and r.streams_weights]
        busy: dict[Any, int] = {}
        for r in reps:
            if r.num_running or r.num_waiting:
                busy[r.chip] = busy.get(r.chip, 0) + 1
        actions: list[Action] = []
        for r in reps:
            dev = self._catalog.get(("device", r.device))
            if dev is None:  # the catalog does not change during a run
                dev = self._catalog["device", r.device] = get_device(r.device)
            link = dev.c2c_measured_gbps if dev.is_superchip else dev.host_link_measured_gbps
            n = max(1, busy.get(r.chip, 0) + (0 if (r.num_running or r.num_waiting) else 1))
            share = link / n if p.contention_aware else link
            hbm = dev.hbm_gbps * cc.MEMORY_EFFICIENCY
            g = self._feedback(r) if p.contention_aware else 1.0
            rho = min(1.0, max(0.0, g * balanced_rho(share, hbm)))
            chunk = self._chunk(r, dev, rho, share) if p.adapt_chunk else None
            last = self._set.get(r.id)
            if last is None or abs(last[0] - rho) > 0.01 or last[1] != chunk:
                self._set[r.id] = (rho, chunk)
                actions.append(SetStreaming(r.id, rho, chunk))
        return actions

    def _feedback(self, r: ReplicaView) -> float:
        p = self.params
        g = self._gain.get(r.id, 1.0)
        tpot = measured_tpot_s(r)
        if (tpot is not None and tpot > p.high * p.tpot_slo_s) or r.oldest_wait_s > p.high * p.ttft_slo_s:
            g *= 1.0 - p.step
        elif tpot is not None and tpot < p.low * p.tpot_slo_s:
            g = min(1.0, g * (1.0 + p.step))
        g = max(g, 1e-3)
        self._gain[r.id] = g
        return g

    def _chunk(self, r: ReplicaView, dev: Any, rho: float, share_gbps: float) -> int:
        p = self.params
        name = (r.serving_model or r.model).partition("@")[0]
        model = self._catalog.get(("model", name))
        if model is None:
            model = self._catalog["model", name] = get_model(name)
        stream_s = rho * weight_bytes_read(model, "bf16", 1) / (share_gbps * 1e9)
        tokens_per_s = dev.bf16_tflops * 1e12 * cc.GEMM_COMPUTE_EFFICIENCY / (2.0 * model.num_active_params)
        chunk = int(max(0.0, p.high * p.tpot_slo_s - stream_s) * tokens_per_s) // 64 * 64
        return max(p.min_chunk, min(p.max_chunk, chunk))
