"""Turning trace rows into numbered ``Request`` records, lazily.

::

    rows --to_requests--> requests (lengths raised to >= 1) --transforms--> --numbered--> ids 0..N-1

Every stage is a generator, so a 16.8 M-row file flows through in bounded memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from sim.engine.request import Request
from sim.errors import ConfigError
from traces.rows import TraceRow

MAX_REQUEST_TOKENS = 2**24


def make_request(
    id: int, arrival_s: float, input_tokens: int, output_tokens: int, counts: Counter, **extra: object
) -> Request:
    """A Request with lengths raised to at least one token (each raise counted); a length beyond
    ``MAX_REQUEST_TOKENS`` is a ConfigError (no model's context comes near it, and the engine
    would size per-step arrays by it)."""
    if input_tokens > MAX_REQUEST_TOKENS or output_tokens > MAX_REQUEST_TOKENS:
        raise ConfigError(f"request {id}: {input_tokens} input / {output_tokens} output tokens; at most "
                          f"{MAX_REQUEST_TOKENS:,} each (2**24, beyond any model's context)", "workload")
    if input_tokens < 1:
        counts["num_input_raised_to_1"] += 1
        input_tokens = 1
    if output_tokens < 1:
        counts["num_output_raised_to_1"] += 1
        output_tokens = 1
    return Request(id, arrival_s, input_tokens, output_tokens, **extra)


def to_requests(
    rows: Iterable[TraceRow], counts: Counter, arrivals: Iterator[float] | None = None
) -> Iterator[Request]:
    """Requests from rows; ``arrivals`` replaces the rows' own times when given."""
    for i, row in enumerate(rows):
        t = next(arrivals) if arrivals is not None else row.arrival_s
        extra = row.extra or {}
        yield make_request(i, t, row.input_tokens, row.output_tokens, counts, **extra)


def numbered(stream: Iterable[Request], counts: Counter) -> Iterator[Request]:
    """Renumber ids 0, 1, 2, ... in stream order and count the requests."""
    n = 0
    for n, req in enumerate(stream, start=1):
        req.id = n - 1
        yield req
    counts["num_requests"] = n
