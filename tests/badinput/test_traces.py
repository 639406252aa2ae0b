"""Issue 19, defect 5: empty, short, zero-length, binary and compressed traces."""

from __future__ import annotations

import gzip

import pytest

from sim import simulate
from sim.errors import ServesimError, TraceError
from sim.tools.cli import main
from sim.tools.output import format_summary
from tests.conftest import make_config

HEADER = "arrival_s,input_tokens,output_tokens\n"
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _run(path, **workload):
    return simulate(make_config(workload={"name": "trace", "path": str(path), **workload}))


@pytest.mark.parametrize("header", [HEADER, AZURE, "prompt_len,output_len\n"])
def test_a_header_only_trace_is_a_named_error(tmp_path, header):
    path = tmp_path / "t.csv"
    path.write_text(header)
    extra = {"arrival": {"name": "poisson", "rate_rps": 1.0}} if "prompt" in header else {}
    with pytest.raises(TraceError, match=r"t\.csv:1: the trace yields no requests: no data rows"):
        _run(path, **extra)


def test_a_trace_whose_rows_are_all_skipped_is_a_named_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "x,1,1\n0.5,y,1\n")
    with pytest.raises(TraceError, match="all 2 rows were skipped"):
        _run(path, on_error="skip")


def test_a_header_only_trace_fails_the_cli_in_one_line(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"workload: {{name: trace, path: {trace}}}\nengine: {{progress: false}}\n"
                   "cluster: {pools: [{cost_model: constant, kv: {name: paged, num_blocks: 100}}]}\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no requests" in err


def test_a_short_row_names_the_missing_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(AZURE + "2023-11-16 18:17:03.0,5\n")
    with pytest.raises(TraceError) as info:
        _run(path)
    assert str(info.value).endswith("t.csv:2: short row: 2 of 3 columns, missing column(s) ['GeneratedTokens']: "
                                    "['2023-11-16 18:17:03.0', '5']")
    native = tmp_path / "n.csv"
    native.write_text(HEADER + "0.0,5\n")
    with pytest.raises(TraceError, match=r"missing column\(s\) \['output_tokens'\]"):
        _run(native)


def test_zero_lengths_are_counted_and_reported(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "0.0,0,4\n0.1,8,0\n0.2,8,0\n")
    s = _run(path).summary
    assert (s["workload_num_input_raised_to_1"], s["workload_num_output_raised_to_1"]) == (1, 2)
    text = format_summary(s)
    assert "note: 1 rows with 0 input tokens raised to 1" in text
    assert "note: 2 rows with 0 output tokens raised to 1" in text


def test_a_gzipped_trace_is_read_like_the_plain_one(tmp_path):
    text = HEADER + "".join(f"{i * 0.05:.2f},{16 + i},{4 + i % 3}\n" for i in range(40))
    plain, packed = tmp_path / "t.csv", tmp_path / "t.csv.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    a, b = _run(plain), _run(packed)
    assert a.summary["num_completed"] == b.summary["num_completed"] == 40
    assert a.requests.equals(b.requests)


@pytest.mark.parametrize("data, message", [
    (b"\x00\x01\x02\x03binary", "binary file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "binary file"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    # mtime 0: the same bytes, hence the same test id, in every xdist worker (they collect apart)
    (gzip.compress(b"\xff\xfe\x00\x00" * 10, mtime=0), "binary file"),
    (b"\x28\xb5\x2f\xfd\x00\x00", "zstd"),
])
def test_binary_input_is_a_named_error(tmp_path, data, message):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    with pytest.raises(ServesimError, match=message):
        _run(path)


def test_bad_bytes_after_good_rows_are_a_named_error(tmp_path):
    good = HEADER + "".join(f"{i * 0.01:.2f},16,4\n" for i in range(2000))
    path = tmp_path / "t.csv"
    path.write_bytes(good.encode() + b"0.5,\xff\xfe,4\n")
    with pytest.raises(TraceError, match="unreadable trace data after line"):
        _run(path)


def test_a_token_count_beyond_any_request_is_a_named_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "0.0,16,1e20\n")
    with pytest.raises(TraceError, match=r"t\.csv:2: output_tokens: 100000000000000000000 is beyond any request"):
        _run(path)
