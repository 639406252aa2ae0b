"""Format readers and detection, and malformed rows: errors with file and line, or skipped."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import ConfigError, TraceError
from tests.traces.conftest import make_workload, run
from traces.azure import parse_timestamp
from traces.formats import detect_format

AZURE_2024 = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2024-05-10 00:00:00.009930+00:00,100,10\n"
    "2024-05-10 00:00:01.509930+00:00,200,0\n"
    "2024-05-10 00:01:00.009930+00:00,300,30\n"
)
BURSTGPT = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,472,18,490,Conversation log\n"
    "45,ChatGPT,1087,0,1087,Conversation log\n"
    "118,GPT-4,417,276,693,API log\n"
)
NATIVE_CSV = (
    "arrival_s,input_tokens,output_tokens,client,app,session,slo_class,priority,prefix_hashes\n"
    "0.5,100,10,alice,chat,1,gold,2,1 2 3\n"
    "1.0,50,5,,,,,,\n"
)
NATIVE_JSONL = (
    '{"arrival_s": 0, "input_tokens": 64, "output_tokens": 8, "prefix_hashes": [7, 8], '
    '"prefix_block_tokens": 32}\n'
    '{"arrival_s": 2.5, "input_tokens": 16, "output_tokens": 4, "deadline_s": 9.0, "job": 3}\n'
)


def test_timestamps_2023_and_2024():
    assert parse_timestamp("2023-11-16 18:17:04.0319600") - parse_timestamp("2023-11-16 18:17:03.9799600") == \
        pytest.approx(0.052)
    utc = parse_timestamp("2024-05-10 00:00:00.5+00:00")
    assert parse_timestamp("2024-05-10 02:00:00.5+02:00") == pytest.approx(utc)


def test_detection(write):
    assert detect_format(write("a.csv", AZURE_2024)) == "azure"
    assert detect_format(write("b.csv", BURSTGPT)) == "burstgpt"
    assert detect_format(write("c.csv", NATIVE_CSV)) == "csv"
    assert detect_format(write("d.jsonl", NATIVE_JSONL)) == "jsonl"
    assert detect_format(write("e.csv", "prompt_len,output_len\n3,4\n")) == "lengths"
    with pytest.raises(TraceError, match="unrecognised CSV header"):
        detect_format(write("f.csv", "x,y\n1,2\n"))


def test_azure_2024(write):
    reqs = run({"name": "trace", "path": write("a.csv", AZURE_2024), "format": "azure"})
    assert [r.arrival_s for r in reqs] == pytest.approx([0.0, 1.5, 60.0])
    w = make_workload({"name": "trace", "path": write("a.csv", AZURE_2024)})
    list(w.requests(np.random.default_rng(0)))
    assert w.describe()["workload_num_output_raised_to_1"] == 1


def test_burstgpt_failed_rows_counted_and_excluded(write):
    path = write("b.csv", BURSTGPT)
    w = make_workload({"name": "trace", "path": path})
    reqs = list(w.requests(np.random.default_rng(0)))
    assert [r.input_tokens for r in reqs] == [472, 417]
    assert [r.arrival_s for r in reqs] == [0.0, 113.0]
    assert reqs[1].app == "GPT-4" and reqs[1].client == "API log"
    assert w.describe()["workload_num_failed"] == 1
    kept = make_workload({"name": "trace", "path": path, "include_failed": True})
    reqs = list(kept.requests(np.random.default_rng(0)))
    assert len(reqs) == 3 and reqs[1].output_tokens == 1
    assert kept.describe()["workload_num_failed"] == 1


def test_native_csv_and_jsonl(write):
    a, b = run({"name": "trace", "path": write("n.csv", NATIVE_CSV)})
    assert (a.arrival_s, a.client, a.app, a.session, a.slo_class, a.priority) == (0.5, "alice", "chat", 1, "gold", 2)
    assert a.prefix_hashes == (1, 2, 3) and a.prefix_block_tokens == 16
    assert b.client is None and b.prefix_hashes is None and b.id == 1
    c, d = run({"name": "trace", "path": write("n.jsonl", NATIVE_JSONL)})
    assert c.prefix_hashes == (7, 8) and c.prefix_block_tokens == 32
    assert (d.deadline_s, d.job) == (9.0, 3)


BAD_ROWS = [
    ("missing column", "2023-11-16 18:17:04.0,5\n", "missing column"),
    ("non-numeric", "2023-11-16 18:17:04.0,abc,5\n", "not a number"),
    ("negative", "2023-11-16 18:17:04.0,-3,5\n", "negative"),
    ("backwards", "2023-11-16 18:17:01.0,3,5\n", "backwards"),
    ("bad time", "yesterday,3,5\n", "not a timestamp"),
]


@pytest.mark.parametrize("what,row,message", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_malformed_row_names_file_and_line(write, what, row, message):
    text = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0,1,1\n" + row + \
        "2023-11-16 18:17:05.0,2,2\n"
    path = write("bad.csv", text)
    with pytest.raises(TraceError, match=message) as info:
        run({"name": "trace", "path": path})
    assert info.value.file.endswith("bad.csv") and info.value.line == 3
    assert "bad.csv:3:" in str(info.value)
    w = make_workload({"name": "trace", "path": path, "on_error": "skip"})
    reqs = list(w.requests(np.random.default_rng(0)))
    assert [r.input_tokens for r in reqs] == [1, 2]
    assert w.describe()["workload_num_rows_skipped"] == 1
    assert "bad.csv:3" in w.describe()["workload_first_skipped_row"]


@pytest.mark.parametrize("name,text,line", [
    ("m.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 10, "input_length": 5}\n', 2),
    ("m2.jsonl", '{"timestamp": 9, "input_length": 5, "output_length": 1}\n'
                 '{"timestamp": 3, "input_length": 5, "output_length": 1}\n', 2),
    ("n.csv", "arrival_s,input_tokens,output_tokens\n0,1,1\n1,x,1\n", 3),
    ("n.jsonl", '{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\nnot json\n', 2),
    ("g.csv", BURSTGPT.replace("118,", "-1,"), 4),
])
def test_malformed_rows_other_formats(write, name, text, line):
    with pytest.raises(TraceError) as info:
        run({"name": "trace", "path": write(name, text)})
    assert info.value.line == line


def test_config_errors(write):
    with pytest.raises(ConfigError, match="did you mean 'azure'"):
        make_workload({"name": "trace", "path": write("a.csv", AZURE_2024), "format": "azur"})
    with pytest.raises(ConfigError, match="not found"):
        make_workload({"name": "trace", "path": "no/such/file.csv"})
    with pytest.raises(ConfigError, match="workload.transforms\\[0\\].name"):
        make_workload({"name": "trace", "path": write("a.csv", AZURE_2024), "transforms": [{"name": "windw"}]})


def test_open_loop_requests_is_a_generator(write):
    import inspect

    w = make_workload({"name": "trace", "path": write("a.csv", AZURE_2024)})
    assert inspect.isgenerator(w.requests(np.random.default_rng(0)))
