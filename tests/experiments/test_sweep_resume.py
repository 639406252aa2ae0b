"""Sweeps: killed part-way and resumed equals an uninterrupted run; failures recorded; folders guarded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from sim.tools.output import read_frame
from sim.tools.sweep import SweepError, load_sweep, read_journal, run_sweep, table_path
from tests.experiments.conftest import REPO, small_base, sweep_24, write_sweep


def _servesim(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim.tools.cli", *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _journal_lines(out) -> int:
    path = out / "results.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_24_points_table_shape(reference_24):
    out, table = reference_24
    assert len(table) == 24 and list(table["point"]) == list(range(24))
    assert (table["status"] == "ok").all()
    assert list(table.columns[:7]) == ["point", "rate_scale", "scheduler", "seed", "status", "error", "dir"]
    assert set(table["seed"]) == {0, 1, 2} and set(table["scheduler"]) == {"vllm_v1", "sarathi"}
    assert "wall_s" not in table.columns and "goodput_rps" in table.columns
    for d in table["dir"]:
        assert (out / d / "summary.json").is_file() and (out / d / "config.yaml").is_file()
    assert table_path(out).suffix in (".parquet", ".csv")


def test_killed_sweep_resumes_to_the_uninterrupted_table(tmp_path, reference_24):
    _, reference = reference_24
    sweep_file = write_sweep(tmp_path / "s24.yaml", sweep_24())
    out = tmp_path / "out"
    proc = _servesim("sweep", str(sweep_file), "--out", str(out), "--workers", "2", "--quiet")
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
    while _journal_lines(out) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool workers, mid-sweep
    proc.wait()
    done_before = len(read_journal(out / "results.jsonl"))
    assert 4 <= done_before < 24, "the sweep should have been killed part-way"

    resumed = _servesim("sweep", str(sweep_file), "--out", str(out), "--workers", "2")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming, {done_before} of 24 points already done" in err
    table = read_frame(table_path(out))
    pd.testing.assert_frame_equal(table, read_frame(table_path(reference_24[0])))
    pd.testing.assert_frame_equal(table, reference)
    # the resumed run skipped the finished points: each point appears once in the journal
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    assert sorted(r["point"] for r in rows) == list(range(24))


def test_worker_count_does_not_change_the_table(tmp_path, reference_24):
    table = run_sweep(sweep_24(), tmp_path / "w2", workers=2, progress=False)
    pd.testing.assert_frame_equal(table, reference_24[1])


def test_failed_point_records_its_error_and_the_sweep_goes_on(tmp_path):
    bad_trace = tmp_path / "bad.csv"
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2023-11-16 18:15:{i:02d}.000,100,10" for i in range(5)] + ["oops,not,numbers"]
    bad_trace.write_text("\n".join(rows) + "\n")
    sweep = {"base": small_base(),
             "points": [{"workload.path": str(bad_trace)}, {"workload.max_requests": 50}]}
    table = run_sweep(sweep, tmp_path / "out", progress=False)
    assert list(table["status"]) == ["failed", "ok"]
    assert table.loc[0, "error"]  # one line naming the exception
    assert (tmp_path / "out" / "points" / "p0000" / "error.txt").is_file()
    assert table.loc[1, "num_requests"] == 50


def test_a_folder_of_another_sweep_is_never_overwritten(tmp_path):
    base = small_base(max_requests=30)
    out = tmp_path / "out"
    run_sweep({"base": base, "grid": {"workload.rate_scale": [1, 2]}}, out, progress=False)
    other = {"base": base, "grid": {"workload.rate_scale": [1, 3]}}
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(other, out, progress=False)
    table = run_sweep(other, out, progress=False, overwrite=True)
    assert list(table["workload.rate_scale"]) == [1, 3]
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(SweepError, match="not a sweep results folder"):
        run_sweep(other, stranger, progress=False, overwrite=True)
    assert (stranger / "notes.txt").read_text() == "keep me"


def test_grid_zip_points_and_seeds_compose(tmp_path):
    sweep = load_sweep({"base": small_base(), "grid": {"workload.rate_scale": [1, 2]},
                        "zip": {"cluster.pools[0].num_replicas": [1, 2], "slo.ttft_s": [0.5, 1.0]},
                        "points": [{}, {"workload.max_requests": 20}], "seeds": [7, 8]})
    assert len(sweep.points) == 2 * 2 * 2 * 2
    first = sweep.points[0]
    assert first.values == {"workload.rate_scale": 1, "cluster.pools[0].num_replicas": 1, "slo.ttft_s": 0.5}
    assert first.seed == 7 and sweep.points[1].seed == 8
    assert sweep.config_dict(sweep.points[3])["workload"]["max_requests"] == 20


def test_smoke_sweep_runs_from_the_cli(tmp_path, capsys):
    from sim.tools.cli import main

    out = tmp_path / "smoke"
    assert main(["sweep", str(REPO / "experiments/sweeps/smoke.yaml"), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr()
    assert "6 points, 0 failed" in printed.out
    assert printed.err == ""  # not a terminal: no progress bar in logs
    assert main(["sweep", str(REPO / "experiments/sweeps/smoke.yaml"), "--out", str(out), "--quiet"]) == 0
