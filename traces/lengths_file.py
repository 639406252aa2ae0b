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
from collections.abc import Iterable, Iterator
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
    from traces.formats import read_rows, resolve_format  # late import: formats imports this module

    if resolve_format(path, format) == "lengths":
        pairs = _plain_pairs(path)
        if pairs is not None:
            return pairs
    ctx = ReadContext(str(path), on_error="skip")
    pairs = np.array([(r.input_tokens, r.output_tokens) for r in read_rows(ctx, format)], dtype=np.int64)
    if pairs.size == 0:
        raise ValueError(f"{path}: no usable rows")
    return pairs.reshape(-1, 2)


def _plain_pairs(path: str | Path) -> np.ndarray | None:
    """``load_pairs``' fast path for a plain length CSV (the bundled tables): the pairs ``read``
    yields, parsed with numpy over the file's bytes instead of a ``TraceRow`` per row. None, so
    that the general reader runs and reports, unless every data line has the header's number of
    cells and every length cell is 1-12 ASCII digits (``to_int``'s plain case, below its limit),
    with no quotes, carriage returns or blank lines, in ASCII."""
    try:
        with open_text(path) as fh:
            text = fh.read()
    except (UnicodeDecodeError, OSError, EOFError, ValueError):
        return None
    head, _, body = text.partition("\n")
    if '"' in text or "\r" in text or not body.isascii():
        return None
    header = [h.strip() for h in head.split(",")]
    c_in, c_out = _pick(header, INPUT_COLUMNS), _pick(header, OUTPUT_COLUMNS)
    if c_in is None or c_out is None or not body:
        return None
    raw = np.frombuffer((body if body.endswith("\n") else body + "\n").encode(), dtype=np.uint8)
    width = len(header)
    seps = np.flatnonzero((raw == 44) | (raw == 10))  # the end of each cell
    if len(seps) % width or (raw[seps[width - 1::width]] != 10).any() or (raw[seps].reshape(-1, width)[:, :-1]
                                                                           != 44).any():
        return None  # a line (a blank one too) with another number of cells
    starts = np.concatenate(([0], seps[:-1] + 1))
    out = []
    for col in (header.index(c_in), header.index(c_out)):
        a, b = starts[col::width], seps[col::width]
        size = b - a
        if size.min() < 1 or size.max() > 12:
            return None
        # digit k of a cell (from the right) at b - 1 - k; cells shorter than k contribute nothing
        value = np.zeros(len(a), dtype=np.int64)
        scale = 1
        for k in range(int(size.max())):
            has = size > k
            digit = raw[np.where(has, b - 1 - k, 0)].astype(np.int64) - 48
            if ((digit < 0) | (digit > 9))[has].any():
                return None
            value += np.where(has, digit, 0) * scale
            scale *= 10
        out.append(value)
    return np.stack(out, axis=1)


def write_lengths_csv(path: str | Path, pairs: Iterable, arrivals: Iterable[float] | None = None) -> Path:
    """Write (input, output) token pairs as a length CSV this reader takes (``input_tokens,output_tokens``), or,
    with ``arrivals`` (seconds, one per pair), the native trace CSV (``arrival_s,input_tokens,output_tokens``)."""
    path = Path(path)
    with open(path, "w") as fh:
        if arrivals is None:
            fh.write("input_tokens,output_tokens\n")
            fh.writelines(f"{i},{o}\n" for i, o in pairs)
        else:
            fh.write("arrival_s,input_tokens,output_tokens\n")
            fh.writelines(f"{a:.6f},{i},{o}\n" for a, (i, o) in zip(arrivals, pairs, strict=True))
    return path
