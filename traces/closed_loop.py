"""The ``closed_loop`` workload: N users, each sending its next request when the last ends.

As serving benchmarks run ``--max-concurrency N``: at most ``num_users`` requests are in
flight. A user waits ``think_time_s`` (exponential or fixed) after its request finishes (or
is rejected) before sending the next. With ``turns > 1`` each user holds a conversation:
turn k's prompt extends turn k-1's prompt and answer (shared prefix ids)::

    workload:
      name: closed_loop
      num_users: 32
      num_requests: 2000
      think_time_s: 1.0
      lengths: {file: traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv}

With ``distinct_prompts: N`` the requests replay N prompts round robin (request k, in the order
they are sent, uses prompt k mod N): requests of the same prompt carry the same prefix-id chain, whose
first ``system_prompt_tokens // prefix_block_tokens`` ids every prompt shares, so an engine with
prefix caching hits them (SOURCES.md fid15g). ``warmup_requests`` W > 0 makes the first W requests a
separate warm-up pass, as benchmarks run one: at most ``num_users`` of them in flight, and the
measured requests (ids W, W + 1, ...) start only once every warm-up request is done, every user at
once, the round robin again from prompt 0.

Ids are unique and increase in the order requests are created; ``arrival_s`` of a follow-up
is ``now_s + think``. The user of a request is its ``client`` (``user0`` ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim.engine.request import Request, State
from sim.registry import WORKLOADS
from sim.schema import param
from sim.workload import Workload
from traces.lengths import LengthsConfig
from traces.prefix import Conversation, IdSource
from traces.sessions import default_lengths, think_gap
from traces.stream import make_request


@dataclass
class ClosedLoopParams:
    """A fixed population of users, each with one request in flight at a time."""

    num_users: int = param(8, ge=1, doc="concurrent users (max requests in flight)")
    num_requests: int = param(1000, ge=1, doc="total requests to send")
    duration_s: float | None = param(None, gt=0, doc="send no request after this time")
    think_time_s: float = param(0.0, ge=0, doc="mean wait between a finish and the user's next request")
    think: Literal["exponential", "fixed"] = param("exponential", doc="think time distribution")
    ramp_s: float = param(0.0, ge=0, doc="users start uniformly over [0, ramp_s]")
    input_tokens: int = param(512, ge=1, doc="prompt (or new message) tokens (if no lengths:)")
    output_tokens: int = param(128, ge=1, doc="answer tokens (if no lengths:)")
    lengths: LengthsConfig | None = param(None, doc="length distributions or file")
    turns: int = param(1, ge=1, doc="turns per conversation; 1 = independent requests")
    system_prompt_tokens: int = param(0, ge=0, doc="prompt prefix shared by every user")
    prefix_block_tokens: int = param(16, ge=1, doc="tokens per prefix id")
    max_context_tokens: int | None = param(None, ge=2, doc="start a new conversation before exceeding this")
    distinct_prompts: int = param(0, ge=0, doc="replay this many prompts round robin (0: every prompt unique)")
    warmup_requests: int = param(0, ge=0, doc="requests of a warm-up pass sent before the measured ones")


class _User:
    """One user's conversation state."""

    __slots__ = ("name", "conversation", "turn", "session")

    def __init__(self, name: str):
        self.name = name
        self.conversation: Conversation | None = None
        self.turn = 0
        self.session = -1


