"""A pool held by other pools' steps: the expert pool of attention/expert disaggregation.

A pool with ``holds: {pool: NAME}`` (role ``attention``) runs part of every iteration on pool
NAME (role ``expert``), whose replicas serve no requests of their own. An iteration of a
holding replica is::

    own part (its cost model: attention, dense layers)  ->  queue for a server of NAME
      ->  NAME's part (its cost model's ``held_time_s(tokens, key)``: routed experts, the
          communication both ways)  ->  tokens out

Each replica of NAME is one server. A free server takes every request waiting (``batching:
true``, JANUS: the expert pool runs the MoE layers of all attention replicas' tokens at once)
or the oldest one, and is busy for ``held_time_s`` of their tokens together; so several
holding replicas contend for it, and the time a step waits is part of its iteration. The
per-layer interleaving of attention and MoE layers is folded into one hold per iteration (the
aggregate busy time of the held pool is kept; the overlap of one replica's attention with
another's MoE layers is what the queue models).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import simpy

from sim.schema import param


@dataclass
class HoldConfig:
    """Which pool a pool's iterations hold, and how that pool serves its holders."""

    pool: str = param(doc="name of the held pool (role: expert)")
    batching: bool = param(True, doc="a free server takes every waiting holder at once (else one)")


class HeldPool:
    """FCFS servers (one per replica of the held pool) shared by the holding replicas."""

    def __init__(self, env: simpy.Environment, pool: Any, batching: bool):
        self.env = env
        self.pool = pool
        self.batching = batching
        self.cost_model = pool.cost_model
        self._waiting: deque[tuple[int, simpy.Event]] = deque()
        self._idle: list[Any] = []  # replicas of the held pool with no work
        self.num_batches = 0
        self.busy_s = 0.0
        for rep in pool.replicas:
            env.process(self._serve(rep))

    def request(self, num_tokens: int) -> simpy.Event:
        """Queue ``num_tokens`` tokens for the held pool; the event succeeds when they are served."""
        done = self.env.event()
        self._waiting.append((num_tokens, done))
        if self._idle:
            wake = self._idle.pop()
            wake.succeed()
        return done

    def _serve(self, rep: Any):
        env = self.env
        while True:
            if not self._waiting:
                wake = env.event()
                self._idle.append(wake)
                yield wake
                continue
            if self.batching:
                batch = list(self._waiting)
                self._waiting.clear()
            else:
                batch = [self._waiting.popleft()]
            tokens = sum(n for n, _e in batch)
            self.num_batches += 1
            service_s = self.cost_model.held_time_s(tokens, self.num_batches)
            yield env.timeout(service_s)
            rep.busy_decode_s += service_s
            rep.num_steps += 1
            rep.batch_size_sum += len(batch)
            self.busy_s += service_s
            for _n, ev in batch:
                ev.succeed()
