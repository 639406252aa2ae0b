"""VTC: the Virtual Token Counter fair scheduler (Sheng et al., "Fairness in Serving Large
Language Models", OSDI'24; rules as in the public S-LoRA/VTC artifact's ``vtc_req_queue``).

One counter per client (the service it has received, in weighted tokens)::

    arrival of r from client u, u had no queued request:
        c_u = max(c_u, min{c_k : k != u has a queued request})   (no lift if none is queued)
    each step, after the running requests (vLLM v1 order, chunked prefill):
        repeat: k = the client with a queued request and the smallest counter
                r = k's oldest queued request
                stop if r does not fit the token budget / sequence cap / KV    ("else stop")
                admit r;  c_k += w_p * input_tokens / weight_k
    every generated token of client k:  c_k += w_q / weight_k

Defaults w_p = 1, w_q = 2 (the paper). Weighted VTC: ``weights`` (client -> weight, default 1).
Length-predicted VTC (``length_predicted``, the artifact's ``vtc_len_predict``): at admission
also charge w_q x the predictor's output length; generated tokens beyond the prediction are
charged as they come, and at the finish the unused part of the prediction is refunded.

Counters are shared by the replicas of a pool when the ``vtc`` router runs (it binds them,
and dispatches by them); else each replica keeps its own. Decode charges are settled lazily
from the requests' token counts (every replica brought up to now first), so they are exact
under the decode fast path. Details the paper leaves open, as choices here: a request
preempted by recompute resumes before new admissions and is charged its prompt only once;
a client whose only waiting requests were preempted is not "queued" for the lift rule
(S-LoRA never preempts); ties between equal counters go to the oldest head request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from policies.schedulers.base import SchedulerBase
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.states import State
from sim.engine.views import ReplicaView, RequestView
from sim.errors import ConfigError
from sim.registry import SCHEDULERS
from sim.schema import param

ANON = ""  # the client of requests without one


@dataclass
class VTCParams:
    """VTC's token prices, client weights and the vLLM v1 batch limits it admits under."""

    max_num_batched_tokens: int = param(2048, ge=1, doc="token budget per step (decodes + prefill chunks)")
    max_num_seqs: int = param(256, ge=1, doc="most sequences in a batch")
    input_price: float = param(1.0, ge=0, doc="w_p: counter charge per prompt token, at admission")
    output_price: float = param(2.0, ge=0, doc="w_q: counter charge per generated token")
    weights: dict[str, float] = param(default_factory=dict, doc="weighted VTC: client -> weight (default 1)")
    length_predicted: bool = param(False, doc="charge the predicted output at admission, correct at finish")
    whole_prompt: bool = param(False, doc="admit only whole prompts within the budget (S-LoRA); else chunked")

    def validate(self) -> None:
        for name, w in self.weights.items():
            if not w > 0:
                raise ConfigError(f"weight of client {name!r} must be > 0, got {w}", f"weights.{name}")


@dataclass
class _Charge:
    """An admitted request whose generated tokens are still being charged."""

    view: RequestView
    client: str
    predicted: int = 0   # output tokens charged up front (length-predicted VTC)
    charged: int = 0     # generated tokens beyond ``predicted`` charged so far
    out_scale: float = 1.0  # counter units per generated token, before w_q (1 / weight)


