"""The Azure reader's common-row path (``traces/azure.py`` ``read``) gives the rows, skips, counts
and first error the full per-row path gives: the parser, ``to_int`` and the clock on every row."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from sim.errors import TraceError
from traces.azure import COLUMNS, TimestampParser, full_row, read
from traces.rows import MonotoneClock, ReadContext, TraceRow

ROWS = [
    "2023-11-16 18:15:46.6805900,374,44",
    "2023-11-16 18:15:50.9951690,396,109",
    "2023-11-16 18:15:50.9951690,0,0",          # same time, zero lengths
    "2023-11-16 18:15:49.0000000,10,10",        # backwards
    "2023-11-16 18:15:59.9999999,10,x",         # a bad count
    "2023-11-16 18:15:61.5,10,10",              # seconds out of range
    "2023-11-16 18:15:5a.1,10,10",              # not a number
    " 2023-11-16 18:16:00.1000000 ,12, 13",     # spaces around the stamp and a count
    "2023-11-16 18:16:00.2000000,1000000000000,1",   # 13 digits: beyond any request
    "2023-11-16 18:16:00.3000000,999999999999,1",    # 12 digits
    "2023-11-16 18:16:01,5,5",                  # no fraction
    "2023-11-16 18:16:02.5+00:00,5,5",          # a zone
    "2023-11-16 18:16:03.5Z,5,5",
    "2023-11-16 18:16:04.5-01:00,5,5",          # an hour later in UTC
    "2023-11-16 18:16:05.5,5,5",                # back to naive: earlier than the row before
    "2023-11-16 19:16:05.6,5,5",
    "2023-11-16T19:16:05.7,5,5",
    "2023-11-16 19:16:05.8,٣,5",                # a non-ASCII digit
    "2023-11-16 19:16:05.9,+5,5",
    "2023-11-16 19:16:06.0,5.0,5",
    "2023-11-16 19:16:06.1\t,5,5",
    "2023-11-16 19:16:06.2,5,5,extra",
    "2023-11-16 19:17:00.0000000,7,8",
]


def _full_path(path: str, ctx: ReadContext) -> list[TraceRow]:
    """Every row through ``full_row`` (the parser, ``to_int`` and the clock), none by the common-row path."""
    parse, clock, out = TimestampParser(), MonotoneClock(), []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        i_ts, i_in, i_out = (header.index(c) for c in COLUMNS)
        for line, row in enumerate(reader, start=2):
            checked = full_row(line, row[i_ts], row[i_in], row[i_out], parse, clock, ctx)
            if checked is not None:
                out.append(checked)
    return out


@pytest.mark.parametrize("start", range(0, len(ROWS), 3))
def test_common_rows_read_as_the_full_path_reads_them(tmp_path, start):
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(ROWS[start:] + ROWS[:start]) + "\n")
    got_ctx = ReadContext(str(path), "skip", counts=Counter())
    want_ctx = ReadContext(str(path), "skip", counts=Counter())
    got = list(read(got_ctx))
    want = _full_path(str(path), want_ctx)
    assert [(r.line, r.arrival_s, r.input_tokens, r.output_tokens) for r in got] == \
        [(r.line, r.arrival_s, r.input_tokens, r.output_tokens) for r in want]
    assert got_ctx.counts == want_ctx.counts and got_ctx.first_error == want_ctx.first_error
    assert len(got) >= 2


def test_the_first_bad_row_raises_as_the_full_path_raises(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(ROWS[:5]) + "\n")
    with pytest.raises(TraceError) as got:
        list(read(ReadContext(str(path))))
    with pytest.raises(TraceError) as want:
        _full_path(str(path), ReadContext(str(path)))
    assert str(got.value) == str(want.value)
