"""A replica's serving front end: ``servers`` parallel FIFO servers that requests pass before
they reach the replica's queue (tokenising the prompt and handing it to the engine core, one
request at a time per server: the API-server process of vLLM's V1 engine, which vLLM scales out
with ``--api-server-count``).

A request routed to the replica at time ``t`` with ``n`` prompt tokens waits for the earliest
free server and holds it for ``service = request_s + token_s x n``; it reaches the replica at

    release = max(t, earliest free time) + service

(Lindley's recursion for a c-server FIFO queue, solved in closed form at dispatch: the servers'
free times are a heap, so each request costs one push and one timed event, no process). The
cost model gives the stage (``frontend_request_s``, ``frontend_token_s``, ``frontend_servers``:
``hardware.calibration_constants.StackOverheads``); with a service time of 0 there is no front
end and no event (``make_frontend`` returns None), so runs of every other stack are unchanged.

A request in a front end is outstanding at its replica from its routing (``num_outstanding``, as a
load balancer counts in-flight requests); at its release it goes onto the replica's queue, or, in a
multi-model pool, onto its model's queue (sim/engine/multimodel.py) as dispatch would have put it.
"""

from __future__ import annotations

from heapq import heappop, heappush, heapreplace
from typing import Any

from sim.engine.clock import ARRIVAL, at


class FrontEnd:
    """The front end of one replica: free times of its servers, requests in it, what it added."""

    __slots__ = ("env", "servers", "request_s", "token_s", "_free", "_pending", "_seq", "num", "wait_sum_s",
                 "service_sum_s", "wait_max_s", "in_max", "release_cb")

    def __init__(self, env: Any, servers: int, request_s: float, token_s: float, release_cb: Any):
        self.env = env
        self.servers = int(servers)
        self.request_s = float(request_s)
        self.token_s = float(token_s)
        self._free = [0.0] * self.servers  # each server's free time (a heap: [0] is the earliest)
        self._pending: list[tuple[float, int, Any]] = []  # (release, seq, request), a heap
        self._seq = 0
        self.num = 0
        self.wait_sum_s = self.service_sum_s = self.wait_max_s = 0.0
        self.in_max = 0
        self.release_cb = release_cb  # (request) -> None, called at its release time

    def service_s(self, input_tokens: int) -> float:
        """Seconds a server is held by a request of ``input_tokens`` prompt tokens."""
        return self.request_s + self.token_s * input_tokens

    def admit(self, req: Any, now: float) -> float:
        """Take ``req`` at ``now``; schedule its release (returned) to the replica."""
        free = self._free
        start = free[0] if free[0] > now else now
        service = self.service_s(req.input_tokens)
        release = start + service
        heapreplace(free, release)
        wait = start - now
        self.num += 1
        self.wait_sum_s += wait
        self.service_sum_s += service
        if wait > self.wait_max_s:
            self.wait_max_s = wait
        heappush(self._pending, (release, self._seq, req))
        self._seq += 1
        if len(self._pending) > self.in_max:
            self.in_max = len(self._pending)
        at(self.env, release, ARRIVAL).callbacks.append(self._release)
        return release

    def _release(self, _event: Any) -> None:
        # events fire in time order, so the earliest pending request is due now (ties: admission order)
        self.release_cb(heappop(self._pending)[2])

    def next_release_s(self) -> float | None:
        """When the next request in the front end reaches the replica (None: none in it)."""
        return self._pending[0][0] if self._pending else None

    def requests(self) -> list[Any]:
        """The requests in the front end now (not yet released to the replica)."""
        return [p[2] for p in sorted(self._pending)]


def make_frontend(env: Any, cost_model: Any, release_cb: Any) -> FrontEnd | None:
    """The front end the cost model's stack gives a replica, or None where it has none."""
    request_s = float(getattr(cost_model, "frontend_request_s", 0.0) or 0.0)
    token_s = float(getattr(cost_model, "frontend_token_s", 0.0) or 0.0)
    if request_s <= 0.0 and token_s <= 0.0:
        return None
    servers = int(getattr(cost_model, "frontend_servers", 1) or 1)
    return FrontEnd(env, servers, request_s, token_s, release_cb)


def frontend_summary(frontends: dict[int, FrontEnd]) -> dict[str, Any]:
    """What the front ends added, over every replica's (empty where no replica has one)."""
    if not frontends:
        return {}
    fes = list(frontends.values())
    num = sum(f.num for f in fes)
    wait = sum(f.wait_sum_s for f in fes)
    service = sum(f.service_sum_s for f in fes)
    return {"frontend_requests": int(num),
            "frontend_servers": int(max(f.servers for f in fes)),
            "frontend_wait_mean_s": wait / num if num else 0.0,
            "frontend_wait_max_s": max(f.wait_max_s for f in fes),
            "frontend_service_mean_s": service / num if num else 0.0,
            "frontend_delay_mean_s": (wait + service) / num if num else 0.0,
            "frontend_in_max": int(max(f.in_max for f in fes))}
