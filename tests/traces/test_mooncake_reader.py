"""The Mooncake reader's fast paths give what ``json.loads`` and the row converters give."""

from __future__ import annotations

import json

import pytest

from sim.errors import TraceError
from traces.mooncake import _loads, read
from traces.rows import ReadContext, to_float, to_int

LINES = ['{"a": 1}\n', '{"a": 1}', ' {"a": 1}\n', '{"a": 1} \n', '{"a": 1}\r\n', '{"a": 1}\r', '\ufeff{"a": 1}\n',
         '{"a": 1}\x0c\n', '{"a": 1}\u2028\n', '{"a": 1}{"b": 2}\n', '{"a": 1}\n\n', '{"a": \n', '[1, 2]\n', '7\n',
         'NaN\n', '"s"\n', '\n', '{"a": 1}x\n',
         # errors the scanner raises itself (mid-value) or as StopIteration (no value at the start)
         '{"a": 1, }\n', '{"a" 1}\n', '[1, 2\n', '"\\x"\n', '-\n', '', '{"a": [}\n']


def _outcome(fn, text):
    try:
        return "value", fn(text)
    except json.JSONDecodeError as exc:
        return "error", exc.msg, exc.pos


@pytest.mark.parametrize("text", LINES)
def test_loads_is_json_loads(text):
    got, want = _outcome(_loads, text), _outcome(json.loads, text)
    assert repr(got) == repr(want)  # repr: NaN equals itself there


VALUES = [0, 7, 5.0, 5.5, -1, -2.5, True, False, "7", "x", None, 10**12, 10**12 + 1, [1]]


def _row(tmp_path, ts, n_in, n_out):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"timestamp": ts, "input_length": n_in, "output_length": n_out}) + "\n")
    try:
        row = next(read(ReadContext(str(path))))
        return "row", row.arrival_s, row.input_tokens, row.output_tokens
    except TraceError as exc:
        return "error", str(exc)


def _expected(tmp_path, ts, n_in, n_out):
    try:
        to_float(ts, "timestamp")  # the first row's time becomes 0
        return "row", 0.0, to_int(n_in, "input_length"), to_int(n_out, "output_length")
    except ValueError as exc:
        return "error", f"{tmp_path / 'm.jsonl'}:1: {exc}"


@pytest.mark.parametrize("value", VALUES)
def test_fields_convert_as_the_converters_do(tmp_path, value):
    for ts, n_in, n_out in ((value, 5, 1), (0, value, 1), (3, 5, value), (value, value, value)):
        assert _row(tmp_path, ts, n_in, n_out) == _expected(tmp_path, ts, n_in, n_out), (ts, n_in, n_out)
