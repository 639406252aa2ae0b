"""Mooncake traces (kvcache-ai/Mooncake, FAST'25): JSON lines, one request each.

::

    {"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1, 2, ...]}

``timestamp`` is in milliseconds. ``hash_ids`` holds one id per 512-token block of the
prompt (the last block may be partial); equal ids mean an identical prefix up to the end of
that block, so the ids become the request's ``prefix_hashes`` with ``prefix_block_tokens =
512``. The conversation, tool-agent and arXiv traces share this schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from traces.rows import MAX_TOKENS, MonotoneClock, ReadContext, TraceRow, open_text, to_float, to_int

BLOCK_TOKENS = 512
KEYS = ("timestamp", "input_length", "output_length")
_scan_once = json.JSONDecoder().scan_once


def _loads(text: str) -> object:
    """``json.loads(text)``. A line that is one JSON value from its first character, then at
    most a line feed, is decoded by the decoder's scanner alone (what ``raw_decode`` calls, without
    its Python frame, and without ``loads``'s two whitespace scans); any other (leading
    whitespace, a BOM, CR LF, extra data, bad JSON: the scanner's StopIteration or its error) goes
    to ``json.loads`` itself, for its result or its error."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, json.JSONDecodeError):
        return json.loads(text)
    n = len(text)
    if end == n or (end == n - 1 and text[end] == "\n"):
        return value
    return json.loads(text)


def sniff(record: dict) -> bool:
    """Whether a decoded first JSON line looks like a Mooncake record."""
    return "input_length" in record and "output_length" in record


def read(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream the records of a Mooncake JSON-lines trace."""
    clock = MonotoneClock()
    with open_text(ctx.path) as fh:
        for line, text in enumerate(fh, start=1):
            if text.isspace():  # a line read from a file is never empty: this is ``not text.strip()``
                continue
            try:
                record = _loads(text)
            except json.JSONDecodeError as exc:
                ctx.bad_row(line, f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(record, dict):
                ctx.bad_row(line, "expected a JSON object")
                continue
            if "timestamp" not in record or "input_length" not in record or "output_length" not in record:
                ctx.bad_row(line, f"missing key(s) {[k for k in KEYS if k not in record]}")
                continue
            try:
                # plain non-negative JSON ints (the usual record) pass without the converters' checks
                t, n_in, n_out = record["timestamp"], record["input_length"], record["output_length"]
                t = (float(t) if type(t) is int and t >= 0 else to_float(t, "timestamp")) / 1000.0
                if not (type(n_in) is int and 0 <= n_in <= MAX_TOKENS):
                    n_in = to_int(n_in, "input_length")
                if not (type(n_out) is int and 0 <= n_out <= MAX_TOKENS):
                    n_out = to_int(n_out, "output_length")
                hashes = record.get("hash_ids")
                if hashes is not None and not isinstance(hashes, list):
                    raise ValueError(f"hash_ids: expected a list, got {hashes!r}")
            except ValueError as exc:
                ctx.bad_row(line, str(exc))
                continue
            problem = clock.check(t)
            if problem:
                ctx.bad_row(line, problem)
                continue
            extra = None
            if hashes:
                extra = {"prefix_hashes": tuple(hashes), "prefix_block_tokens": BLOCK_TOKENS}
            yield TraceRow(line, clock.accept(t), n_in, n_out, extra)
