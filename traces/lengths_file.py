"""Length-only CSVs (no timestamps), such as Sarathi-Serve's ShareGPT length table.

The reader takes the first matching column of each pair below; other columns are ignored::

    input:  num_prefill_tokens | input_tokens | prompt_tokens | prompt_len | input_length
    output: num_decode_tokens  | output_tokens | completion_tokens | output_len | output_length

Rows carry no arrival time: the ``trace`` workload pairs them with an arrival process
(``arrival: {name: poisson, rate_rps: 4}``), and the synthetic generators sample (input,
output) pairs from them (``lengths: {file: ...}``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from traces.rows import ReadContext, TraceRow, csv_rows, open_text, to_int

INPUT_COLUMNS = ("num_prefill_tokens", "input_tokens", "prompt_tokens", "prompt_len", "input_length")
OUTPUT_COLUMNS = ("num_decode_tokens", "output_tokens", "completion_tokens", "output_len", "output_length")
TIME_COLUMNS = ("arrival_s", "timestamp", "Timestamp", "TIMESTAMP")


def _pick(header: list[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in header), None)


def sniff(header: list[str]) -> bool:
    """Whether a CSV header has an input and an output length column and no time column."""
    return (_pick(header, INPUT_COLUMNS) is not None and _pick(header, OUTPUT_COLUMNS) is not None
            and _pick(header, TIME_COLUMNS) is None)


def read(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream (input, output) lengths with ``arrival_s = None``."""
    with open_text(ctx.path) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        c_in, c_out = _pick(header, INPUT_COLUMNS), _pick(header, OUTPUT_COLUMNS)
        if c_in is None or c_out is None:
            ctx.on_error = "raise"
            ctx.bad_row(1, f"no input/output length columns (expected one of {INPUT_COLUMNS} and "
                           f"one of {OUTPUT_COLUMNS}); found {header}")
        i_in, i_out = header.index(c_in), header.index(c_out)
        width = max(i_in, i_out) + 1
        for line, row in csv_rows(reader, width, ctx, header):
            try:
                n_in = to_int(row[i_in], c_in)
                n_out = to_int(row[i_out], c_out)
            except ValueError as exc:
                ctx.bad_row(line, str(exc))
                continue
            yield TraceRow(line, None, n_in, n_out)


def load_pairs(path: str | Path, format: str = "auto") -> np.ndarray:
    """All (input, output) length pairs of any trace file, as an int64 array of shape (n, 2)."""
    from traces.formats import read_rows  # late import: formats imports this module

    ctx = ReadContext(str(path), on_error="skip")
    pairs = np.array([(r.input_tokens, r.output_tokens) for r in read_rows(ctx, format)], dtype=np.int64)
    if pairs.size == 0:
        raise ValueError(f"{path}: no usable rows")
    return pairs.reshape(-1, 2)
