"""The servesim command line."""

from __future__ import annotations

import json

from sim.tools.cli import main
from tests.conftest import make_config_dict


def test_run_writes_config_requests_and_summary(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump(make_config_dict()))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--set", "workload.num_requests=50"]) == 0
    printed = capsys.readouterr().out
    assert "TTFT" in printed and "goodput" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_requests"] == 50
    for key in ("ttft_p99_s", "tpot_p50_s", "itl_p90_s", "e2e_p95_s", "queueing_mean_s", "goodput_rps",
                "slo_attainment", "slo_attainment_ttft", "throughput_input_tps", "num_preemptions",
                "prefix_hit_rate", "mean_batch_size", "simulated_duration_s", "wall_s"):
        assert key in summary
    assert (out / "config.yaml").exists()
    assert (out / "requests.parquet").exists() or (out / "requests.csv").exists()


def test_bad_config_is_one_line_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("workload: {name: synthetic, rate_rps: -3}\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "workload.rate_rps" in err and "bad.yaml:1" in err
    assert "Traceback" not in err


def test_calibrate_json_meets_targets(capsys):
    assert main(["calibrate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["points"]) >= 40 and out["median_abs_error"] <= 0.10


def test_trace_stats_json(capsys):
    assert main(["trace", "stats", "traces/data/azure_llm_2023_conv.csv", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 19366
