"""CacheOPT's scheduler: reserve predicted KV demand, reuse others' reservations, preempt wisely.

Shen, Sen and Tanaka, "Mitigating KV Cache Competition to Enhance User Experience in LLM
Inference" (2025), on chunked prefill under one token budget (vLLM v1's step shape). Paired
with the ``cacheopt`` KV manager, whose reservations it sets (``rep.kv.policy_api``). Per step:

1. *Proactive extension*: a running request whose KV will outgrow its reservation within
   ``extend_iterations`` (2) iterations gets ``extend_blocks`` more, from the unreserved
   blocks, else from the global reserve (``kv.global_reserve_blocks``, 8).
2. Running requests are scheduled as vLLM v1 does; when a block cannot be had a victim is
   preempted: loosest TBT SLO first (``tpot_slo_s``; none = loosest), then the longest
   predicted remaining output, then the fewest KV blocks; by the cheaper of swap (out and
   back in: 2 x ``swap_copy_time_s`` of its blocks, per-call overheads included) and
   recompute (prefill of prompt + generated tokens), unless ``preemption`` forces one.
3. Swapped requests come back first (FCFS) while they fit the unreserved blocks.
4. Waiting requests are admitted in order with reservation = prompt + predicted output +
   padding ``t = R sqrt(ln(1/delta) / 2)`` (Hoeffding), ``delta = 1 - p``. When the
   reservation does not fit the unreserved blocks (less the global reserve), the request may
   run inside a running request's unused reservation if that spare holds its reservation plus
   what the lender will grow while the borrower runs (its predicted output, one token per
   iteration); the best-fitting lender is used. Otherwise the queue waits (FCFS).

Unknown details, parameters here: ``p`` falls with the arrival rate as
``p = p_max / (1 + rate_coeff * lambda)`` (lambda: this replica's arrivals per second over
``rate_window_s``; one reimplementation's rule, the paper's exact rule is not given); ``R``
is the range of the predictor's error, not of the whole output distribution (which would pad
past the longest output): ``range_quantile``'s central interval of the relative errors of the
requests seen finishing here, times the prediction (``range_ratio`` until
``range_min_samples`` were seen; ``range_tokens`` fixes it), so the oracle pads nothing; the
extension size; FCFS order of the waiting queue.

The output length comes from ``ctx.predictor`` (``cluster.predictor``) or, with
``oracle: true``, the true length.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.states import State
from sim.engine.views import RequestView
from sim.errors import ConfigError
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class CacheOptParams:
    """CacheOPT's knobs; defaults from the paper where it gives them, else the reimplementation's."""

    max_num_batched_tokens: int = param(2048, ge=1, doc="token budget per step (decodes + prefill chunks)")
    max_num_seqs: int = param(256, ge=1, doc="most sequences in a batch")
    p_max: float = param(0.95, gt=0, lt=1, doc="confidence that the padded reservation covers the output, at low rate")
    rate_coeff: float = param(0.001, ge=0, doc="p = p_max / (1 + rate_coeff * arrivals per second)")
    rate_window_s: float = param(60.0, gt=0, doc="window of the arrival-rate estimate")
    range_ratio: float = param(0.5, ge=0, doc="R / prediction before range_min_samples outputs were seen")
    range_quantile: float = param(0.9, gt=0, lt=1, doc="R / prediction = width of this central interval "
                                  "of the observed relative errors (actual / predicted - 1)")
    range_min_samples: int = param(20, ge=1, doc="finished requests seen before R is measured")
    range_window: int = param(500, ge=1, doc="most recent finished requests R is measured over")
    range_refresh: int = param(25, ge=1, doc="R is measured again after this many more finish")
    range_tokens: int | None = param(None, ge=0, doc="fixed R in tokens instead (overrides the above)")
    extend_iterations: int = param(2, ge=0, doc="extend a reservation this many iterations before it runs out")
    extend_blocks: int | None = param(None, ge=1, doc="blocks per extension (default: the request's padding)")
    reuse: bool = param(True, doc="run waiting requests inside running requests' unused reservations")
    preemption: Literal["auto", "swap", "recompute"] = param("auto", doc="auto: the cheaper of swap and recompute")
    oracle: bool = param(False, doc="reserve by the true output length instead of the predictor")
    order: Order = order_param()


@SCHEDULERS.register("cacheopt")
class CacheOptScheduler(SchedulerBase):
    """Reservation-based admission with lending, proactive extension and cost-aware preemption."""

    Params = CacheOptParams
    supports_swap = True

    def __init__(self, params: CacheOptParams, ctx):
        super().__init__(params, ctx)
        if not params.oracle:
            ctx.require_predictor("cacheopt", " (or oracle: true on the scheduler)")
        self._pred: dict[int, int] = {}         # request id -> predicted output tokens
        self._live: dict[int, RequestView] = {}  # admitted here, not yet seen finished
        self._errors: deque[float] = deque(maxlen=params.range_window)  # actual / predicted - 1
        self._range_ratio = params.range_ratio
        self._num_errors = 0                    # predictions checked so far
        self._next_range = 0                    # measure R again once this many were checked
        self._arrivals: deque[float] = deque()  # arrival times seen here, within the window
        self._seen_id = -1                      # newest request id noted in _arrivals
        self.num_borrowed = 0
        self.num_swap_preemptions = 0
        self.num_recompute_preemptions = 0

    # ------------------------------------------------------------------ estimates
    def predicted(self, req: RequestView) -> int:
        """Predicted total output tokens of ``req`` (stable per request)."""
        n = self._pred.get(req.id)
        if n is None:
            n = self.ctx.output_tokens(req) if self.params.oracle else self.ctx.predictor.predict(req)
            n = self._pred[req.id] = max(1, int(n))
        return n

    def confidence(self) -> float:
        """p after the arrival-rate adjustment."""
        a = self._arrivals
        rate = (len(a) - 1) / (a[-1] - a[0]) if len(a) > 1 and a[-1] > a[0] else 0.0
        return self.params.p_max / (1.0 + self.params.rate_coeff * rate)

    def _note_finished(self) -> None:
        """Relative errors of the predictions of requests that finished (their length is known
        then), and R / prediction from them."""
        done = [i for i, r in self._live.items() if r.state >= State.FINISHED]
        if not done:
            return
        for i in done:
            r = self._live.pop(i)
            pred = self._pred.pop(i, None)
            if pred and r.state == State.FINISHED:
                self._errors.append(r.num_output_tokens / pred - 1.0)
                self._num_errors += 1
        p = self.params
        if self._num_errors >= p.range_min_samples and self._num_errors >= self._next_range:
            self._next_range = self._num_errors + p.range_refresh
            lo, hi = np.quantile(np.fromiter(self._errors, float), [(1 - p.range_quantile) / 2,
                                                                      (1 + p.range_quantile) / 2])
            self._range_ratio = float(hi - lo)

    def padding_tokens(self, predicted: int) -> int:
        """Hoeffding padding t = R sqrt(ln(1/delta)/2), delta = 1 - p."""
        p = self.params
        r = p.range_tokens if p.range_tokens is not None else self._range_ratio * predicted
        delta = 1.0 - self.confidence()
        return int(math.ceil(r * math.sqrt(math.log(1.0 / delta) / 2.0)))

    def _note_arrivals(self, rep: ReplicaOps) -> None:
        """Arrival times of the requests new in the queue (ids grow with arrival: the newest are
        at its back)."""
        a, window = self._arrivals, self.params.rate_window_s
        waiting = rep.waiting
        new = []
        for i in range(len(waiting) - 1, -1, -1):
            r = waiting[i]
            if r.id <= self._seen_id:
                break
            new.append(r.arrival_s)
        if new:
            self._seen_id = waiting[len(waiting) - 1].id
            a.extend(reversed(new))
        while a and a[-1] - a[0] > window:
            a.popleft()

    def reservation_tokens(self, req: RequestView) -> int:
        pred = self.predicted(req)
        out = max(pred, req.num_output_tokens + 1)
        return req.input_tokens + out + self.padding_tokens(pred)

    # ------------------------------------------------------------------ preemption
    def _victim_key(self, req: RequestView) -> tuple:
        tbt = req.tpot_slo_s if req.tpot_slo_s is not None else math.inf
        remaining = self.predicted(req) - req.num_output_tokens
        return (-tbt, -remaining, req.kv_blocks, -req.id)

    def preempt_mode(self, rep: ReplicaOps, req: RequestView) -> str:
        """The cheaper of swap (out and in) and recompute for ``req`` now."""
        if self.params.preemption != "auto":
            return self.params.preemption
        cm = rep.cost_model
        blocks = rep.kv.blocks_for(req.num_computed_tokens)
        swap_s = 2.0 * cm.swap_copy_time_s(blocks * rep.kv.bytes_per_block, blocks)
        recompute_s = cm.prefill_time_s(req.context_tokens)
        return "swap" if swap_s < recompute_s else "recompute"

    def _preempt_for(self, rep: ReplicaOps, req: RequestView, k: int, plan: StepPlan, gone: set) -> bool:
        """Grow ``req`` by ``k`` tokens, preempting victims in CacheOPT's order; False if ``req``
        itself went."""
        while rep.grow(req, k) is None:
            victim = min(rep.running, key=self._victim_key)
            mode = self.preempt_mode(rep, victim)
            rep.preempt(victim, mode)
            if mode == "swap":
                self.num_swap_preemptions += 1
            else:
                self.num_recompute_preemptions += 1
            plan.remove(victim)
            gone.add(victim)
            if victim == req:
                return False
        return True

    # ------------------------------------------------------------------ the step
    def schedule(self, rep: ReplicaOps) -> StepPlan:
        p = self.params
        api = rep.kv.policy_api
        if api is None or not hasattr(api, "lend"):
            where = self.ctx.where.rsplit(".scheduler", 1)[0] if ".scheduler" in self.ctx.where else "cluster.pools[]"
            raise ConfigError("the cacheopt scheduler needs the cacheopt KV manager", f"{where}.kv.name")
        self._note_arrivals(rep)
        self._note_finished()
        plan = StepPlan()
        budget = p.max_num_batched_tokens
        self._extend(rep, api)
        used, preempted = self._run(rep, plan, budget)
        if preempted:
            return plan
        used = self._swap_in(rep, api, plan, used)
        if not rep.swapped:
            self._admit(rep, api, plan, budget - used)
        return plan

    def _extend(self, rep: ReplicaOps, api) -> None:
        ahead = self.params.extend_iterations
        bs = rep.kv.block_size
        for r in rep.running:
            own = api.reservation(r)
            need = -(-(r.num_computed_tokens + (r.remaining_prefill_tokens if not r.is_decoding else 0) + ahead)
                     // bs)
            if need <= own:
                continue
            step = self.params.extend_blocks or max(1, -(-self.padding_tokens(self.predicted(r)) // bs))
            step = max(step, need - own)
            if not api.extend(r, step, use_global=False):
                api.extend(r, need - own, use_global=True)

    def _run(self, rep: ReplicaOps, plan: StepPlan, budget: int) -> tuple[int, bool]:
        used = 0
        preempted = False
        gone: set = set()
        for req in rep.running_now():
            if req in gone:
                continue
            if req.is_decoding:
                k = 1
            else:
                if used >= budget:
                    break
                k = min(req.remaining_prefill_tokens, budget - used)
            if used + k > budget:
                break
            if rep.grow(req, k) is None:
                preempted = True
                if not self._preempt_for(rep, req, k, plan, gone):
                    continue
            if req.is_decoding:
                plan.add_decode(req)
            else:
                plan.add_prefill(req, k)
            used += k
        return used, preempted

    def _swap_in(self, rep: ReplicaOps, api, plan: StepPlan, used: int) -> int:
        while rep.swapped and rep.num_running < self.params.max_num_seqs:
            req = rep.swapped[0]
            want = rep.kv.blocks_for(self.reservation_tokens(req))
            if want > api.unreserved() - api.global_reserve_blocks:
                break
            if not rep.swap_in(req, api.unused_reserved() + api.global_reserve_blocks):
                break
            api.reserve(req, want)
            if req.is_decoding:
                plan.add_decode(req)
                used += 1
            else:
                plan.add_prefill(req, req.remaining_prefill_tokens)
                used += req.remaining_prefill_tokens
        return used

    def _admit(self, rep: ReplicaOps, api, plan: StepPlan, budget: int) -> None:
        p = self.params
        kv = rep.kv
        g = api.global_reserve_blocks
        unused = -1  # blocks promised and not yet taken, computed once, then kept up to date
        while rep.waiting and budget > 0 and rep.num_running < p.max_num_seqs:
            req = self.peek(rep)
            if kv.never_fits(req, g):
                rep.reject(req, "exceeds_kv_capacity")
                continue
            if unused < 0:
                unused = api.unused_reserved()
            want = min(kv.blocks_for(self.reservation_tokens(req)), kv.num_blocks - g)
            lender = None
            if want > kv.num_free_blocks - unused - g:
                if not p.reuse:
                    return
                lender = self._lender(rep, api, req, want)
                if lender is None:
                    return
            n = rep.admit(req, budget, reserve_blocks=g if lender is not None else unused + g)
            if n is None:
                return
            self._live[req.id] = req
            if lender is None:
                api.reserve(req, want)
            else:
                api.lend(lender, req, want)
                unused -= want
                self.num_borrowed += 1
            unused += api.spare(req)
            plan.add_prefill(req, n)
            budget -= n

    def _lender(self, rep: ReplicaOps, api, req: RequestView, want: int):
        """The running request whose spare reservation best fits ``req``'s reservation plus its
        own growth while ``req`` runs; None if none has room."""
        grow = rep.kv.blocks_for(max(1, self.predicted(req) - req.num_output_tokens))
        best, best_spare = None, None
        for r in rep.running:
            spare = api.spare(r)
            if spare >= want + grow and (best_spare is None or spare < best_spare):
                best, best_spare = r, spare
        return best

    @classmethod
    def example_config(cls) -> dict:
        """CacheOPT on its KV manager (the scheduler default's small KV), lognormal predictor error 0.5."""
        return {"cluster.predictor": {"name": "noisy", "sigma": 0.5},
                "cluster.pools[0].scheduler": {"name": "cacheopt"},
                "cluster.pools[0].kv": {"name": "cacheopt", "block_size": 16, "num_blocks": 800}}
