"""A model replica: queues, a KV manager, a scheduler, a cost model and its iteration loop.

One SimPy process per replica runs::

    while work exists:
        plan = scheduler.schedule(replica.ops)   # admit, chunk, preempt through named operations
        k_i = speculator.propose(...)            # draft tokens per decode, if the pool speculates
        step_s = cost_model(plan) + drafts + swap copies
        wait until now + step_s                  # one event per iteration ...
        apply(plan)                              # accepted + 1 tokens out, prefills done, finishes

Fast path: when the waiting and swapped queues are empty, every running request decodes and
the scheduler declares ``fast_forward_safe``, the next iterations are fixed until the first
request finishes, a KV block cannot be had, or a new request arrives. The replica then plans
a *stretch* of n iterations with their exact end times and waits once. An arrival mid-stretch
truncates it after the iteration in progress; ``sync()`` brings tokens and KV up to ``now``
for anyone who looks in between. Results equal stepping one iteration at a time (tested).
``at_next_boundary(fn)`` runs ``fn`` between two iterations (a running request leaving for
another replica), cutting a stretch the same way.

Layer cuts: a plan marked ``preemptible`` is priced as ``num_layers`` equal layer slices.
When new work arrives meanwhile (``wake``) and ``scheduler.wants_cut(view)`` is true, the
iteration is cut at the next layer boundary; the plan (its requests taken out of
``running``, KV kept) waits in ``paused`` with ``done_layers`` finished, and resumes, paying
only the remaining layers, once ``scheduler.may_resume(view)`` allows (default: at once)::

    |L1|L2|L3|L4|L5|...         short arrives in L3: cut at the end of L3
    |L1|L2|L3| short prefills |L4|L5|...|Ln| -> tokens of the paused batch out here

Holds (sequence-parallel gangs): a plan with ``hold`` = helper replicas first gathers them
(each finishes its iteration in progress and, when its own ``may_resume`` allows, holds),
then runs; the helpers stay held, doing nothing else, until the iteration ends or is cut.
Work arriving at a held helper may cut the whole gang. The lead holds the plan's KV.

Speculation: with a speculator, each decode of a plan proposes ``k`` draft tokens; the
verify pass is priced with ``k + 1`` tokens per request plus the speculator's draft time;
acceptance is drawn per proposed token from the request's acceptance rate (the first
rejection ends it), the request emits accepted + 1 tokens, and KV reserved for the
rejected slots is released.

Every request-count the routers read is kept incrementally: ``num_pending_prefill_tokens``
(prompt tokens queued or mid-prefill) changes only in the operations below.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.engine.blocked_stretch import blocked_decode, blocked_decode_of
from sim.engine.clock import at
from sim.engine.fast_path import _NO_LIMIT, DecodeStretchMixin
from sim.engine.lifecycle import ReplicaLifecycleMixin
from sim.engine.mixed_plan import mixed_budget_of, mixed_last_of, mixed_plan
from sim.engine.mixed_stretch import MixedStretchMixin
from sim.engine.ops import ReplicaOps
from sim.engine.pausable import PausableMixin
from sim.engine.plan import StepPlan
from sim.engine.queue_ops import SchedulerOpsMixin
from sim.engine.request import Request, State
from sim.engine.speculation import SpeculationMixin
from sim.engine.thru_finish import ThroughFinishMixin
from sim.engine.views import ReplicaView

if TYPE_CHECKING:
    from sim.engine.recorder import Recorder

DEFAULT_NUM_LAYERS = 32  # layer slices of a pausable iteration when the cost model names none


def cost_model_layers(cost_model: Any) -> int:
    """Layers of the model a cost model prices: its ``num_layers``, its model's, or 32."""
    n = getattr(cost_model, "num_layers", None)
    if n is None:
        n = getattr(getattr(cost_model, "model", None), "num_layers", None)
    return int(n) if n else DEFAULT_NUM_LAYERS


