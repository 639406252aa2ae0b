"""Azure LLM inference traces: 2023 (naive timestamps) and 2024 (timestamps with a UTC offset).

Columns ``TIMESTAMP, ContextTokens, GeneratedTokens``; one row per request, sorted by time::

    2023-11-16 18:17:03.9799600,4808,10              (2023: 7 fractional digits, no zone)
    2024-05-10 00:00:00.009930+00:00,2048,28         (2024: microseconds and an offset)

Naive timestamps are read as UTC (only differences matter). Arrival times are seconds after
the first row. Rows stream from the file, so memory does not grow with the trace length
(the 2024 code trace has 16.8 M rows).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from traces.rows import MonotoneClock, ReadContext, TraceRow, csv_rows, open_text, to_int

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


class TimestampParser:
    """Seconds since the epoch of Azure timestamps, caching the minute-level prefix.

    Parsing the date and time of every row with ``datetime`` is the slow part of reading a
    16.8 M-row file; rows of the same minute share ``YYYY-MM-DD HH:MM``, so that part is
    parsed once and the seconds (``SS.fffffff``) are added as a float.
    """

    def __init__(self) -> None:
        self._minute_key: tuple[str, str] | None = None
        self._minute_s = 0.0
        # ``_minute_key``'s minute when it has no zone (else None): ``read``'s common row is a
        # stamp of that minute, whose epoch seconds are ``_minute_s``
        self.naive_minute: str | None = None

    def __call__(self, text: str) -> float:
        text = text.strip()
        if len(text) < 19 or text[10] not in " T" or text[16] != ":":
            raise ValueError(f"TIMESTAMP: not a timestamp: {text!r}")
        rest = text[17:]
        offset = ""
        tail = rest[2:]
        if "+" in tail or "-" in tail or "Z" in tail:  # a zone (2024); 2023 stamps have none
            for i in range(2, len(rest)):
                if rest[i] in "+-Z":
                    rest, offset = rest[:i], rest[i:]
                    break
        key = (text[:16], offset)
        if key != self._minute_key:
            self._minute_s = _minute_epoch(text[:16], offset)
            self._minute_key = key
            self.naive_minute = None if offset else text[:16]
        try:
            seconds = float(rest)
        except ValueError:
            raise ValueError(f"TIMESTAMP: not a timestamp: {text!r}") from None
        if not 0 <= seconds < 61:
            raise ValueError(f"TIMESTAMP: seconds out of range: {text!r}")
        return self._minute_s + seconds


def _minute_epoch(minute: str, offset: str) -> float:
    try:
        stamp = datetime.fromisoformat(f"{minute}:00{'+00:00' if offset == 'Z' else offset}")
    except ValueError:
        raise ValueError(f"TIMESTAMP: not a timestamp: {minute!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of one Azure timestamp (naive ones read as UTC)."""
    return TimestampParser()(text)


def sniff(header: list[str]) -> bool:
    """Whether a CSV header is an Azure LLM trace header."""
    return all(c in header for c in COLUMNS)


def read(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream the rows of an Azure 2023 or 2024 trace."""
    parse = TimestampParser()
    clock = MonotoneClock()
    with open_text(ctx.path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            ctx.bad_row(1, "empty file")
            return
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            ctx.on_error = "raise"  # a header problem is never skippable
            ctx.bad_row(1, f"missing column(s) {missing}; found {header}")
        i_ts, i_in, i_out = (header.index(c) for c in COLUMNS)
        width = max(i_ts, i_in, i_out) + 1
        for line, row in csv_rows(reader, width, ctx, header):
            # the common row (a stamp of the minute before, no zone; plain-digit counts of at most
            # 12 digits; not earlier than the row before) in line: ``parse``, ``to_int`` and the
            # clock's ``check`` and ``accept`` on it do the same operations on the same values
            text, a, b = row[i_ts], row[i_in], row[i_out]
            last = clock.last
            if text[:16] == parse.naive_minute and len(text) > 19 and text[16] == ":" \
                    and not text[-1].isspace() and a.isdigit() and b.isdigit() and a.isascii() and b.isascii() \
                    and len(a) <= 12 and len(b) <= 12:
                rest = text[17:]
                tail = rest[2:]
                if not ("+" in tail or "-" in tail or "Z" in tail):
                    try:
                        seconds = float(rest)
                    except ValueError:
                        seconds = -1.0  # the full path reports it
                    if 0 <= seconds < 61:
                        t = parse._minute_s + seconds
                        if last is not None and t >= last:  # (None: no row accepted yet)
                            clock.last = t
                            yield TraceRow(line, t - clock.t0, int(a), int(b))
                            continue
            checked = full_row(line, text, a, b, parse, clock, ctx)
            if checked is not None:
                yield checked


def full_row(line: int, text: str, n_in: str, n_out: str, parse: TimestampParser, clock: MonotoneClock,
             ctx: ReadContext) -> TraceRow | None:
    """One row through the parser, ``to_int`` and the clock: its ``TraceRow``, or None when it
    went to ``ctx.bad_row`` (skipped). ``read``'s path for any row but the common one."""
    try:
        t = parse(text)
        tokens_in = to_int(n_in, "ContextTokens")
        tokens_out = to_int(n_out, "GeneratedTokens")
    except ValueError as exc:
        ctx.bad_row(line, str(exc))
        return None
    problem = clock.check(t)
    if problem:
        ctx.bad_row(line, f"{problem} at {text!r}")
        return None
    return TraceRow(line, clock.accept(t), tokens_in, tokens_out)


def read_azure(path: str | Path) -> Iterator[tuple[int, float, int, int]]:
    """Yield (line, arrival seconds from the first row, input tokens, output tokens)."""
    for row in read(ReadContext(str(path))):
        yield row.line, row.arrival_s, row.input_tokens, row.output_tokens