@dataclass
class VTCState:
    """Counters, queued-request counts and in-flight charges of one pool (or one replica)."""

    params: VTCParams
    counters: dict[str, float] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)       # never-admitted waiting requests
    inflight: dict[int, _Charge] = field(default_factory=dict)
    replicas: list[ReplicaView] = field(default_factory=list)
    queued_tokens: dict[int, dict[str, int]] = field(default_factory=dict)  # replica id -> client -> prompt tokens
    fresh_for: int | None = None  # id of the request the router just settled the counters for

    def weight(self, client: str) -> float:
        return self.params.weights.get(client, 1.0)

    def scales(self, req: RequestView, client: str) -> tuple[float, float]:
        """Counter units per prompt and per generated token, before w_p / w_q: 1 / weight."""
        w = self.weight(client)
        return 1.0 / w, 1.0 / w

    def finished(self, req: RequestView) -> None:
        """A charged request finished (FairServe learns app lengths here)."""

    def add_replica(self, rep: ReplicaView) -> None:
        """Follow ``rep``'s requests in ``settle`` (brought up to now first)."""
        if all(r.id != rep.id for r in self.replicas):
            self.replicas.append(rep)

    def settle(self) -> None:
        """Charge every token generated up to now; drop finished requests (refunding unused
        predicted tokens)."""
        for rep in self.replicas:
            rep.sync()
        w_q = self.params.output_price
        done = []
        counters = self.counters
        for rid, ch in self.inflight.items():
            v = ch.view
            out = v.num_output_tokens
            extra = out - ch.predicted
            if extra > ch.charged:
                counters[ch.client] += (extra - ch.charged) * w_q * ch.out_scale
                ch.charged = extra
            if v.state >= State.FINISHED:
                if extra < 0:
                    counters[ch.client] += extra * w_q * ch.out_scale
                done.append(rid)
                if v.state == State.FINISHED:
                    self.finished(v)
        for rid in done:
            del self.inflight[rid]

    def counter(self, client: str) -> float:
        return self.counters.setdefault(client, 0.0)

    def lifted(self, client: str) -> float:
        """``client``'s counter as its next arrival would see it (after the lift rule)."""
        c = self.counters.get(client, 0.0)
        if self.queued.get(client, 0):
            return c
        low = min((self.counters[k] for k, q in self.queued.items() if q and k != client), default=c)
        return max(c, low)

    def arrive(self, rep: ReplicaView, req: RequestView, client: str) -> None:
        """``req`` of ``client`` is queued at ``rep``: lift the counter if the client had none queued."""
        per = self.queued_tokens.setdefault(rep.id, {})
        per[client] = per.get(client, 0) + req.input_tokens
        n = self.queued.get(client, 0)
        self.queued[client] = n + 1
        self.counter(client)  # a new client starts at 0
        if n:
            return
        fresh, self.fresh_for = self.fresh_for == req.id, None
        others = [k for k, q in self.queued.items() if q and k != client]
        if not others:
            return
        if not fresh:  # the router settled them for this very arrival: nothing has run since
            self.settle()
        low = min(self.counters[k] for k in others)
        if low > self.counters[client]:  # compared once settled: its own running requests count too
            self.counters[client] = low

    def leave(self, rep: ReplicaView, req: RequestView, client: str) -> None:
        """Queued ``req`` of ``client`` at ``rep`` was admitted or dropped."""
        self.queued[client] -= 1
        self.queued_tokens[rep.id][client] -= req.input_tokens

    def admitted(self, req: RequestView, client: str, predicted: int) -> None:
        """Charge ``req``'s prompt (and its predicted output) and follow its generated tokens."""
        p = self.params
        s_in, s_out = self.scales(req, client)
        self.counters[client] = self.counter(client) + (req.input_tokens * p.input_price * s_in
                                                        + predicted * p.output_price * s_out)
        self.inflight[req.id] = _Charge(req, client, predicted, 0, s_out)


def pool_state_key(pool: str) -> str:
    """The shared-state key of a pool's VTC counters."""
    return f"vtc:{pool}"


ROUTER_KEY = "vtc_router"  # set in the shared state by the vtc router: share counters per pool


