"""The CI gate: passes on its baseline, fails on a perturbed metric, --update rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.api import simulate
from sim.registry import HANDOFFS, ROUTERS, SCHEDULERS
from sim.tools.check import check, load_baseline
from sim.tools.cli import main
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


@pytest.mark.parametrize("kind, registry", [("scheduler", SCHEDULERS), ("router", ROUTERS), ("handoff", HANDOFFS)])
def test_every_registered_policy_has_a_gated_scenario(kind, registry):
    missing = [n for n in registry.names() if not (BASELINES / f"{kind}_{n}" / "baseline.yaml").is_file()]
    assert not missing, f"add experiments/baselines/{kind}_<name>/ (see its README) for: {', '.join(missing)}"


@pytest.mark.parametrize("scenario", sorted(p.name for p in BASELINES.iterdir() if p.is_dir()))
def test_committed_baselines_hold(scenario, tmp_path, capsys):
    folder = BASELINES / scenario
    write_run(simulate(folder / "config.yaml"), tmp_path / scenario)
    code = check(tmp_path / scenario, folder / "baseline.yaml")
    assert code == 0, capsys.readouterr().out
