"""servesim's own trace schema, for users' traces: CSV with a header, or JSON lines.

Required: ``arrival_s`` (seconds, non-decreasing), ``input_tokens``, ``output_tokens``.
Optional (empty cell / missing key = unset)::

    client, app, slo_class        strings
    model                         the model the request names (multi-model pools)
    session, job, priority        integers
    ttft_slo_s, tpot_slo_s        seconds (per-request SLOs)
    deadline_s                    absolute finish deadline, seconds on the arrival clock
    prefix_hashes                 CSV: ids separated by spaces; JSONL: a list
    prefix_block_tokens           tokens per prefix id (default 16 when prefix_hashes is set)

Arrival times are kept as written (not shifted to start at 0), so deadlines stay meaningful.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from traces.rows import MonotoneClock, ReadContext, TraceRow, open_text, short_row, to_float, to_int

REQUIRED = ("arrival_s", "input_tokens", "output_tokens")
STR_FIELDS = ("client", "app", "slo_class", "model")
INT_FIELDS = ("session", "job", "prefix_block_tokens")
FLOAT_FIELDS = ("ttft_slo_s", "tpot_slo_s", "deadline_s")
DEFAULT_PREFIX_BLOCK_TOKENS = 16


def sniff_header(header: list[str]) -> bool:
    """Whether a CSV header follows the native schema."""
    return all(c in header for c in REQUIRED)


def sniff_record(record: dict) -> bool:
    """Whether a decoded first JSON line follows the native schema."""
    return all(c in record for c in REQUIRED)


def _parse_hashes(value: Any) -> tuple:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, str):
        parts = value.replace("|", " ").replace(";", " ").split()
        return tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)
    raise ValueError(f"prefix_hashes: expected a list or space-separated ids, got {value!r}")


def parse_record(record: dict[str, Any]) -> tuple[float, int, int, dict[str, Any] | None]:
    """(arrival, input, output, extra fields) of one record; ValueError when malformed."""
    missing = [c for c in REQUIRED if record.get(c) in (None, "")]
    if missing:
        raise ValueError(f"missing value(s) for {missing}")
    t = to_float(record["arrival_s"], "arrival_s")
    n_in = to_int(record["input_tokens"], "input_tokens")
    n_out = to_int(record["output_tokens"], "output_tokens")
    extra: dict[str, Any] = {}
    for key in STR_FIELDS:
        if record.get(key) not in (None, ""):
            extra[key] = str(record[key])
    for key in INT_FIELDS:
        if record.get(key) not in (None, ""):
            extra[key] = to_int(record[key], key)
    if record.get("priority") not in (None, ""):
        try:
            extra["priority"] = int(record["priority"])
        except (TypeError, ValueError):
            raise ValueError(f"priority: expected an integer, got {record['priority']!r}") from None
    for key in FLOAT_FIELDS:
        if record.get(key) not in (None, ""):
            extra[key] = to_float(record[key], key)
    if record.get("prefix_hashes") not in (None, "", []):
        extra["prefix_hashes"] = _parse_hashes(record["prefix_hashes"])
        extra.setdefault("prefix_block_tokens", DEFAULT_PREFIX_BLOCK_TOKENS)
    return t, n_in, n_out, extra or None


def _records_csv(ctx: ReadContext) -> Iterator[tuple[int, dict | None, str | None]]:
    with open_text(ctx.path) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            ctx.on_error = "raise"
            ctx.bad_row(1, f"missing column(s) {missing}; found {header}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                yield line, None, short_row(row, len(header), header)
                continue
            yield line, dict(zip(header, row, strict=False)), None


def _records_jsonl(ctx: ReadContext) -> Iterator[tuple[int, dict | None, str | None]]:
    with open_text(ctx.path) as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, None, f"invalid JSON: {exc.msg}"
                continue
            if not isinstance(record, dict):
                yield line, None, "expected a JSON object"
                continue
            yield line, record, None


def read(ctx: ReadContext, jsonl: bool) -> Iterator[TraceRow]:
    """Stream the rows of a native CSV (``jsonl=False``) or JSON-lines file."""
    clock = MonotoneClock(rebase=False)
    records = _records_jsonl(ctx) if jsonl else _records_csv(ctx)
    for line, record, problem in records:
        if problem is None:
            try:
                t, n_in, n_out, extra = parse_record(record)
            except ValueError as exc:
                problem = str(exc)
            else:
                problem = clock.check(t)
        if problem:
            ctx.bad_row(line, problem)
            continue
        yield TraceRow(line, clock.accept(t), n_in, n_out, extra)


def read_csv(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream a native-schema CSV."""
    return read(ctx, jsonl=False)


def read_jsonl(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream a native-schema JSON-lines file."""
    return read(ctx, jsonl=True)
