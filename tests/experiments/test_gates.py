"""Gates generated from the policies: kind defaults, example_config overrides, the `servesim gate` CLI."""

from __future__ import annotations

import pytest
import yaml

from policies.schedulers.sarathi import SarathiScheduler
from policies.schedulers.splitfuse import SplitFuseScheduler
from sim.config import from_dict
from sim.errors import ConfigError, ServesimError
from sim.registry import SCHEDULERS
from sim.tools import gates
from sim.tools.cli import main
from tests.plugins.most_free_kv import NAME as PLUGIN_ROUTER


def test_apply_sets_dotted_paths_appends_and_widens_names():
    base = gates.scheduler_default("vllm_v1")
    out = gates.apply(base, {"workload.num_requests": 10, "cluster.router.x": 1,
                             "cluster.pools[1]": gates.pool("other", 2), "slo": {"e2e_s": 3.0}})
    assert out["workload"]["num_requests"] == 10 and base["workload"]["num_requests"] == 400
    assert out["cluster"]["router"] == {"name": "round_robin", "x": 1}
    assert [p["name"] for p in out["cluster"]["pools"]] == ["main", "other"]
    assert out["slo"] == {"e2e_s": 3.0}
    with pytest.raises(ConfigError, match="out of range"):
        gates.apply(base, {"cluster.pools[3].name": "x"})


def test_scenario_is_the_kind_default_without_example_config():
    assert gates.scenario("scheduler", "sarathi") == gates.scheduler_default("sarathi")
    assert gates.scenario("router", PLUGIN_ROUTER) == gates.router_default(PLUGIN_ROUTER)
    from_dict(gates.scenario("router", PLUGIN_ROUTER))


def test_example_config_is_not_inherited(monkeypatch):
    monkeypatch.setattr(SarathiScheduler, "example_config", classmethod(lambda cls: {"workload.num_requests": 5}),
                        raising=False)
    assert gates.scenario("scheduler", "sarathi")["workload"]["num_requests"] == 5
    assert "example_config" not in vars(SplitFuseScheduler)
    assert gates.scenario("scheduler", "splitfuse") == gates.scheduler_default("splitfuse")


def test_a_scenario_that_does_not_use_its_policy_is_an_error(monkeypatch):
    monkeypatch.setattr(SarathiScheduler, "example_config",
                        classmethod(lambda cls: {"cluster.pools[0].scheduler": {"name": "vllm"}}), raising=False)
    with pytest.raises(ConfigError, match="does not use it"):
        gates.scenario("scheduler", "sarathi")


def test_a_broken_scenario_fails_its_gate_only(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(SarathiScheduler, "example_config",
                        classmethod(lambda cls: {"cluster.pools[0].scheduler.chunk_sise": 1}), raising=False)
    assert gates.run_gates(["sarathi", "scheduler_vllm"], tmp_path) == 1
    out = capsys.readouterr().out
    assert "servesim gate scheduler_sarathi: FAIL: " in out and "chunk_sise" in out
    assert "scheduler_vllm.yaml: ok" in out and out.rstrip().endswith("2 gates, 1 failed: scheduler_sarathi")


def test_other_kinds_are_gated_only_with_example_config(monkeypatch):
    ids = {g.id for g in gates.all_gates()}
    assert "cost_model_constant" not in ids and "workload_synthetic" not in ids
    cls = gates.kind("cost model").registry.get("constant")
    monkeypatch.setattr(cls, "example_config", classmethod(lambda c: {}), raising=False)
    assert "cost_model_constant" in {g.id for g in gates.all_gates()}


def test_select_by_id_or_policy_name():
    assert [g.id for g in gates.select(["pecsched"])] == ["handoff_pecsched", "router_pecsched", "scheduler_pecsched"]
    assert [g.id for g in gates.select(["scheduler_vllm"])] == ["scheduler_vllm"]
    with pytest.raises(ServesimError, match="did you mean 'sarathi'"):
        gates.select(["sarathy"])


def test_missing_baseline_fails_with_how_to_create_it_then_update_writes_it(tmp_path, capsys):
    args = ["gate", "scheduler_vllm", "--baselines", str(tmp_path / "b"), "--out", str(tmp_path / "runs")]
    (tmp_path / "b").mkdir()
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"servesim gate scheduler_vllm: FAIL: no baseline {tmp_path}/b/scheduler_vllm.yaml "
                      "(create it with: servesim gate scheduler_vllm --update)")
    assert main([*args, "--update"]) == 0
    baseline = tmp_path / "b" / "scheduler_vllm.yaml"
    assert baseline.read_text().startswith("# scheduler_vllm gate baseline: rewrite with `servesim gate")
    assert main(args) == 0
    assert "all passed" in capsys.readouterr().out
    scenario = yaml.safe_load((tmp_path / "runs" / "scheduler_vllm" / "scenario.yaml").read_text())
    assert scenario == gates.scenario("scheduler", "vllm")


def test_list_and_print(capsys):
    assert main(["gate", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(gates.all_gates()) >= len(SCHEDULERS.names())
    assert any(ln.startswith("kv_paged ") for ln in lines) and not any("NO BASELINE" in ln for ln in lines)
    assert main(["gate", "strict_priority", "--print"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# CI gate scenario scheduler_strict_priority")
    assert yaml.safe_load(text) == gates.scenario("scheduler", "strict_priority")
