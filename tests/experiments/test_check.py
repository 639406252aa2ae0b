"""The CI gate: passes on its baseline, fails on a perturbed metric, --update rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.api import simulate
from sim.registry import HANDOFFS, KV_MANAGERS, ROUTERS, SCHEDULERS
from sim.tools.check import check, load_baseline
from sim.tools.cli import main
from sim.tools.gates import all_gates, run_gate
from sim.tools.output import write_run
from tests.conftest import make_config_dict
from tests.experiments.conftest import REPO

BASELINES = REPO / "experiments" / "baselines"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    out = tmp_path / "run"
    write_run(simulate(make_config_dict()), out)
    return out


def test_gate_passes_on_its_baseline_and_fails_on_a_moved_metric(run_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline.yaml"
    assert main(["check", str(run_dir), "--baseline", str(baseline), "--update"]) == 0
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 0
    assert "ok (" in capsys.readouterr().out

    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["ttft_p99_s"] *= 1.5
    summary["goodput_rps"] *= 1.001  # inside the default 1% band
    summary_path.write_text(json.dumps(summary))
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 out of band" in out and "1 moved within band" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("ttft_p99_s"))
    assert "+50.00%" in line and line.rstrip().endswith("OUT")
    assert main(["check", str(run_dir), "--baseline", str(baseline), "--rtol", "0.6"]) == 0


def test_per_metric_tolerance_and_update_keeps_bands(run_dir, tmp_path, capsys):
    baseline = tmp_path / "b.yaml"
    check(run_dir, baseline, update=True)
    data = load_baseline(baseline)
    data["tolerances"] = {"ttft_p99_s": {"rtol": 0.6}}
    data["metrics"]["ttft_p99_s"] *= 1.5
    baseline.write_text(yaml.safe_dump(data))
    assert check(run_dir, baseline) == 0
    data["metrics"]["num_completed"] += 10
    baseline.write_text(yaml.safe_dump(data))
    assert check(run_dir, baseline) == 1
    assert check(run_dir, baseline, update=True) == 0
    assert load_baseline(baseline)["tolerances"] == {"ttft_p99_s": {"rtol": 0.6}}
    assert check(run_dir, baseline) == 0


def test_gate_on_a_sweep_table(tmp_path, reference_24):
    out, _ = reference_24
    baseline = tmp_path / "sweep_baseline.json"
    assert check(out, baseline, update=True) == 0
    metrics = load_baseline(baseline)["metrics"]
    assert "p23.goodput_rps" in metrics and "p0.ttft_p99_s" in metrics
    assert check(out / "results.parquet", baseline) == 0


def test_missing_baseline_is_a_one_line_error(run_dir, tmp_path, capsys):
    assert main(["check", str(run_dir), "--baseline", str(tmp_path / "none.yaml")]) == 2
    assert "create it with --update" in capsys.readouterr().err


def test_every_registered_policy_has_a_gate_with_a_baseline():
    gates = all_gates()
    kinds = {g.kind.label for g in gates}
    assert {"router", "scheduler", "kv manager", "handoff"} <= kinds
    for registry in (ROUTERS, SCHEDULERS, KV_MANAGERS, HANDOFFS):
        assert {g.name for g in gates if g.kind.registry is registry} == set(registry.names())
    missing = [g.id for g in gates if not g.baseline(BASELINES).is_file()]
    assert not missing, f"write first baselines (see their README): servesim gate {' '.join(missing)} --update"


def test_every_baseline_file_belongs_to_a_gate():
    ids = {g.id for g in all_gates()}
    stray = sorted(p.name for p in BASELINES.iterdir() if p.name != "README.md" and p.stem not in ids)
    assert not stray, f"baselines of no registered policy (renamed or removed?): {stray}"


@pytest.mark.parametrize("gate", all_gates(), ids=lambda g: g.id)
def test_committed_baselines_hold(gate, tmp_path, capsys):
    code = run_gate(gate, tmp_path, BASELINES)
    assert code == 0, capsys.readouterr().out
