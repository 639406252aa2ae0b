"""SGLang's scheduler (0.4.x): separate prefill and decode batches, admission against an
estimate of the running requests' future tokens, retraction when decode runs out of KV.

Each iteration (``Scheduler.get_next_batch_to_run`` in python/sglang/srt/managers/scheduler.py):

- a prefill batch whenever one can be formed (``get_new_batch_prefill``), else one decode
  step of the whole running batch; the two never share a step (``enable_mixed_chunk`` off,
  SGLang's default);
- the prefill batch (``PrefillAdder`` in schedule_policy.py) first continues the one request
  whose prompt is being chunked, then takes waiting requests in order. Its KV budget is the
  free (and evictable) KV less the running requests' estimated future decode tokens,
  sum of min(max_new_tokens - generated, CLIP_MAX_NEW_TOKENS) x ``new_token_ratio``, and less,
  per request admitted in this batch, its new prompt tokens plus min(max_new_tokens, CLIP)
  (in full: a chunk that does not finish its prompt adds its tokens only). A request whose
  prompt plus clipped max_new_tokens is not below what is left stops the walk and marks the
  batch full (no new prefill is tried until a running request leaves). At most
  ``max_prefill_tokens`` new prompt tokens join a batch (the first request may exceed it),
  and a prompt longer than what is left of ``chunked_prefill_size`` is cut to that (one
  chunked request at a time);
- a decode step whose one new token per request does not fit retracts requests
  (``ScheduleBatch.retract_decode``): fewest generated tokens first, ties to the longest
  prompt, at least one and until the free KV holds ``retract_decode_steps`` tokens per
  request left, each back to the queue to be recomputed; then
  ``new_token_ratio`` = min(1, (generated + retract_decode_steps x batch) / sum max_new_tokens)
  over the requests kept. A decode step without retraction lowers the ratio by its decay
  (to its floor); an idle engine resets it to its initial value.

Where servesim differs: a retracted request goes back to the front of the queue (SGLang
appends it, but its default ``lpm`` order then sorts the queue by cached prefix, and the
retracted request's computed tokens stay in the radix cache); the reset of the ratio happens
when a step finds nothing running (SGLang resets it on an iteration with nothing to run);
radix-cache hits are not in the estimate (servesim's KV manager may still match prefixes on
admission); the KV budget is asked of the paged KV facade in blocks (``blocks_for``), where
SGLang counts single tokens (page size 1).

The request's max_new_tokens: ``max_new_tokens`` (a cap every request states), or its true
output length where the config says ``oracle: true`` (``sglang.bench_serving`` sends each
request's dataset output length as max_new_tokens), else ``clip_max_new_tokens`` stands in
(a request that states no limit may run to the context length, which the estimate clips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policies.schedulers.base import Order, SchedulerBase, order_param
from sim.engine.ops import ReplicaOps
from sim.engine.plan import StepPlan
from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class SglangParams:
    """SGLang 0.4.x defaults (server_args.py, global_config.py, schedule_policy.py); SGLang 0.3's
    server_args has the same chunked_prefill_size, max_prefill_tokens and conservativeness."""

    chunked_prefill_size: int | None = param(
        8192, ge=1, doc="most prompt tokens of one request per prefill batch (server_args: 8192 on a GPU of at "
                        "least 25 GB, 2048 below); None: no chunking")
    max_prefill_tokens: int = param(16384, ge=1, doc="new prompt tokens per prefill batch (server_args default)")
    max_running_requests: int = param(
        4096, ge=1, doc="most running requests (SGLang sizes it from KV memory, at most its 4096 request slots)")
    schedule_conservativeness: float = param(1.0, gt=0, doc="scales the initial new_token_ratio (server_args)")
    init_new_token_ratio: float = param(0.7, gt=0, le=1, doc="new_token_ratio at start, x conservativeness "
                                                              "(global_config default_init_new_token_ratio)")
    min_new_token_ratio_factor: float = param(0.14, gt=0, le=1, doc="the ratio's floor, as a share of its start "
                                                                    "(global_config)")
    new_token_ratio_decay_steps: float = param(600, gt=0, doc="decode steps from the start to the floor "
                                                              "(global_config)")
    retract_decode_steps: int = param(20, ge=1, doc="decode tokens per request a retraction frees KV for "
                                                    "(global_config)")
    clip_max_new_tokens: int = param(4096, ge=1, doc="clip of max_new_tokens in the estimate "
                                                     "(SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION default)")
    max_new_tokens: int | None = param(None, ge=1, doc="max_new_tokens every request states (None: unstated, "
                                                       "clip_max_new_tokens stands in)")
    oracle: bool = param(False, doc="read each request's true output length as its max_new_tokens "
                                    "(a benchmark that sends it, as sglang.bench_serving does)")
    order: Order = order_param()


@SCHEDULERS.register("sglang")
class SglangScheduler(SchedulerBase):
    """Prefill batches first under an estimate of future decode tokens; decode with retraction."""

    Params = SglangParams
    # nothing waiting, every running request decoding: a decode step of all of them, in order, until
    # one finishes or KV runs out; the ratio's decay over the steps the replica ran without asking
    # is caught up from ``num_steps`` (``_catch_up``)
    fast_forward_safe = True
    # requests waiting that cannot start: a decode-only plan is formed only once the batch is full (the estimate
    # refused the queue's head, the KV could not hold it, or the running cap was reached), and ``batch_is_full``
    # stays set, so the same plan repeats, until a running request leaves (which ends a stretch); the ratio's
    # decay over the stretch is caught up as above (sim/engine/blocked_stretch.py)
    blocked_decode_safe = True

    def __init__(self, params: SglangParams, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.init_ratio = min(p.init_new_token_ratio * p.schedule_conservativeness, 1.0)
        self.min_ratio = min(self.init_ratio * p.min_new_token_ratio_factor, 1.0)
        self.ratio_decay = (self.init_ratio - self.min_ratio) / p.new_token_ratio_decay_steps
        self.new_token_ratio = self.init_ratio
        self.batch_is_full = False
        self._planned_at: int | None = None  # num_steps when the last plan was formed
        self._running_after = 0  # running requests after the last plan

    @classmethod
    def example_config(cls) -> dict:
        """The scheduler default scenario (prompts <= 1024, outputs <= 128), every request stating
        max_new_tokens 128 (the scenario's longest output)."""
        return {"cluster.pools[0].scheduler.max_new_tokens": 128}

    # ------------------------------------------------------------------ the estimate
    def max_new(self, req: RequestView) -> int:
        """The max_new_tokens ``req`` states (see the module docstring)."""
        p = self.params
        if p.oracle:
            return self.ctx.output_tokens(req)
        return p.max_new_tokens if p.max_new_tokens is not None else p.clip_max_new_tokens

    def future_decode_tokens(self, running: list[RequestView], ratio: float) -> float:
        """The running requests' estimated future decode tokens (``PrefillAdder``'s offset):
        sum of min(max_new_tokens - generated, clip) x ``ratio``."""
        clip = self.params.clip_max_new_tokens
        return sum(max(min(self.max_new(r) - r.num_output_tokens, clip), 0) for r in running) * ratio

    def admission_tokens(self, req: RequestView, extend_tokens: int, finishes_prompt: bool) -> int:
        """Tokens a request joining the prefill batch adds to the offset: its new prompt tokens, plus
        min(max_new_tokens, clip) once its prompt is done (0 for a chunk that leaves some)."""
        reserve = min(self.max_new(req), self.params.clip_max_new_tokens) if finishes_prompt else 0
        return extend_tokens + reserve

    def retract_ratio(self, kept: list[RequestView]) -> float:
        """new_token_ratio after a retraction: (generated + retract_decode_steps x batch) / sum
        max_new_tokens over the requests kept, at most 1."""
        total_max_new = sum(self.max_new(r) for r in kept)
        if total_max_new <= 0:
            return 1.0
        decoded = sum(r.num_output_tokens for r in kept)
        return min(1.0, (decoded + self.params.retract_decode_steps * len(kept)) / total_max_new)

    # ------------------------------------------------------------------ one iteration
    def _catch_up(self, rep: ReplicaView) -> None:
        """The ratio's decay for the decode steps the replica ran on its own since the last plan
        (fast path), a reset when nothing runs, and the batch's fullness cleared when a running
        request left (SGLang clears it when the decode batch shrinks)."""
        if self._planned_at is not None:
            skipped = rep.num_steps - self._planned_at - 1
            if skipped > 0:
                self.new_token_ratio = max(self.new_token_ratio - self.ratio_decay * skipped, self.min_ratio)
        if rep.num_running < self._running_after:
            self.batch_is_full = False
        if rep.num_running == 0:
            self.new_token_ratio = self.init_ratio
            self.batch_is_full = False

    def schedule(self, rep: ReplicaOps) -> StepPlan:
        self._catch_up(rep)
        plan = self.prefill_batch(rep)
        if not plan:
            self.decode_batch(rep, plan)
        self._planned_at = rep.num_steps if plan else None
        self._running_after = rep.num_running
        return plan

    def prefill_batch(self, rep: ReplicaOps, plan: StepPlan | None = None) -> StepPlan:
        """The prefill batch SGLang's ``get_new_batch_prefill`` forms (empty if none can be)."""
        p = self.params
        plan = StepPlan() if plan is None else plan
        prefills = rep.running_prefills_now()
        chunked = prefills[0] if prefills else None  # the one request whose prompt is being chunked
        if (self.batch_is_full or not rep.waiting) and chunked is None:
            return plan
        running_bs = rep.num_running - len(prefills)
        if running_bs >= p.max_running_requests:
            self.batch_is_full = True
            return plan
        kv = rep.kv
        decoding = [r for r in rep.running if r.is_decoding]
        offset = self.future_decode_tokens(decoding, self.new_token_ratio)
        rem_input = p.max_prefill_tokens
        rem_chunk = p.chunked_prefill_size
        added = 0
        if chunked is not None:
            left = chunked.remaining_prefill_tokens
            k = left if rem_chunk is None else min(left, rem_chunk)
            if rep.grow(chunked, k) is None:  # the estimate let it in, the KV does not hold it: recompute later
                rep.preempt(chunked, "recompute")
            else:
                plan.add_prefill(chunked, k)
                offset += self.admission_tokens(chunked, k, k == left)
                rem_input -= k
                rem_chunk = None if rem_chunk is None else rem_chunk - k
                added += 1
        for req in self.candidates(rep):
            if rem_input <= 0 or (rem_chunk is not None and rem_chunk <= 0):
                break
            if running_bs + added >= p.max_running_requests:
                self.batch_is_full = True
                break
            if kv.never_fits(req):
                rep.reject(req, "exceeds_kv_capacity")
                continue
            extend = req.input_tokens + req.num_output_tokens
            whole = rem_chunk is None or extend <= rem_chunk
            k = extend if whole else rem_chunk
            # an empty engine takes the request whatever its estimate: SGLang clamps max_new_tokens to
            # what the KV holds beside the prompt (``max_req_len``), so the first request always fits
            if (running_bs or added) and not self.fits(kv, offset + self.admission_tokens(req, extend, True)):
                self.batch_is_full = True  # NO_TOKEN
                break
            if extend > rem_input and added:
                break  # the batch's prompt-token budget is spent (OTHER)
            n = rep.admit(req, k, whole=whole)
            if n is None:  # the estimate passed but the KV cannot hold the prompt now
                self.batch_is_full = True
                break
            plan.add_prefill(req, n)
            offset += self.admission_tokens(req, n, n == extend)
            rem_input -= n
            rem_chunk = None if rem_chunk is None else rem_chunk - n
            added += 1
            if not self.fits(kv, offset, strict=False):
                self.batch_is_full = True
                break
        return plan

    def candidates(self, rep: ReplicaView) -> list[RequestView]:
        """The waiting requests in the order they are tried (a snapshot)."""
        if self.by_priority:
            return sorted(rep.waiting, key=lambda r: (r.priority, r.arrival_s, r.id))
        return list(rep.waiting)

    @staticmethod
    def fits(kv, tokens: float, strict: bool = True) -> bool:
        """Whether ``tokens`` (the offset) stay below the free KV (``strict``, SGLang's
        ``total_tokens >= rem_total_tokens`` refusal) or within it (its ``rem_total_tokens <= 0``)."""
        need = kv.blocks_for(math.ceil(tokens))
        free = kv.num_free_blocks
        return need < free if strict else need <= free

    def decode_batch(self, rep: ReplicaOps, plan: StepPlan) -> None:
        """One decode step of every running request, retracting first if their tokens do not fit."""
        kv = rep.kv
        decoding = [r for r in rep.running if r.is_decoding]
        if not decoding:
            return
        free = kv.num_free_blocks
        # one token takes at most one new block: only a batch larger than the free blocks can run out
        if len(decoding) > max(free, 1) and sum(kv.blocks_needed(r, 1) for r in decoding) > free:
            self.retract(rep, decoding)
            self.batch_is_full = False
        else:
            self.new_token_ratio = max(self.new_token_ratio - self.ratio_decay, self.min_ratio)
        if rep.grow_decodes(plan) is None:
            # no all-at-once allocation (or still no room): one by one, preempting from the tail
            self.schedule_running(rep, plan, None, phase="decode")

    def retract(self, rep: ReplicaOps, decoding: list[RequestView]) -> None:
        """SGLang's ``retract_decode``: victims with the fewest generated tokens (ties: the longest
        prompt), at least one, until the free KV holds ``retract_decode_steps`` tokens per request
        kept; then the ratio from the requests kept."""
        kv = rep.kv
        steps = self.params.retract_decode_steps
        kept = sorted(decoding, key=lambda r: (r.num_output_tokens, -r.input_tokens), reverse=True)
        first = True
        while first or kv.num_free_blocks < kv.blocks_for(len(kept) * steps):
            if len(kept) == 1:
                break
            first = False
            rep.preempt(kept.pop(), "recompute")
        self.new_token_ratio = self.retract_ratio(kept)
