"""Splitwise's prompt-machine choice with borrowing (Patel et al., ISCA'24).

``mode: default``: a new request goes to the prompt machine (``prefill`` pool replica) with
the fewest pending prompt tokens, provided that machine's queue is empty or its pending
tokens plus this prompt stay within ``max_pending_tokens``. When no prompt machine
qualifies, a token machine (``decode`` pool) is borrowed: the request runs its prefill and
decode there. The ``splitwise`` hand-off picks the token machine at the end of the prompt.

``mode: reference``: as the public reference simulator's ``MixedPoolScheduler`` does it, both
machines are picked at arrival. Prompt machine: the fewest pending tokens among prompt
machines, then among the mixed pool, unless its queue is long (as above). Token machine:
the least scheduled memory (KV in use plus the prompts of requests already assigned to it)
among token machines, then the mixed pool, unless the request would fill it. With no prompt
machine, the token machine with the fewest pending tokens moves into the mixed pool and
takes the prompt; with no token machine, the prompt machine with the least scheduled memory
moves into the mixed pool and takes the decode; with neither, the machine with the fewest
pending tokens does both. A mixed machine goes back to its pool when it is idle. The KV is
shipped whenever the two machines differ (the ``splitwise`` hand-off in ``mode: reference``
honours the choice). The reference reserves the request's true output too; without the
oracle this reserves ``reserve_output_tokens`` (a parameter, default 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sim.engine.seams import BuildContext, RouterBase
from sim.engine.views import ReplicaView, RequestView
from sim.registry import ROUTERS
from sim.schema import param


@dataclass
class SplitwiseState:
    """What the reference mode's router and hand-off share: the mixed pool and the choices."""

    mixed: set[int] = field(default_factory=set)
    token_for: dict[int, tuple[int, int]] = field(default_factory=dict)  # request -> (replica, tokens)
    reserved: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    num_borrowed: int = 0


@dataclass
class SplitwiseRouterParams:
    """Splitwise's prompt-machine admission limit."""

    max_pending_tokens: int = param(8192, ge=1, doc="a busy prompt machine takes a prompt only under this")
    mode: Literal["default", "reference"] = param("default", doc="default, or reference: both machines at arrival")
    reserve_output_tokens: int = param(0, ge=0, doc="reference mode: output tokens reserved on the token machine")


@ROUTERS.register("splitwise")
class SplitwiseRouter(RouterBase):
    """Fewest pending tokens among prompt machines; borrow a token machine when all are full."""

    Params = SplitwiseRouterParams

    def __init__(self, params: SplitwiseRouterParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.num_borrowed_prompts = 0
        self.state = ctx.shared_state("splitwise", SplitwiseState)

    def token_machines(self) -> list[ReplicaView]:
        """The token machines (decode pool) that may be borrowed."""
        cluster = self.ctx.cluster
        if cluster is None:
            return []
        return [r for p in cluster.pools if p.role == "decode" for r in p.replicas if r.accepts_work]

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        if self.params.mode == "reference":
            return self._route_reference(req, replicas)
        best = self._best_prompt(replicas, req)
        if best is not None:
            return best
        machines = self.token_machines()
        if machines:  # borrow: the least loaded token machine runs it end to end
            self.num_borrowed_prompts += 1
            return min(machines, key=lambda r: (r.kv.num_used_blocks, r.num_outstanding))
        return min(replicas, key=lambda r: r.pending_prefill_tokens)

    def _best_prompt(self, replicas: Sequence[ReplicaView], req: RequestView) -> ReplicaView | None:
        limit = self.params.max_pending_tokens
        best, best_pending = None, None
        for rep in replicas:
            pending = rep.pending_prefill_tokens
            if rep.waiting and pending + req.input_tokens > limit:
                continue
            if best is None or pending < best_pending:
                best, best_pending = rep, pending
        return best

    # ------------------------------------------------------------------ reference mode
    def _sched_memory(self, rep: ReplicaView) -> int:
        return rep.kv.num_used_blocks * rep.kv.block_size + self.state.reserved[rep.id]

    def _best_token(self, replicas: list[ReplicaView], need: int) -> ReplicaView | None:
        if not replicas:
            return None
        best, lo, hi = self._least_memory(replicas)
        max_tokens = best.kv.max_tokens
        if lo + need < max_tokens <= hi + need:  # the bounds do not decide: read it
            lo = self._sched_memory(best)
        return None if lo + need >= max_tokens else best

    def _least_memory(self, replicas: list[ReplicaView]) -> tuple[ReplicaView, int, int]:
        """The first machine of the least scheduled memory, as ``min(replicas, key=_sched_memory)``
        picks it, and bounds on that memory (lo == hi: exact), reading exact KV use only where the
        bounds do not decide the pick.

        Each machine's KV use lies in ``kv.used_blocks_bounds()`` (a decode stretch in progress is
        not brought up to now to get them), so its scheduled memory lies in [lo, hi]. The least
        memory is at most the least hi, so a machine whose lo exceeds that is not the least nor
        tied with it: a lone machine left is the pick unread. Of several, one whose lo is no less
        than an earlier machine's exact memory is not the first of the least; the others are read
        exactly (lo == hi: exact already), in order, and the first of their least is the
        exhaustive pick (the router read every machine's KV, bringing six token machines'
        stretches up to date at each arrival)."""
        reserved = self.state.reserved
        bounds = []
        top = None
        for rep in replicas:
            kv = rep.kv
            lo, hi = kv.used_blocks_bounds()
            res = reserved[rep.id]
            size = kv.block_size
            lo, hi = lo * size + res, hi * size + res
            bounds.append((lo, hi))
            if top is None or hi < top:
                top = hi
        left = [i for i, (lo, _hi) in enumerate(bounds) if lo <= top]
        if len(left) == 1:
            i = left[0]
            return replicas[i], *bounds[i]
        best, best_mem = None, None
        for i in left:
            lo, hi = bounds[i]
            if best is not None and lo >= best_mem:
                continue  # no less than an earlier machine's: not the first of the least
            mem = lo if lo == hi else self._sched_memory(replicas[i])
            if best is None or mem < best_mem:
                best, best_mem = replicas[i], mem
        return best, best_mem, best_mem

    def _route_reference(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        st = self.state
        tokens = self.token_machines()
        everyone = {r.id: r for r in (*replicas, *tokens)}
        for rid in [i for i in st.mixed if i in everyone]:  # idle mixed machines go back
            rep = everyone[rid]
            if rep.num_outstanding == 0 and st.reserved[rid] == 0:
                st.mixed.discard(rid)
        mixed = [everyone[i] for i in sorted(st.mixed) if i in everyone]
        prompt_pool = [r for r in replicas if r.id not in st.mixed]
        token_pool = [r for r in tokens if r.id not in st.mixed]
        need = req.input_tokens + self.params.reserve_output_tokens
        prompt = self._best_prompt(prompt_pool, req) or self._best_prompt(mixed, req)
        token = self._best_token(token_pool, need) or self._best_token(mixed, need)
        if prompt is None and token_pool:
            prompt = min(token_pool, key=lambda r: r.pending_prefill_tokens)
            st.mixed.add(prompt.id)
            st.num_borrowed += 1
            self.num_borrowed_prompts += 1
        if token is None and prompt_pool:
            token = self._least_memory(prompt_pool)[0]
            st.mixed.add(token.id)
            st.num_borrowed += 1
        if prompt is None or token is None:
            prompt = token = min(everyone.values(), key=lambda r: r.pending_prefill_tokens)
        st.token_for[req.id] = (token.id, need)
        st.reserved[token.id] += need
        return prompt
