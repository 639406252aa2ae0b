"""`servesim run` says which defaults a config left to the simulator."""

from __future__ import annotations

from sim.config import from_dict
from sim.tools.cli import main
from sim.tools.defaults_note import applied_defaults


def test_a_minimal_config_announces_its_hardware_scheduler_and_slo():
    raw = {"workload": {"name": "synthetic", "num_requests": 5, "rate_rps": 1.0}}
    notes = applied_defaults(raw, from_dict(raw))
    assert "cluster.pools[0].hardware: device H100-SXM, model Llama-3-8B by default" in notes
    assert "cluster.pools[0].scheduler: vllm_v1 by default" in notes
    assert any(n.startswith("slo: none") for n in notes)


def test_a_full_config_announces_nothing():
    raw = {"workload": {"name": "synthetic", "num_requests": 5, "rate_rps": 1.0},
           "cluster": {"router": "round_robin", "pools": [{"num_replicas": 2, "scheduler": "sarathi",
                                                           "hardware": {"device": "A100-80GB", "model": "Llama-2-7B"}}]},
           "slo": {"ttft_s": 1.0}}
    assert applied_defaults(raw, from_dict(raw)) == []


def test_run_prints_the_notes(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("workload: {name: synthetic, num_requests: 20, rate_rps: 5}\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 0
    assert "default: cluster.pools[0].hardware: device H100-SXM, model Llama-3-8B by default" in capsys.readouterr().out
