"""The reactive autoscaler: it follows a burst, TTFT recovers after the cold start, and it
costs fewer GPU-hours than a cluster provisioned for the peak at a comparable SLO attainment.

Scenario (``policies.controllers.autoscaler.burst_config``, seed 0): Poisson arrivals at
3 -> 18 -> 3 requests/s for 30 / 90 / 90 s on the constant cost model (one replica serves
about 4 requests/s), 5 s cold starts. Measured on this scenario (asserted below with margin):

    run                         GPU-hours   SLO attainment   p90 TTFT, arrivals in burst [30,45) s / [90,120) s
    autoscaled 2..6 replicas    0.222       0.865            3.34 s / 0.118 s
    fixed at 6 (the peak)       0.327       1.000            0.096 s / 0.115 s
    fixed at 2 (the base)       0.151       0.062            12.6 s / 110.8 s
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from policies.controllers.autoscaler import ReactiveAutoscaler, ReactiveAutoscalerParams, burst_config
from sim import simulate
from sim.config import from_dict
from sim.engine.seams import AddReplica, BuildContext, DrainReplica
from sim.errors import ConfigError
from sim.registry import CONTROLLERS

BURST_START_S, BURST_END_S = 30.0, 120.0


def p90_ttft(df: pd.DataFrame, lo: float, hi: float) -> float:
    rows = df[(df["arrival_s"] >= lo) & (df["arrival_s"] < hi)]
    return float(rows["ttft_s"].quantile(0.9))


@pytest.fixture(scope="module")
def runs():
    return {"auto": simulate(burst_config(autoscale=True)),
            "peak": simulate(burst_config(autoscale=False, num_replicas=6)),
            "base": simulate(burst_config(autoscale=False, num_replicas=2))}


def test_autoscaler_scales_up_during_the_burst_and_back_down_after(runs):
    acts = runs["auto"].actions
    assert acts["applied"].all() and set(acts["controller"]) == {"reactive_autoscaler"}
    adds, drains = acts[acts["kind"] == "add_replica"], acts[acts["kind"] == "drain_replica"]
    assert len(adds) == 4 and runs["auto"].summary["num_replicas_peak"] == 6
    assert BURST_START_S < adds["time_s"].min() < BURST_START_S + 5.0  # reacts within seconds
    assert adds["time_s"].max() < BURST_START_S + 15.0
    assert len(drains) == 4 and drains["time_s"].min() > BURST_END_S  # back to its minimum of 2 after the burst


def test_ttft_recovers_after_the_cold_start(runs):
    df = runs["auto"].requests
    first = p90_ttft(df, BURST_START_S, BURST_START_S + 15.0)   # before the added replicas serve
    last = p90_ttft(df, BURST_END_S - 30.0, BURST_END_S)         # the last third of the burst
    assert first > 2.0                       # measured 3.34 s
    assert last < 0.25                       # measured 0.118 s, the SLO is 1 s
    assert last < first / 10
    assert last < 1.5 * p90_ttft(runs["peak"].requests, BURST_END_S - 30.0, BURST_END_S)  # as good as the peak
    assert p90_ttft(runs["base"].requests, BURST_END_S - 30.0, BURST_END_S) > 50.0       # without scaling: no


def test_fewer_gpu_hours_than_the_peak_at_a_comparable_slo_attainment(runs):
    auto, peak, base = (runs[k].summary for k in ("auto", "peak", "base"))
    # GPU-hours: measured 0.222 vs 0.327 for the peak-provisioned cluster (68%)
    assert auto["gpu_hours"] < 0.75 * peak["gpu_hours"]
    assert auto["gpu_hours"] > base["gpu_hours"]
    # comparable: within 0.15 of the peak-provisioned cluster (0.865 vs 1.000) and far above the
    # base-provisioned one (0.062); the TTFT part alone is within 0.05 (0.973 vs 1.000)
    assert auto["slo_attainment"] >= peak["slo_attainment"] - 0.15
    assert auto["slo_attainment_ttft"] >= peak["slo_attainment_ttft"] - 0.05
    assert auto["slo_attainment"] > 10 * base["slo_attainment"]
    assert auto["num_completed"] == auto["num_requests"]


def test_autoscaled_runs_repeat():
    a, b = simulate(burst_config()), simulate(burst_config())
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.actions, b.actions)


def test_example_config_is_the_gate_scenario():
    from sim.tools.gates import all_gates

    assert CONTROLLERS.get("reactive_autoscaler") is ReactiveAutoscaler
    assert "controller_reactive_autoscaler" in {g.id for g in all_gates()}
    baseline = Path(__file__).parent.parent / "experiments" / "baselines" / "controller_reactive_autoscaler.yaml"
    assert yaml.safe_load(baseline.read_text())["metrics"]["num_completed"] > 0
    assert from_dict(ReactiveAutoscaler.example_config()).cluster.controllers[0].name == "reactive_autoscaler"


def test_bad_parameters_name_their_path():
    with pytest.raises(ConfigError, match="min_replicas"):
        from_dict({**burst_config(), "cluster": {**burst_config()["cluster"], "controllers": [
            {"name": "reactive_autoscaler", "min_replicas": 5, "max_replicas": 2}]}})
    data = burst_config()
    data["cluster"]["controllers"][0]["pools"] = ["mian"]
    with pytest.raises(ConfigError, match=r"cluster.controllers\[0\].pools\[0\]: unknown pool 'mian'"):
        simulate(data)


# ---------------------------------------------------------------------------- decisions on fake views

@dataclass
class FakeReplica:
    id: int
    lifecycle: str = "active"
    waits: list[float] = field(default_factory=list)
    kv_usage: float = 0.0
    num_outstanding: int = 0

    @property
    def waiting_delays_s(self) -> list[float]:
        return self.waits

    @property
    def num_waiting(self) -> int:
        return len(self.waits)

    @property
    def kv(self):
        return SimpleNamespace(usage=self.kv_usage)


def decide(replicas: list[FakeReplica], now: float, scaler: ReactiveAutoscaler | None = None, **params):
    scaler = scaler or ReactiveAutoscaler(ReactiveAutoscalerParams(**params), BuildContext(rng=None))
    return scaler, scaler._act_on_pool("main", replicas, now)


def test_replicas_still_starting_count_toward_capacity():
    busy = [FakeReplica(0, waits=[30.0]), FakeReplica(1, waits=[25.0])]  # far past every threshold
    _, acts = decide(busy, 10.0)
    assert acts == [AddReplica("main"), AddReplica("main")]              # doubles: 2 -> 4
    _, acts = decide(busy + [FakeReplica(2, "starting"), FakeReplica(3, "starting")], 12.0)
    assert acts == []                                                     # no storm while they start
    _, acts = decide(busy + [FakeReplica(2, "starting")], 12.0)
    assert acts == [AddReplica("main")]
    _, acts = decide(busy, 10.0, max_replicas=3)
    assert acts == [AddReplica("main")]                                   # capped at max_replicas


def test_mild_pressure_adds_one_and_kv_alone_can_trigger():
    _, acts = decide([FakeReplica(0, waits=[1.1]), FakeReplica(1), FakeReplica(2), FakeReplica(3)], 5.0)
    assert acts == [AddReplica("main")]
    _, acts = decide([FakeReplica(0, kv_usage=0.95), FakeReplica(1, kv_usage=0.95)], 5.0)
    assert acts == [AddReplica("main")]
    _, acts = decide([FakeReplica(0, kv_usage=0.5, waits=[0.2])], 5.0)
    assert acts == []


def test_drains_the_least_loaded_replica_after_it_has_been_underused_long_enough():
    reps = [FakeReplica(0, kv_usage=0.5, num_outstanding=9), FakeReplica(1, kv_usage=0.05, num_outstanding=2),
            FakeReplica(2, kv_usage=0.0)]
    scaler, acts = decide(reps, 0.0, scale_down_idle_s=30.0, scale_down_cooldown_s=0.0)
    assert acts == []
    _, acts = decide(reps, 29.0, scaler)
    assert acts == []
    _, acts = decide(reps, 30.0, scaler)
    assert acts == [DrainReplica(2)]                                      # idle beats lightly used
    _, acts = decide(reps[:2] + [FakeReplica(2, "draining")], 31.0, scaler)
    assert acts == [DrainReplica(1)]
    _, acts = decide([reps[0], FakeReplica(3, "starting")], 80.0, scaler)
    assert acts == []                                                     # never while one is starting


def test_never_below_min_replicas():
    _, acts = decide([FakeReplica(0)], 0.0, min_replicas=3)
    assert acts == [AddReplica("main"), AddReplica("main")]
    idle = [FakeReplica(0), FakeReplica(1)]
    scaler, _ = decide(idle, 0.0, min_replicas=2, scale_down_idle_s=0.0, scale_down_cooldown_s=0.0)
    assert decide(idle, 100.0, scaler)[1] == []