@SCHEDULERS.register("vtc")
class VTCScheduler(SchedulerBase):
    """Running requests first (vLLM v1); new requests by the smallest client counter."""

    Params = VTCParams
    State = VTCState

    def __init__(self, params: VTCParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        if params.length_predicted:
            where = f"{ctx.where}.length_predicted" if ctx.where else "length_predicted"
            ctx.require_predictor("length-predicted VTC", where=where)
        self._state: VTCState | None = None
        self.queues: dict[str, deque[RequestView]] = {}  # this replica's never-admitted requests, per client
        self._bound = False  # its replica is registered with the state

    @property
    def state(self) -> VTCState:
        """The counters: the pool's (with the vtc router) or this replica's own."""
        if self._state is None:
            ctx = self.ctx
            if ROUTER_KEY in ctx.shared and ctx.pool is not None:
                self._state = ctx.shared_state(pool_state_key(ctx.pool.name), lambda: self.State(self.params))
            else:
                self._state = self.State(self.params)
        return self._state

    # ------------------------------------------------------------------ arrivals
    def on_enqueue(self, rep: ReplicaView, req: RequestView) -> None:
        """A request was routed here: queue it under its client and apply the lift rule."""
        if req.first_scheduled_s is not None:
            return  # admitted (and charged) before, elsewhere: it resumes first, as a preempted one
        state = self.state
        if not self._bound:
            state.add_replica(rep)
            self._bound = True
        client = req.client if req.client is not None else ANON
        q = self.queues.get(client)
        if q is None:
            q = self.queues[client] = deque()
        q.append(req)
        state.arrive(rep, req, client)

    def _head(self, rep: ReplicaView, client: str) -> RequestView | None:
        """The oldest still-waiting never-admitted request of ``client`` here (drops stale ones)."""
        q = self.queues[client]
        while q:
            r = q[0]
            if r.state == State.QUEUED and r.replica == rep.id:
                return r
            q.popleft()  # it left the queue another way (rejected, moved)
            self.state.leave(rep, r, client)
        return None

    # ------------------------------------------------------------------ plans
    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        plan = StepPlan()
        budget = p.max_num_batched_tokens
        used, preempted = self.schedule_running(rep, plan, budget)
        if preempted or not rep.waiting:
            return plan
        if rep.waiting[0].first_scheduled_s is not None:  # preempted (charged already): resume first, as vLLM
            more, left = self.admit_waiting(rep, plan, budget - used, max_seqs=p.max_num_seqs,
                                            candidates=lambda: self._preempted(rep), whole=p.whole_prompt)
            used += more
            if left:
                return plan
        self._admit_new(rep, plan, budget - used)
        return plan

    @staticmethod
    def _preempted(rep: ReplicaView):
        if rep.waiting and rep.waiting[0].first_scheduled_s is not None:
            yield rep.waiting[0]

    def _admit_new(self, rep: ReplicaOps, plan: StepPlan, budget: int) -> None:
        """Admit never-admitted requests, smallest counter first, while everything fits."""
        p = self.params
        state = self.state
        if not self._bound:
            state.add_replica(rep)
            self._bound = True
        used = 0
        predictor = self.ctx.predictor if p.length_predicted else None
        heads = {}
        for client, q in self.queues.items():
            if q:
                h = self._head(rep, client)
                if h is not None:
                    heads[client] = h
        if len(heads) > 1:  # the order depends on the counters: bring them up to now
            state.settle()
        while heads:
            if (used >= budget and not p.whole_prompt) or rep.num_running >= p.max_num_seqs:
                return
            if len(heads) == 1:
                client = next(iter(heads))
            else:
                client = min(heads, key=lambda k: (state.counter(k), heads[k].arrival_s, heads[k].id))
            req = heads[client]
            if rep.kv.never_fits(req):
                rep.reject(req, "exceeds_kv_capacity")
            else:
                n = rep.admit(req, budget - used, whole=p.whole_prompt)
                if n is None:
                    return
                plan.add_prefill(req, n)
                used += n
                state.admitted(req, client, predictor.predict(req) if predictor is not None else 0)
            self.queues[client].popleft()
            state.leave(rep, req, client)
            h = self._head(rep, client)
            if h is None:
                del heads[client]
            else:
                heads[client] = h

    @classmethod
    def example_config(cls) -> dict:
        """VTC on one replica under load, eight clients, one sending half the requests."""
        from sim.tools.gates import scheduler_default

        data = scheduler_default("vtc")
        data["workload"]["transforms"] = [
            {"name": "assign_clients", "num_clients": 8, "weights": [7, 1, 1, 1, 1, 1, 1, 1]}]
        return data