@WORKLOADS.register("closed_loop")
class ClosedLoopWorkload(Workload):
    """N users in a send-wait-think loop (the engine calls ``on_done``)."""

    Params = ClosedLoopParams
    closed_loop = True

    def __init__(self, params: ClosedLoopParams):
        self.params = params
        self.lengths = default_lengths(params.lengths, params.input_tokens, params.output_tokens)
        self._reset()

    def _reset(self) -> None:
        self.counts: Counter = Counter(num_requests=0, num_rejected_seen=0)
        self._ids = IdSource()
        p = self.params
        self._system_ids = self._ids.take(p.system_prompt_tokens // p.prefix_block_tokens)
        self._users: dict[str, _User] = {}
        self._next_id = 0
        self._next_session = 0
        self._prompt_chains: dict[int, tuple[int, ...]] = {}
        self._warmup_done = 0
        self._parked: list[_User] = []  # users waiting for the warm-up pass to end

    def _make(self, user: _User, arrival_s: float, rng: np.random.Generator) -> Request | None:
        p = self.params
        if self._next_id >= p.num_requests or (p.duration_s is not None and arrival_s > p.duration_s):
            return None
        n_new, n_out = (int(x[0]) for x in self.lengths.sample(rng, 1))
        extra: dict[str, Any] = {"client": user.name}
        if p.distinct_prompts:
            n_in = n_new
            hashes = self._prompt_chain(self._prompt_index(self._next_id), n_in)
            extra.update(prefix_hashes=hashes, prefix_block_tokens=p.prefix_block_tokens)
        elif p.turns > 1 or p.system_prompt_tokens:
            if user.conversation is None or user.turn >= p.turns:
                user.conversation = Conversation(self._ids, p.prefix_block_tokens, p.system_prompt_tokens,
                                                 self._system_ids)
                user.turn, user.session = 0, self._next_session
                self._next_session += 1
            n_in, hashes = user.conversation.prompt(n_new)
            if p.max_context_tokens is not None and n_in + n_out > p.max_context_tokens and user.turn > 0:
                self.counts["num_conversations_cut_at_context"] += 1
                user.turn = p.turns
                return self._make(user, arrival_s, rng)
            user.conversation.extend(n_in, hashes, n_out)
            user.turn += 1
            extra.update(session=user.session, prefix_hashes=hashes, prefix_block_tokens=p.prefix_block_tokens)
        else:
            n_in = n_new
        req = make_request(self._next_id, arrival_s, n_in, n_out, self.counts, **extra)
        self._next_id += 1
        self.counts["num_requests"] += 1
        return req

    def _prompt_index(self, request_index: int) -> int:
        """The prompt request ``request_index`` replays: round robin, restarted after the warm-up."""
        p = self.params
        k = request_index if request_index < p.warmup_requests else request_index - p.warmup_requests
        return k % p.distinct_prompts

    def _prompt_chain(self, prompt: int, input_tokens: int) -> tuple[int, ...]:
        """The prefix ids of ``prompt`` at ``input_tokens`` tokens: the shared system ids, then its own (one id
        per block, the last possibly partial; a longer replay of the prompt extends its chain)."""
        size = self.params.prefix_block_tokens
        n_blocks = -(-input_tokens // size)
        chain = self._prompt_chains.get(prompt)
        if chain is None:
            chain = self._system_ids[:n_blocks]
        if len(chain) < n_blocks:
            chain = chain + self._ids.take(n_blocks - len(chain))
        self._prompt_chains[prompt] = chain
        return chain[:n_blocks]

    def initial_requests(self, rng: np.random.Generator) -> Iterator[Request]:
        """One request per user, at 0 or spread over the ramp (sorted by time)."""
        self._reset()
        p = self.params
        starts = np.sort(rng.uniform(0, p.ramp_s, size=p.num_users)) if p.ramp_s > 0 else np.zeros(p.num_users)
        for k, t in enumerate(starts.tolist()):
            user = self._users.setdefault(f"user{k}", _User(f"user{k}"))
            if k >= p.warmup_requests > 0:  # a warm-up pass smaller than the users: the rest wait for its end
                self._parked.append(user)
                continue
            req = self._make(user, t, rng)
            if req is None:
                return
            yield req

    def on_done(self, request: Request, now_s: float, rng: np.random.Generator) -> Request | list[Request] | None:
        user = self._users.get(request.client)
        if user is None:
            return None
        if request.state == State.REJECTED:
            self.counts["num_rejected_seen"] += 1
        warmup = self.params.warmup_requests
        if request.id < warmup:
            self._warmup_done += 1
            if self._warmup_done == warmup:  # the pass ended: every user sends its first measured request
                users, self._parked = self._parked + [user], []
                return [r for u in users if (r := self._make(u, now_s + self._think(rng), rng)) is not None]
            if self._next_id >= warmup:  # the pass is all sent: wait for its end
                self._parked.append(user)
                return None
        return self._make(user, now_s + self._think(rng), rng)

    def _think(self, rng: np.random.Generator) -> float:
        return think_gap(rng, self.params.think_time_s, self.params.think)

    def describe(self) -> dict[str, Any]:
        return {f"workload_{k}": v for k, v in self.counts.items()}
