"""Issue 19, defects 7 and 8: CI gates never pass vacuously; sweeps own their results folder."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
import yaml

from sim.api import simulate
from sim.tools.check import CheckError, check
from sim.tools.cli import main
from sim.tools.output import write_run
from sim.tools.sweep import LOCK, SweepError, run_sweep
from tests.conftest import make_config_dict
from tests.experiments.conftest import small_base


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "run"
    write_run(simulate(make_config_dict(workload={"name": "synthetic", "num_requests": 20, "rate_rps": 20.0,
                                                  "input_tokens": 16, "output_tokens": 4})), out)
    return out


# ---------------------------------------------------------------------------- 7: check

@pytest.mark.parametrize("text", ["metrics: {}\n", "rtol: 0.01\nmetrics: {}\n"])
def test_an_empty_baseline_fails(run_dir, tmp_path, capsys, text):
    baseline = tmp_path / "b.yaml"
    baseline.write_text(text)
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'metrics:' is empty" in err


def test_update_fills_an_empty_baseline(run_dir, tmp_path):
    baseline = tmp_path / "b.yaml"
    baseline.write_text("metrics: {}\n")
    assert check(run_dir, baseline, update=True, out=open(os.devnull, "w")) == 0
    assert check(run_dir, baseline, out=open(os.devnull, "w")) == 0


@pytest.mark.parametrize("text, message", [
    ("metrics: {goodput_rps: fast}\n", "metrics.goodput_rps: expected a number or null, got 'fast'"),
    ("metrics: {goodput_rps: 1.0}\nrtol: wide\n", "rtol: expected a number"),
    ("metrics: {goodput_rps: 1.0}\ntolerances: {goodput_rps: {rtol: x}}\n", "tolerances.goodput_rps.rtol"),
    ("metrics: {goodput_rps: 1.0}\ntolerances: {goodput_rps: 3}\n", "tolerances.goodput_rps: expected a mapping"),
])
def test_non_numeric_baseline_values_are_named(run_dir, tmp_path, text, message):
    baseline = tmp_path / "b.yaml"
    baseline.write_text(text)
    with pytest.raises(CheckError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check(run_dir, baseline, out=open(os.devnull, "w"))


def test_update_refuses_a_run_in_which_nothing_completed(tmp_path):
    data = make_config_dict(workload={"name": "synthetic", "num_requests": 5, "rate_rps": 1.0,
                                      "input_tokens": 16, "output_tokens": 4},
                            engine={"progress": False, "max_time_s": 0.001})
    out = tmp_path / "run"
    write_run(simulate(data), out)
    assert json.loads((out / "summary.json").read_text())["num_completed"] == 0
    with pytest.raises(CheckError, match="no request completed; refusing to record it"):
        check(out, tmp_path / "b.yaml", update=True)
    assert not (tmp_path / "b.yaml").exists()


def test_a_summary_that_is_not_an_object_is_named(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("[1, 2]")
    with pytest.raises(CheckError, match="expected a JSON object"):
        check(path, tmp_path / "b.yaml", update=True)


# ---------------------------------------------------------------------------- 8: sweeps

def _tiny_sweep() -> dict:
    return {"name": "tiny", "base": small_base(max_requests=20), "grid": {"workload.rate_scale": [1, 2]}}


def test_a_second_sweep_into_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a sweep running into out right now
    try:
        with pytest.raises(SweepError, match="in use by another sweep running now"):
            run_sweep(_tiny_sweep(), out, progress=False)
    finally:
        os.close(fd)
    assert not (out / "results.jsonl").exists()
    table = run_sweep(_tiny_sweep(), out, progress=False)  # the lock is gone with its holder
    assert list(table["status"]) == ["ok", "ok"]
    again = run_sweep(_tiny_sweep(), out, progress=False)  # a rerun skips the finished points
    assert len(again) == 2 and len((out / "results.jsonl").read_text().splitlines()) == 2


def test_overwrite_keeps_the_lock_file(tmp_path):
    out = tmp_path / "out"
    run_sweep(_tiny_sweep(), out, progress=False)
    other = {**_tiny_sweep(), "grid": {"workload.rate_scale": [3]}}
    table = run_sweep(other, out, progress=False, overwrite=True)
    assert len(table) == 1 and (out / LOCK).exists()


def test_run_refuses_to_write_into_a_sweep_folder(tmp_path, capsys):
    out = tmp_path / "out"
    run_sweep(_tiny_sweep(), out, progress=False)
    before = sorted(p.name for p in out.iterdir())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_base(max_requests=5)))
    for target in (out, out / "points" / "p0000"):
        assert main(["run", str(config), "--out", str(target), "--quiet"]) == 2
        assert "is inside sweep results folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before
