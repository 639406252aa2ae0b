"""The bundled traces load, and their statistics match /work/shared/traces/README.md."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.traces.conftest import DATA, run
from traces.stats import main, trace_stats

# file: rows, span_s, mean rate, input p50/p90/p99/max, output p50/p90/p99/max
EXPECTED = {
    "azure_llm_2023_code.csv": (8819, 3436, 2.57, (1469, 5188, 7436, 7437), (13, 55, 251, 1899)),
    "azure_llm_2023_conv.csv": (19366, 3502, 5.53, (1020, 2735, 4142, 14050), (129, 424, 601, 1000)),
    "mooncake_conversation_trace.jsonl": (12031, 3537, 3.40, (6909, 27367, 85400, 126195), (350, 597, 1119, 2000)),
    "sharegpt_8k_lengths_llama2_tokenizer.csv": (30731, None, None, (1730, 5696, 7434, 8141), (415, 834, 998, 1024)),
}
SHA256 = {
    "azure_llm_2023_code.csv": "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
    "azure_llm_2023_conv.csv": "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
    "mooncake_conversation_trace.jsonl": "b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df",
    "sharegpt_8k_lengths_llama2_tokenizer.csv": "6d6c296302a853e2669a674a96f269283e60c57e60363bd450588a1066919f9f",
}


def _pcts(d: dict) -> tuple:
    return d["p50"], d["p90"], d["p99"], d["max"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stats_match_readme(name):
    rows, span, rate, inp, out = EXPECTED[name]
    s = trace_stats(DATA / name)
    assert s["rows"] == rows
    if span is None:
        assert s["span_s"] is None
    else:
        assert s["span_s"] == pytest.approx(span, abs=1)
        assert s["mean_rate_rps"] == pytest.approx(rate, abs=0.01)
    assert _pcts(s["input_tokens"]) == inp
    assert _pcts(s["output_tokens"]) == out


def test_azure_code_burstiness_and_mooncake_bins():
    code = trace_stats(DATA / "azure_llm_2023_code.csv")
    assert code["interarrival_cv"] == pytest.approx(13.2, abs=0.1)
    assert code["peak_rate_rps"] == 67
    assert trace_stats(DATA / "azure_llm_2023_conv.csv")["interarrival_cv"] == pytest.approx(1.09, abs=0.01)
    moon = trace_stats(DATA / "mooncake_conversation_trace.jsonl")
    assert moon["distinct_timestamps"] == 1180
    assert moon["prefix_hit_fraction"] == pytest.approx(0.37, abs=0.01)


@pytest.mark.parametrize("name", sorted(SHA256))
def test_bundled_files_are_the_originals(name):
    assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == SHA256[name]
    readme = (DATA / "README.md").read_text()
    assert SHA256[name] in readme and name in readme


def test_stats_cli_json(capsys):
    assert main([str(DATA / "mooncake_conversation_trace.jsonl"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 12031 and 0.36 < out["prefix_hit_fraction"] < 0.38
    assert main([str(DATA / "azure_llm_2023_code.csv")]) == 0
    assert "inter-arrival CV" in capsys.readouterr().out


def test_stats_cli_error_is_reported(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("what,ever\n1,2\n")
    assert main([str(bad)]) == 1
    assert "bad.csv:1" in capsys.readouterr().err


@pytest.mark.parametrize("name,fmt", [
    ("azure_llm_2023_code.csv", "azure"),
    ("azure_llm_2023_conv.csv", "azure"),
    ("mooncake_conversation_trace.jsonl", "mooncake"),
])
def test_trace_workload_loads_every_row(name, fmt):
    reqs = run({"name": "trace", "path": f"traces/data/{name}"})
    assert len(reqs) == EXPECTED[name][0]
    assert [r.id for r in reqs] == list(range(len(reqs)))
    assert reqs[0].arrival_s == 0.0
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:], strict=False))
    assert min(r.input_tokens for r in reqs) >= 1 and min(r.output_tokens for r in reqs) >= 1


def test_mooncake_prefix_blocks():
    reqs = run({"name": "trace", "path": "traces/data/mooncake_conversation_trace.jsonl", "max_requests": 50})
    assert all(r.prefix_block_tokens == 512 for r in reqs)
    assert all(r.prefix_hashes[0] == 0 for r in reqs)  # block 0 is shared by every request
    assert len(reqs[0].prefix_hashes) == -(-reqs[0].input_tokens // 512)


def test_sharegpt_needs_an_arrival_process():
    from sim.errors import ConfigError

    with pytest.raises(ConfigError, match="arrival"):
        run({"name": "trace", "path": "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv"})
    reqs = run({"name": "trace", "path": "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv",
                "arrival": {"name": "poisson", "rate_rps": 10}, "max_requests": 500})
    assert len(reqs) == 500 and reqs[0].arrival_s == 0
    assert reqs[-1].arrival_s == pytest.approx(50, rel=0.25)
