"""``servesim report`` on the smoke sweep and on one run: the files, the sections, the figures open."""

from __future__ import annotations

import matplotlib.image as mpimg

from sim.api import simulate
from sim.tools.cli import main
from sim.tools.output import write_run
from tests.conftest import make_config_dict
from tests.experiments.conftest import REPO


def _figures_open(folder, names):
    for name in names:
        image = mpimg.imread(folder / name)
        assert image.shape[0] > 100 and image.shape[1] > 100


def test_report_of_the_smoke_sweep(tmp_path):
    sweep_out, report = tmp_path / "smoke", tmp_path / "report"
    assert main(["sweep", str(REPO / "experiments/sweeps/smoke.yaml"), "--out", str(sweep_out), "--quiet"]) == 0
    assert main(["report", str(sweep_out), "--out", str(report)]) == 0
    md = (report / "report.md").read_text()
    for head in ("## Configuration", "## Points", "## Figures"):
        assert head in md
    assert "Llama-3-8B on 4x H100-SXM" in md and "| point | rate_scale | scheduler |" in md
    _figures_open(report, ["latency.png", "goodput.png", "cdf.png"])
    page = (report / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page and "<img src='latency.png'" in page


def test_report_of_a_run_with_steps(tmp_path):
    run, report = tmp_path / "run", tmp_path / "report"
    write_run(simulate(make_config_dict(num_replicas=2, output={"record_steps": True})), run)
    assert main(["report", str(run), "--out", str(report)]) == 0
    md = (report / "report.md").read_text()
    assert "## Summary" in md and "TTFT mean / p50 / p99" in md
    _figures_open(report, ["cdf.png", "timeseries.png"])


def test_report_of_something_else_says_what_it_needs(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "neither a run folder" in capsys.readouterr().err
