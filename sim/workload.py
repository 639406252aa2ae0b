"""The workload seam: where requests come from.

A workload is registered in ``WORKLOADS`` and built as ``cls(params)``. It is one of two kinds:

- open loop: ``requests(rng)`` yields ``Request`` records in arrival order (ids 0, 1, 2, ...).
  It should be a generator so that large traces stream in bounded memory.
- closed loop (``closed_loop = True``): ``initial_requests(rng)`` yields the first requests,
  and ``on_done(request, now_s, rng)`` returns the next request that request's client sends
  (its ``arrival_s`` >= now_s), or None, or a list of requests (several waiting clients released at
  once, e.g. when a warm-up pass ends). The engine calls it when a request finishes or is rejected.

``describe()`` returns facts for the run summary (rows skipped, lengths clipped, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sim.engine.request import Request


class Workload:
    """Base class for request sources."""

    closed_loop: bool = False

    def requests(self, rng: np.random.Generator) -> Iterator[Request]:
        """Open loop: every request, in arrival order."""
        raise NotImplementedError

    def initial_requests(self, rng: np.random.Generator) -> Iterator[Request]:
        """Closed loop: the requests sent at start."""
        raise NotImplementedError

    def on_done(self, request: Request, now_s: float,
                rng: np.random.Generator) -> Request | list[Request] | None:
        """Closed loop: the next request of ``request``'s client, or None (or a list: clients released at once)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Counts worth reporting in the summary (e.g. ``num_clipped``); keys are flat."""
        return {}
