"""The servesim command line."""

from __future__ import annotations

import json

from sim.tools.cli import main
from sim.tools.policies import REGISTRIES
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


def test_policies_text_lists_every_kind_name_and_parameter(capsys):
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    for registry in REGISTRIES:
        assert f"\n{registry.kind}s\n" in f"\n{out}"
        for name in registry.names():
            assert f"\n  {name} " in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("chunk_size"))
    assert line.split()[:3] == ["chunk_size", "int", "512"] and line.endswith("token budget per iteration")
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("long_pool"))
    assert "required" not in line
    assert "\n  fixed " in out and "\n  reactive_autoscaler " in out  # speculator, controller


def test_policies_json_is_machine_readable(capsys):
    assert main(["policies", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == [r.kind for r in REGISTRIES]
    for registry in REGISTRIES:
        assert [p["name"] for p in data[registry.kind]] == registry.names()
    sarathi = next(p for p in data["scheduler"] if p["name"] == "sarathi")
    assert sarathi["doc"] and {"name": "chunk_size", "type": "int", "default": 512, "required": False,
                               "doc": "token budget per iteration"} in sarathi["params"]
    reservation = next(p for p in data["router"] if p["name"] == "length_reservation")
    assert reservation["params"][0] == {"name": "long_input_tokens", "type": "int", "default": None,
                                        "required": True, "doc": "prompts longer than this are 'long'"}
    paged = data["kv manager"][0]["params"]
    assert {"name": "num_blocks", "type": "int | None", "default": None, "required": False,
            "doc": "override the block count derived from memory"} in paged


def test_policies_by_kind_and_unknown_kind(capsys):
    assert main(["policies", "kv_manager", "handoff", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["kv manager", "handoff"]
    assert main(["policies", "routers"]) == 2
    assert "unknown policy kind 'routers'" in capsys.readouterr().err
