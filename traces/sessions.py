"""The ``sessions`` workload: multi-turn conversations with shared prefix blocks, open loop.

Sessions start by an arrival process; each has ``turns`` turns. A turn's prompt is the
previous prompt + answer + a new user message, so consecutive turns share prefix ids (see
``traces.prefix``), and every session starts with the same ``system_prompt_tokens``.
The next turn arrives ``think_time_s`` after the previous one (open loop: it does not wait
for the answer; use ``closed_loop`` with ``turns:`` for users who wait)::

    workload:
      name: sessions
      num_sessions: 200
      arrival: {name: poisson, rate_rps: 0.5}
      turns: 3
      turns_max: 8
      think_time_s: 20
      system_prompt_tokens: 1024
      lengths:
        input: {name: lognormal, median_tokens: 200, sigma: 0.8}
        output: {name: lognormal, median_tokens: 250, sigma: 0.6, max_tokens: 2000}
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim.engine.request import Request
from sim.errors import ConfigError
from sim.registry import WORKLOADS
from sim.schema import param
from sim.workload import Workload
from traces.arrivals import ArrivalSpec, poisson
from traces.lengths import LengthSampler, LengthsConfig, legacy_lengths
from traces.prefix import Conversation, IdSource
from traces.stream import make_request, numbered
from traces.transforms import Pipeline, TransformSpec


def think_gap(rng: np.random.Generator, mean_s: float, kind: str) -> float:
    """One think time: exponential with mean ``mean_s``, or exactly ``mean_s``."""
    if mean_s <= 0:
        return 0.0
    return float(rng.exponential(mean_s)) if kind == "exponential" else mean_s


def default_lengths(lengths: LengthsConfig | None, input_tokens: int, output_tokens: int) -> LengthSampler:
    """``lengths`` or fixed input/output lengths."""
    if lengths is None:
        lengths = LengthsConfig(input=legacy_lengths(input_tokens, None), output=legacy_lengths(output_tokens, None))
    return LengthSampler(lengths)


@dataclass
class SessionsParams:
    """Multi-turn chat sessions (open loop)."""

    num_sessions: int = param(100, ge=1, doc="sessions to generate")
    rate_rps: float = param(0.5, gt=0, doc="session start rate (Poisson) if no arrival:")
    arrival: ArrivalSpec | None = param(None, doc="session start process")
    turns: int = param(4, ge=1, doc="turns per session (lower bound if turns_max set)")
    turns_max: int | None = param(None, ge=1, doc="turns uniform on [turns, turns_max]")
    think_time_s: float = param(10.0, ge=0, doc="mean time between a session's turns")
    think: Literal["exponential", "fixed"] = param("exponential", doc="think time distribution")
    input_tokens: int = param(200, ge=1, doc="new user tokens per turn (if no lengths:)")
    output_tokens: int = param(200, ge=1, doc="answer tokens per turn (if no lengths:)")
    lengths: LengthsConfig | None = param(None, doc="per-turn new-message and answer lengths")
    system_prompt_tokens: int = param(0, ge=0, doc="prompt prefix shared by every session")
    prefix_block_tokens: int = param(16, ge=1, doc="tokens per prefix id (a multiple of the KV block size)")
    max_context_tokens: int | None = param(None, ge=2, doc="end a session before its context exceeds this")
    transforms: list[TransformSpec] = param(default_factory=list, doc="stream transforms, in order")

    def validate(self) -> None:
        if self.turns_max is not None and self.turns_max < self.turns:
            raise ConfigError("must be >= turns", "turns_max")


@WORKLOADS.register("sessions")
class SessionsWorkload(Workload):
    """Open-loop multi-turn sessions whose turns share prompt prefixes."""

    Params = SessionsParams

    def __init__(self, params: SessionsParams):
        self.params = params
        self.process = params.arrival.build() if params.arrival is not None else poisson(params.rate_rps)
        self.lengths = default_lengths(params.lengths, params.input_tokens, params.output_tokens)
        self.pipeline = Pipeline(params.transforms)
        self.counts: Counter = Counter()

    def _session(self, s: int, start_s: float, rng: np.random.Generator, ids: IdSource,
                 system_ids: tuple[int, ...]) -> list[Request]:
        p = self.params
        n_turns = p.turns if p.turns_max is None else int(rng.integers(p.turns, p.turns_max + 1))
        new_in, outs = self.lengths.sample(rng, n_turns)
        conv = Conversation(ids, p.prefix_block_tokens, p.system_prompt_tokens, system_ids)
        t, out = start_s, []
        for k in range(n_turns):
            n_in, hashes = conv.prompt(int(new_in[k]))
            n_out = int(outs[k])
            if p.max_context_tokens is not None and n_in + n_out > p.max_context_tokens:
                self.counts["num_sessions_cut_at_context"] += 1
                break
            out.append(make_request(0, t, n_in, n_out, self.counts, session=s, prefix_hashes=hashes,
                                    prefix_block_tokens=p.prefix_block_tokens))
            conv.extend(n_in, hashes, n_out)
            t += think_gap(rng, p.think_time_s, p.think)
        return out

    def _merged(self, rng: np.random.Generator) -> Iterator[Request]:
        p = self.params
        ids = IdSource()
        system_ids = ids.take(p.system_prompt_tokens // p.prefix_block_tokens)
        starts = self.process.times(rng, p.num_sessions)
        heap: list[tuple[float, int, Request]] = []
        seq = 0
        for s, start in enumerate(starts.tolist()):
            while heap and heap[0][0] <= start:
                yield heapq.heappop(heap)[2]
            for req in self._session(s, start, rng, ids, system_ids):
                heapq.heappush(heap, (req.arrival_s, seq, req))
                seq += 1
            self.counts["num_sessions"] += 1
        while heap:
            yield heapq.heappop(heap)[2]

    def requests(self, rng: np.random.Generator) -> Iterator[Request]:
        self.counts = Counter()
        gen_rng, transform_rng = rng.spawn(2)
        return numbered(self.pipeline.apply(self._merged(gen_rng), transform_rng), self.counts)

    def describe(self) -> dict[str, Any]:
        return {f"workload_{k}": v for k, v in {**self.counts, **self.pipeline.counts()}.items()}
