"""Trace rows and the bookkeeping shared by every format reader.

A reader turns one file into ``TraceRow`` records, one per request, in file order. It
reports a malformed row through ``ReadContext.bad_row``: with ``on_error: raise`` (the
default) that raises ``TraceError(file, line, message)``; with ``on_error: skip`` the row is
dropped and counted. Counters end up in the workload's ``describe()``.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sim.errors import TraceError

OnError = Literal["raise", "skip"]
MAX_TOKENS = 10**12  # a token count beyond this is corrupt data (it would overflow the typed request columns)

# Optional per-request fields a row may carry (all Request keyword arguments).
EXTRA_FIELDS = (
    "client", "app", "session", "slo_class", "priority", "prefix_hashes",
    "prefix_block_tokens", "ttft_slo_s", "tpot_slo_s", "deadline_s", "job", "model",
)


@dataclass(slots=True)
class TraceRow:
    """One request as read from a file, before ids, transforms and clamping."""

    line: int                       # 1-based line in the file
    arrival_s: float | None         # None for length-only files
    input_tokens: int
    output_tokens: int
    extra: dict[str, Any] | None = None


@dataclass
class ReadContext:
    """Options of one read and the counts it produced."""

    path: str
    on_error: OnError = "raise"
    include_failed: bool = False
    counts: Counter = field(default_factory=Counter)
    first_error: str | None = None

    def bad_row(self, line: int, message: str) -> None:
        """Raise TraceError for a malformed row, or count it when skipping."""
        if self.on_error == "raise":
            raise TraceError(self.path, line, message)
        self.counts["num_rows_skipped"] += 1
        if self.first_error is None:
            self.first_error = f"{self.path}:{line}: {message}"


def csv_rows(reader: Any, width: int, ctx: ReadContext, header: list[str] | None = None) -> Any:
    """(1-based line, row) for each data row of a CSV reader positioned after its header:
    blank rows are skipped, rows with fewer than ``width`` columns go to ``ctx.bad_row``."""
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < width:
            ctx.bad_row(line, short_row(row, width, header))
            continue
        yield line, row


def short_row(row: list[str], width: int, header: list[str] | None = None) -> str:
    """The message for a row with too few cells: which columns it lacks, by name where known."""
    lacking = header[len(row):width] if header else [f"#{i + 1}" for i in range(len(row), width)]
    return f"short row: {len(row)} of {width} columns, missing column(s) {lacking}: {row!r}"


def to_int(text: Any, what: str) -> int:
    """A non-negative integer from a CSV cell or JSON value; ValueError names the column."""
    if type(text) is str and text.isascii() and text.isdigit():  # the common CSV cell: plain digits
        value = int(text)
    elif isinstance(text, bool):
        raise ValueError(f"{what}: expected an integer, got {text!r}")
    elif isinstance(text, int):
        value = text
    elif isinstance(text, float):
        if not text.is_integer():
            raise ValueError(f"{what}: expected an integer, got {text!r}")
        value = int(text)
    else:
        try:
            value = int(text)
        except (TypeError, ValueError):
            try:
                number = float(text)
            except (TypeError, ValueError):
                raise ValueError(f"{what}: not a number: {text!r}") from None
            if not number.is_integer():
                raise ValueError(f"{what}: expected an integer, got {text!r}") from None
            value = int(number)
    if value < 0:
        raise ValueError(f"{what}: negative value {value}")
    if value > MAX_TOKENS:
        raise ValueError(f"{what}: {value} is beyond any request (at most {MAX_TOKENS:g})")
    return value


def to_float(text: Any, what: str) -> float:
    """A finite non-negative float; ValueError names the column."""
    if isinstance(text, bool):
        raise ValueError(f"{what}: expected a number, got {text!r}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{what}: not a finite number: {text!r}")
    if value < 0:
        raise ValueError(f"{what}: negative value {value}")
    return value


class MonotoneClock:
    """Checks that timestamps never go backwards and makes them relative to the first row."""

    def __init__(self, rebase: bool = True):
        self.rebase = rebase
        self.t0: float | None = None
        self.last: float | None = None

    def check(self, t: float) -> str | None:
        """An error message if ``t`` is earlier than the previous timestamp, else None."""
        if self.last is not None and t < self.last:
            return f"timestamp goes backwards ({t!r} < previous {self.last!r})"
        return None

    def accept(self, t: float) -> float:
        """Record ``t`` as the latest timestamp; return it relative to the first row."""
        if self.t0 is None:
            self.t0 = t if self.rebase else 0.0
        self.last = t
        return t - self.t0


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SNIFF_BYTES = 8192


def _zstd_open(path: str | Path) -> Any:
    """``compression.zstd.open`` where Python has it (3.14+), else None."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        return None
    return zstd.open(path, "rt", newline="", encoding="utf-8-sig")


def _check_text(path: str | Path, head: bytes) -> None:
    """TraceError unless the first bytes of ``path`` (decompressed) look like UTF-8 text."""
    if b"\x00" in head:
        raise TraceError(str(path), 1, "binary file (NUL bytes), not a text trace")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the sniff's end
            raise TraceError(str(path), 1, f"binary file (not UTF-8 text at byte {exc.start}), not a text trace") \
                from None


def open_text(path: str | Path):
    """Open a trace for reading (text, universal newlines, UTF-8 with an optional BOM).

    Gzip files (and zstd ones where Python ships ``compression.zstd``) are decompressed on the fly,
    found by their magic bytes, not their name; a binary file is a TraceError at line 1."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as gz:
                _check_text(path, gz.read(_SNIFF_BYTES))
        except (OSError, EOFError, zlib.error) as exc:
            raise TraceError(str(path), 1, f"corrupt gzip file: {exc}") from None
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    if head.startswith(ZSTD_MAGIC):
        fh = _zstd_open(path)
        if fh is None:
            raise TraceError(str(path), 1, "zstd-compressed trace: this Python cannot read zstd "
                                           "(decompress it, or gzip it: gzip is read directly)")
        return fh
    _check_text(path, head)
    return open(path, newline="", encoding="utf-8-sig")


def guarded(rows: Any, path: str) -> Any:
    """The rows of a reader, with undecodable text, bad CSV and corrupt compression later in the
    file reported as TraceError at the line after the last good row (instead of a traceback)."""
    line = 1
    try:
        for row in rows:
            line = row.line
            yield row
    except (UnicodeDecodeError, csv.Error, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise TraceError(path, line + 1, f"unreadable trace data after line {line}: {exc}") from None
