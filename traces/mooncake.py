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

from traces.rows import MonotoneClock, ReadContext, TraceRow, open_text, to_float, to_int

BLOCK_TOKENS = 512
KEYS = ("timestamp", "input_length", "output_length")


def sniff(record: dict) -> bool:
    """Whether a decoded first JSON line looks like a Mooncake record."""
    return "input_length" in record and "output_length" in record


def read(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream the records of a Mooncake JSON-lines trace."""
    clock = MonotoneClock()
    with open_text(ctx.path) as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                ctx.bad_row(line, f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(record, dict):
                ctx.bad_row(line, "expected a JSON object")
                continue
            missing = [k for k in KEYS if k not in record]
            if missing:
                ctx.bad_row(line, f"missing key(s) {missing}")
                continue
            try:
                t = to_float(record["timestamp"], "timestamp") / 1000.0
                n_in = to_int(record["input_length"], "input_length")
                n_out = to_int(record["output_length"], "output_length")
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