class Replica(SchedulerOpsMixin, SpeculationMixin, MixedStretchMixin, DecodeStretchMixin, PausableMixin,
              ReplicaLifecycleMixin, ThroughFinishMixin):
    """One model instance (one or more GPUs) with its queues and iteration loop."""

    def __init__(
        self,
        env: simpy.Environment,
        replica_id: int,
        pool: str,
        role: str,
        scheduler: Any,
        kv: Any,
        cost_model: Any,
        recorder: Recorder,
        fast_forward: bool = True,
        speculator: Any = None,
        accept_rng: np.random.Generator | None = None,
        hardware: Any = None,
    ):
        self.env = env
        self.id = replica_id
        self.pool = pool
        self.role = role
        self.scheduler = scheduler
        self.kv = kv
        self.cost_model = cost_model
        self.hardware = hardware
        self.recorder = recorder
        self.speculator = speculator
        # the draft model's prefill of a plan's prompt chunks (a plug-in speculator may not price it)
        self._draft_prefill = getattr(speculator, "draft_prefill_time_s", None)
        self.accept_rng = accept_rng
        self.fast_forward = fast_forward and getattr(scheduler, "fast_forward_safe", False) and speculator is None
        # the replica forms a pure-decode plan itself (``_decode_all``: the scheduler's, by its promise),
        # kept where stretches are off because iterations depend on more than the batch (streamed weights)
        self.fast_plan = self.fast_forward
        # speculative stretches (sim/engine/spec_stretch.py): the same premise, with a speculator
        self.spec_fast_forward = fast_forward and getattr(scheduler, "fast_forward_safe", False) \
            and speculator is not None
        self.waiting: deque[Request] = deque()   # QUEUED / PREEMPTED, front runs first
        self.running: list[Request] = []         # admitted, in admission order
        self.swapped: deque[Request] = deque()   # KV in host memory
        self.num_outstanding = 0                 # assigned here and not yet done
        self.load_index = None  # the router's index of outstanding counts holding this replica, told of each change
        self.num_pending_prefill_tokens = 0      # prompt tokens queued or mid-prefill (incremental)
        self.max_tokens = kv.max_tokens
        self.attention_saved_tokens = getattr(kv, "attention_saved_tokens", None)  # (decode requests) -> tokens
        self.pending_swap_bytes = 0
        self.pending_swap_blocks = 0             # paged blocks in those bytes (per-call overheads)
        self.lifecycle = "active"                # starting | active | draining | removed
        self.start_s = env.now                   # when it started (its GPUs are billed from here)
        self.end_s: float | None = None          # when it was removed
        # callbacks set by the cluster
        self.on_done = None       # (request) -> None, after finish or reject
        self.on_prefilled = None  # (replica, request) -> bool: True if the request moved away
        # statistics
        self.num_steps = 0
        self.busy_prefill_s = 0.0
        self.busy_decode_s = 0.0
        self.batch_size_sum = 0
        self.spec_steps = 0       # decode request-steps that speculated
        self.spec_proposed = 0
        self.spec_accepted = 0
        self.spec_emitted = 0
        self.spec_decode_steps = 0  # decode request-steps of speculative plans (k = 0 included)
        self.spec_draft_s = 0.0     # draft time of speculative steps
        self.spec_step_s = 0.0      # whole time of speculative steps
        # id -> [decode steps, speculating steps, proposed, accepted, emitted]
        self.spec_by_request: dict[int, list[int]] = {}
        # stretch state (fast path)
        self._idle: simpy.Event | None = None
        self._st_reqs: list[Request] | None = None
        self._st_ends_list: list[float] = []
        self._st_ends_arr: np.ndarray | None = None  # the same end times as an array (long stretches)
        self._st_pre: tuple | None = None        # (decode list, context, fewest tokens left) from _decode_all
        self._st_last = 0
        self._st_done = 0
        self._st_alloc = 0
        self.arrival_bound = None  # () -> time before which no new arrival reaches here, or None (cluster)
        self._st_step_s = 0.0      # the last decode step time priced for a bounded stretch
        self._thru = None          # a stretch's finishes still to apply (sim/engine/thru_finish.py)
        self._thru_b = _NO_LIMIT   # the iteration its next one ends
        self.thru_alone = None     # nothing but arrivals reads this replica (set by the cluster at start)
        self._mixed_budget = mixed_budget_of(scheduler)  # mixed iterations' fast plan (mixed_plan.py)
        self._mixed_last = mixed_last_of(scheduler)      # ... only while the prompt is the last running
        # decode stretches with a blocked queue (blocked_stretch.py): the scheduler's promise and the KV's answer
        self.blocked_fast_forward = self.fast_forward and blocked_decode_of(scheduler, kv)
        # layer cuts and holds
        self.num_layers = cost_model_layers(cost_model)
        self.paused: StepPlan | None = None      # a cut plan waiting to resume here
        self.num_cuts = 0                        # iterations cut at a layer boundary
        self.hold_request: Replica | None = None  # a gang lead waiting to hold this replica
        self.held_by: Replica | None = None      # the lead holding this replica now
        self._barrier: simpy.Event | None = None  # succeeds when this replica starts holding
        self._held: simpy.Event | None = None     # succeeds when the lead lets go
        self._cur: StepPlan | None = None         # cuttable iteration (or gathering) in progress
        self._cur_start = 0.0
        self._cur_layer_s = 0.0
        self._cur_layers_left = 0
        self._cut_layers = 0
        self._cut_end: float | None = None
        self._gathering = False
        self._interrupt_pending = False
        self.view = ReplicaView(self)
        self.ops = ReplicaOps(self)
        self._on_enqueue = getattr(scheduler, "on_enqueue", None)  # optional: (replica view, request view)
        self._at_boundary: list = []              # callbacks for the next iteration boundary
        self.held_pool: Any = None                # a pool part of every iteration runs on (attention)
        self.step_hook = None     # (plan) -> event | None, before each iteration is priced
        self.step_wait = None     # an event the iteration in progress also waits for
        self.process = env.process(self._loop())

    # ------------------------------------------------------------------ engine-side reads
    @property
    def num_waiting(self) -> int:
        return len(self.waiting) + len(self.swapped)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def sync_kv(self) -> None:
        """The KV of the stretch in progress up to now (the stretch mixins' ``sync_kv``): a decode
        stretch's own at once, without the speculative and mixed stretches' checks on the way.

        Views call this for every KV read mid-stretch (a router asks each replica), and most
        such reads find the iteration in progress holding its KV already: for a decode or a
        mixed stretch (not a speculative one, whose ``sync_kv`` is ``sync()``) that answer is
        ``_alloc_due``'s first test, made here before any call (both mixins return on it)."""
        if self._spec is None:
            held = self._st_alloc
            if self._st_reqs is None or held >= self._st_last or self._st_ends_list[held - 1] >= self.env._now:
                return  # no stretch, or ``_alloc_due()`` is 0: nothing to take
            if self._mx is None:
                DecodeStretchMixin.sync_kv(self)
                return
        super().sync_kv()

    def kv_used_bounds(self) -> tuple[int, int]:
        """(lo, hi): the KV blocks in use now (``sync_kv`` then ``kv.num_used``) lie in [lo, hi],
        found without bringing a stretch in progress up to now where that is cheap: with no
        stretch, or a decode stretch whose KV is up to date, lo == hi exactly; a decode stretch
        (not through finishes) under a KV manager that allocates by target holds ``kv.num_used``
        now and takes at most ceil(d / block size) more blocks per request by the iteration in
        progress, d iterations past those it holds (each request's blocks follow its tokens);
        any other stretch is synced (exact). For a policy that compares a load with a threshold:
        not reading the KV leaves the replica as it is (a stretch takes its blocks when it is
        next synced or ends, as when nobody looks)."""
        kv = self.kv
        reqs = self._st_reqs
        if reqs is not None:
            if self._spec is None and self._mx is None and self._thru is None \
                    and getattr(kv, "allocates_by_target", False):
                used = kv.num_used
                held, last, ends = self._st_alloc, self._st_last, self._st_ends_list  # ``_alloc_due``, inlined
                if held >= last or ends[held - 1] >= self.env._now:
                    return used, used
                alloc = min(bisect_left(ends, self.env._now, 0, last) + 1, last)
                return used, used + len(reqs) * -(-(alloc - held) // kv.block_size)
            self.sync_kv()
        used = kv.num_used
        return used, used

    def _advance(self, done: int, alloc: int) -> None:
        """The stretch mixins' ``_advance``: a decode stretch's own at once, as ``sync_kv``."""
        if self._spec is None and self._mx is None:
            DecodeStretchMixin._advance(self, done, alloc)
        else:
            super()._advance(done, alloc)

    def pending_prefill_tokens_recount(self) -> int:
        """``num_pending_prefill_tokens`` recomputed from the queues (tests check they agree)."""
        total = 0
        for r in self.waiting:
            total += r.remaining_prefill_tokens
        for r in self.running:
            if r.state == State.PREFILL:
                total += r.remaining_prefill_tokens
        if self.paused is not None:
            for r, _n in self.paused.prefill:
                total += r.remaining_prefill_tokens
        return total

    def fits(self, req: Request) -> bool:
        """Whether ``req`` (prompt and whole output) can ever fit this replica's KV cache."""
        return req.input_tokens + req.output_tokens <= self.max_tokens

    @property
    def is_empty(self) -> bool:
        """Nothing assigned, running, paused or held here."""
        models = getattr(self, "models", None)  # multi-model replicas: requests waiting for a switch
        return not (self.num_outstanding or self.waiting or self.running or self.swapped
                    or self.paused is not None or self.hold_request is not None or self.held_by is not None
                    or (models is not None and models.queue))

    # ------------------------------------------------------------------ cluster-side operations
    def enqueue(self, req: Request, reason: str | None = None) -> None:
        """Accept a routed request (or, with ``reason``, one moved here to be recomputed, e.g.
        ``migrated``); it is considered at the next iteration boundary."""
        req.replica = self.id
        req.pool = self.pool
        self.recorder.visit_open(req, self, reason or ("prefill" if self.role == "prefill" else "serve"))
        req.state = State.QUEUED if reason is None else State.PREEMPTED
        self.waiting.append(req)
        self.num_outstanding += 1
        if self.load_index is not None:  # sim/engine/load_index.py
            self.load_index.moved(self)
        self.num_pending_prefill_tokens += req.remaining_prefill_tokens
        if self._on_enqueue is not None:
            self._on_enqueue(self.view, req.view)
        self.wake(True)

    def wake(self, queued: bool = False) -> None:
        """New work: start the loop if idle, end a stretch after the iteration in progress, or
        (if the scheduler wants to) cut a layer-cuttable iteration at its next layer boundary.
        ``queued``: the work is a request put on the waiting queue (``enqueue``), which nothing
        reads before the stretch ends, so a decode stretch is cut without a sync (``cut_stretch``)."""
        if self._idle is not None:
            if not (self.waiting or self.running or self.swapped or self.hold_request is not None):
                return  # only KV was reserved: nothing to run yet
            idle, self._idle = self._idle, None
            idle.succeed()
        elif self._st_reqs is not None:
            self.cut_stretch(queued)
        elif self._cur is not None:
            if self.scheduler.wants_cut(self.view):
                self.request_cut()
        elif self.held_by is not None:
            if self.scheduler.wants_cut(self.view):
                self.held_by.request_cut()

    def detach(self, req: Request, left: str = "handed_off") -> Any:
        """Take ``req`` off this replica for a move elsewhere (``left``: handed_off or migrated); its
        KV stays allocated here until the caller frees the returned handle with ``kv.free_detached``
        (after the copy). A running request leaves only at an iteration boundary (a hand-off's
        ``on_prefilled`` or ``at_next_boundary``), never mid-batch."""
        self.sync()
        if req in self.running:
            self.running.remove(req)
            if req.state == State.PREFILL:
                self.num_pending_prefill_tokens -= req.remaining_prefill_tokens
        elif req in self.waiting:
            self.waiting.remove(req)
            self.num_pending_prefill_tokens -= req.remaining_prefill_tokens
            if self._st_reqs is not None:  # a blocked queue's stretch: the queue it runs on changed
                self.cut_stretch()
        handle = self.kv.detach(req)
        req.state = State.MIGRATING
        self.num_outstanding -= 1
        if self.load_index is not None:  # sim/engine/load_index.py
            self.load_index.moved(self)
        self.recorder.visit_close(req, left, self.env.now)
        return handle

    def reserve_kv(self, req: Request, num_tokens: int) -> bool:
        """Allocate KV here for a request that is not (yet) on this replica, e.g. the target of
        a KV copy. Ends a fast-forward stretch first so its planned allocations stay valid."""
        self.wake()
        return self.kv.allocate(req, num_tokens) is not None

    def attach_running(self, req: Request, reason: str = "decode") -> None:
        """Adopt a request whose KV was already allocated here (a finished KV copy; ``reason``:
        decode for a hand-off, migrated for a migration)."""
        req.replica = self.id
        req.pool = self.pool
        self.recorder.visit_open(req, self, reason)
        req.state = State.DECODE if req.num_output_tokens > 0 and req.remaining_prefill_tokens == 1 else State.PREFILL
        if req.state == State.PREFILL:
            self.num_pending_prefill_tokens += req.remaining_prefill_tokens
        self.running.append(req)
        self.num_outstanding += 1
        if self.load_index is not None:  # sim/engine/load_index.py
            self.load_index.moved(self)
        self.wake()

    def reject(self, req: Request, reason: str) -> None:
        """Give up on ``req`` (already off its queues): it can never be served here."""
        self.kv.free(req)
        req.state = State.REJECTED
        req.reject_reason = reason
        req.finish_s = self.env.now
        self.num_outstanding -= 1
        if self.load_index is not None:  # sim/engine/load_index.py
            self.load_index.moved(self)
        self.recorder.visit_close(req, "rejected", req.finish_s)
        self.recorder.on_done(req)
        if self.on_done is not None:
            self.on_done(req)

    def at_next_boundary(self, fn: Any) -> None:
        """Call ``fn()`` when the iteration in progress ends, before the next is planned (at once
        when the replica is idle), so a running request can leave without tearing a batch. A
        fast-forward stretch is cut after its iteration in progress."""
        if self._idle is not None:
            fn()
            return
        self._at_boundary.append(fn)
        if self._st_reqs is not None:
            self.cut_stretch()

    def _run_at_boundary(self) -> None:
        calls, self._at_boundary = self._at_boundary, []
        for fn in calls:
            fn()

    # ------------------------------------------------------------------ the loop
    def _loop(self):
        env = self.env
        scheduler = self.scheduler
        while True:
            if self._at_boundary:
                self._run_at_boundary()
            if not (self.waiting or self.running or self.swapped or self.paused is not None
                    or self.hold_request is not None):
                self._idle = env.event()
                yield self._idle
                continue
            if self.hold_request is not None and scheduler.may_resume(self.view):
                yield from self._hold()
                continue
            if self.spec_fast_forward and (yield from self._spec_stretch()):
                continue
            plan = None
            if self.paused is not None and scheduler.may_resume(self.view):
                plan = self._unpause()
            elif self.fast_plan and not self.waiting and not self.swapped and self.paused is None:
                plan = self._decode_all()
                if plan is None and self._mixed_budget is not None and self.fast_forward:
                    plan = mixed_plan(self, self._mixed_budget)
            elif self._mixed_budget is not None and self.fast_forward and not self.swapped and self.paused is None:
                plan = mixed_plan(self, self._mixed_budget)  # something waits: a chunk filling the budget
            blocked = False
            if plan is None:
                if self.blocked_fast_forward and self.waiting:
                    num_waiting, num_running = len(self.waiting), len(self.running)
                    plan = scheduler.schedule(self.ops)
                    blocked = blocked_decode(self, plan, num_waiting, num_running)  # blocked_stretch.py
                else:
                    plan = scheduler.schedule(self.ops)
            if not (plan.prefill or plan.decode) and self.paused is not None:
                plan = self._unpause()  # nothing else can run: finish the paused work
            if not (plan.prefill or plan.decode):
                if self.running or self.pending_swap_bytes:
                    raise RuntimeError(f"scheduler {scheduler!r} scheduled nothing with requests running")
                if self.waiting and scheduler.holds_back(self.view):  # it waits for another replica
                    self._idle = env.event()
                    yield self._idle
                    continue
                if self.waiting:  # nothing running and the head still cannot start: never will
                    self.op_reject(self.waiting[0], "unschedulable")
                elif self.swapped:
                    self.op_reject(self.swapped[0], "unschedulable")
                continue
            if self.speculator is not None:
                if plan.decode and plan.decode_tokens is None:
                    self._speculate(plan)
                if plan.prefill and self._draft_prefill is not None:
                    self._price_draft_prefill(plan)
            if plan.preemptible or plan.hold or plan.done_layers or plan.stop_at_layer is not None:
                yield from self._run_cuttable(plan)
                continue
            if self.fast_forward and (not self.waiting or blocked) and not self.swapped and not plan.prefill \
                    and plan.decode_tokens is None and len(plan.decode) == len(self.running) \
                    and not self.pending_swap_bytes and self.paused is None and self.hold_request is None:
                if blocked:  # a blocked queue (blocked_stretch.py): one stretch, then the scheduler
                    if (yield from self._stretch(plan, True)):
                        self._decode_rest()  # drops the finished from ``running`` (None: requests wait)
                    continue
                stretch = self._thru_stretch if self.thru_alone else self._stretch
                while (yield from stretch(plan)):  # ended at finishes: the next one at once (thru_finish.py)
                    plan.decode = self._decode_rest()
                    if plan.decode is None:
                        break
                continue
            if self.held_pool is not None:
                yield from self._step_holding(plan)
                continue
            if self._mixed_budget is not None and self.fast_forward and plan.prefill \
                    and (yield from self._mixed_stretch(plan)):
                continue  # the mixed plan and the iterations after it, as one event (mixed_stretch.py)
            step_s = self._step_time(plan)
            end = env._now + step_s
            yield at(env, end)
            if self.step_wait is not None:  # the iteration also waits for a copy (streamed weights)
                wait, self.step_wait = self.step_wait, None
                if not wait.triggered:
                    start = end - step_s
                    yield wait
                    end = env.now
                    step_s = end - start
            self._account(plan, step_s)
            self._apply(plan, end)

    def hold_pool(self, held: Any) -> None:
        """Run every iteration's held part on ``held`` (sim/engine/held_pool.py); no stretches."""
        self.held_pool = held
        self.fast_forward = self.fast_plan = False

    def _step_holding(self, plan: StepPlan):
        """This replica's own part of the iteration, then the held pool's part (queued, shared)."""
        env = self.env
        start = env.now
        yield at(env, start + self._step_time(plan))
        tokens = plan.num_prefill_tokens + (len(plan.decode) if plan.decode_tokens is None
                                            else sum(plan.decode_tokens))
        if tokens:
            yield self.held_pool.request(tokens)
        end = env.now
        self._account(plan, end - start)
        self._apply(plan, end)

    def _step_time(self, plan: StepPlan) -> float:
        if self.step_hook is not None:  # e.g. weights streamed over a shared link (sim.engine.multimodel)
            self.step_wait = self.step_hook(plan)
        if plan.step_s is not None:  # priced by the scheduler (e.g. a partial-layer prefill)
            step_s = plan.step_s
            if self.pending_swap_bytes:
                step_s += self.cost_model.swap_time_s(self.pending_swap_bytes)
                self.pending_swap_bytes = 0
            return step_s
        chunks = [(n, r.num_computed_tokens) for r, n in plan.prefill] if plan.prefill else []
        decode = plan.decode
        pre, self._st_pre = self._st_pre, None
        if pre is not None and pre[0] is decode and plan.decode_tokens is None:  # ``_decode_all``'s: counted then
            num_decode_tokens = len(decode)
            context = pre[1]
        else:
            if plan.decode_tokens is None:
                num_decode_tokens = len(decode)
            elif plan.verify_tokens is not None:
                num_decode_tokens = sum(plan.verify_tokens)
            else:
                num_decode_tokens = sum(plan.decode_tokens)
            context = num_decode_tokens
            for r in decode:
                context += r.num_computed_tokens
        if self.attention_saved_tokens is not None:  # shared blocks attention does not re-read
            context -= self.attention_saved_tokens(decode)
        if not chunks and plan.decode_tokens is None:  # a pure decode: the same time, in its faster form
            verify = getattr(self.cost_model, "verify_step_time_s", None)
            step_s = self.cost_model.step_time_s(chunks, len(decode), num_decode_tokens, context) \
                if verify is None else verify(len(decode), num_decode_tokens, context)
        elif chunks or plan.decode_tokens is None:
            step_s = self.cost_model.step_time_s(chunks, len(decode), num_decode_tokens, context)
        else:  # a speculative verify pass: the same time (the seam's contract), in its faster form
            step_s = self.cost_model.verify_step_time_s(len(decode), num_decode_tokens, context)
        if plan.draft_s:
            step_s += plan.draft_s
        if self.pending_swap_bytes:
            cm = self.cost_model
            if hasattr(cm, "swap_copy_time_s"):
                step_s += cm.swap_copy_time_s(self.pending_swap_bytes, self.pending_swap_blocks)
            else:  # a plug-in cost model with only swap_time_s
                step_s += cm.swap_time_s(self.pending_swap_bytes)
            self.pending_swap_bytes = 0
            self.pending_swap_blocks = 0
        return step_s

    def _account(self, plan: StepPlan, step_s: float) -> None:
        self.num_steps += 1
        if plan.decode_tokens is not None:
            self.spec_step_s += step_s
        self.batch_size_sum += len(plan.prefill) + len(plan.decode)
        if plan.prefill:
            self.busy_prefill_s += step_s
        else:
            self.busy_decode_s += step_s
        if self.recorder.steps is not None:
            self.recorder.on_step(self, self.env.now - step_s, step_s, plan.size,
                                  plan.num_prefill_tokens, len(plan.decode))

    def _apply(self, plan: StepPlan, end: float) -> None:
        done = False
        for r, n in plan.prefill:
            r.num_computed_tokens += n
            self.num_pending_prefill_tokens -= n
            if r.num_computed_tokens == r.input_tokens + r.num_output_tokens:
                self.kv.commit_prefix(r)
                r.state = State.DECODE
                done |= self._emit(r, end)
                if r.state == State.DECODE and self.on_prefilled is not None and self.on_prefilled(self, r):
                    done = True
        if plan.decode_tokens is None:
            itl_one = self.recorder.itl_one
            times = self.recorder.record_token_times  # requests have token_times only then (dispatch)
            # the decodes whose last token came out with the first's (most of a batch: they came
            # out together in the iteration before) see one gap, booked once with their number as
            # its weight (the ITL histogram's counts, exact sum and max do not depend on how gaps
            # are grouped: sim/engine/itl.py); the others one by one
            common, num_common, common_gap = None, 0, 0.0
            for r in plan.decode:  # ``_emit`` inlined: a stepped iteration's per-token path
                r.num_computed_tokens += 1
                if r.first_token_s is None:
                    r.first_token_s = end
                else:
                    last = r.last_token_s
                    if last == common:
                        num_common += 1
                        gap = common_gap
                    elif common is None:
                        common, num_common = last, 1
                        gap = common_gap = end - last
                    else:
                        gap = end - last
                        itl_one(gap)
                    if gap > r.itl_max_s:
                        r.itl_max_s = gap
                if times and r.token_times is not None:
                    r.token_times.append(end)
                r.last_token_s = end
                r.num_output_tokens += 1
                if r.num_output_tokens >= r.output_tokens:
                    self._finish(r, end)
                    done = True
            if num_common > 1:
                self.recorder.itl_weighted(common_gap, num_common)
            elif num_common:
                itl_one(common_gap)
        else:
            done |= self._apply_speculative(plan, end)
        if done:
            self.running = [r for r in self.running if r.replica == self.id and r.state < State.FINISHED]

    def _emit(self, r: Request, end: float) -> bool:
        """Emit one token of ``r`` at ``end``; True if it finished."""
        if r.first_token_s is None:
            r.first_token_s = end
        else:
            gap = end - r.last_token_s
            if gap > r.itl_max_s:
                r.itl_max_s = gap
            self.recorder.itl_one(gap)
        if r.token_times is not None:
            r.token_times.append(end)
        r.last_token_s = end
        r.num_output_tokens += 1
        if r.num_output_tokens >= r.output_tokens:
            self._finish(r, end)
            return True
        return False

    def _emit_many(self, r: Request, end: float, n: int) -> bool:
        """``_emit(r, end)`` ``n`` times (``n`` at most ``r``'s tokens left, so only the last can
        finish), at once where ``r`` has its first token: the first after its gap, the others at
        the same end (gaps of 0; a speculative step's accepted tokens). True if it finished."""
        if n <= 0 or r.first_token_s is None:
            finished = False
            for _ in range(n):
                finished = self._emit(r, end)
            return finished
        gap = end - r.last_token_s
        if gap > r.itl_max_s:
            r.itl_max_s = gap
        itl_one = self.recorder.itl_one
        itl_one(gap)
        for _ in range(n - 1):
            itl_one(0.0)
        if r.token_times is not None:
            r.token_times.extend([end] * n)
        r.last_token_s = end
        r.num_output_tokens += n
        if r.num_output_tokens >= r.output_tokens:
            self._finish(r, end)
            return True
        return False

    def _finish(self, r: Request, end: float) -> None:
        r.state = State.FINISHED
        r.finish_s = end
        self.kv.free(r)
        self.num_outstanding -= 1
        if self.load_index is not None:  # sim/engine/load_index.py
            self.load_index.moved(self)
        self.recorder.visit_close(r, "finished", end)
        self.recorder.on_done(r)
        if self.on_done is not None:
            self.on_done(r)
