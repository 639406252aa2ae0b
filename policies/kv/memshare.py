"""MemShare: reasoning steps that repeat an earlier step of the same request reuse its KV blocks.

Chen, Tan, Yu and Xu, "MemShare: Memory Efficient Inference for Large Reasoning Models through
KV Cache Reuse" (2025). Large reasoning models repeat similar intermediate steps; MemShare
finds the KV blocks of a new step that match an earlier step's (collaborative filtering over
block similarity) and maps them to the existing blocks: reference count + 1, zero copy.

Model (the similarity search and its accuracy are out of scope: which steps are redundant is
drawn, not detected). A request's output is split into reasoning steps of lognormal length
(``step_tokens_median``, ``step_tokens_sigma``); after the first, each step is redundant with
probability ``share``, drawn per request uniformly in [``redundant_share_min``,
``redundant_share_max``] (the paper: 15-40% of steps). The draws come from a generator seeded
by (run seed, request id), so a request's steps do not depend on scheduling order. Every full
block inside a redundant step is held privately while it fills, then mapped onto the earlier
block: it leaves ``kv_blocks`` (its physical block is freed) and joins ``kv_shared_blocks``
(a reference to a block the request holds already)::

    step:    | s0 (new)            | s1 (redundant)         | s2 (new) ...
    blocks:  [b0][b1][b2][b3][b4]  [m][m][m][b5 partial]...    m = reference, no memory
    physical = kv_blocks (distinct); logical = kv_blocks + kv_shared_blocks = blocks_for(tokens)

So every question the paged facade answers (``blocks_needed``, ``allocate``, the fast path's
``affordable_steps``) works on logical blocks unchanged, while ``num_used`` counts distinct
blocks: more requests fit. The mapping happens when the request next asks for KV (every
iteration), as the engine would after its similarity check. Decode attention reads the
distinct blocks only (``attention_saved_tokens``: the engine prices the batch's context less
the mapped blocks). Not modelled: prefill chunks (a recompute) still attend over every token,
and a swap copies the logical blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.kv.paged import PagedKVManager, PagedKVParams
from sim.engine.request import Request
from sim.engine.seams import BuildContext
from sim.errors import ConfigError
from sim.registry import KV_MANAGERS
from sim.schema import param


@dataclass
class MemShareParams(PagedKVParams):
    """The paged parameters plus the redundant-step model (the paper's 15-40% share)."""

    redundant_share_min: float = param(0.15, ge=0, le=1, doc="lowest share of redundant steps per request")
    redundant_share_max: float = param(0.40, ge=0, le=1, doc="highest share of redundant steps per request")
    step_tokens_median: float = param(96.0, gt=0, doc="median tokens per reasoning step (unknown detail)")
    step_tokens_sigma: float = param(0.6, ge=0, doc="log-sd of the step length")
    attention_reads_distinct: bool = param(True, doc="decode attention reads distinct blocks only (False: "
                                           "every logical block, i.e. memory savings alone)")

    def validate(self) -> None:
        if self.redundant_share_max < self.redundant_share_min:
            raise ConfigError("must be >= redundant_share_min", "redundant_share_max")


class _Steps:
    """One request's redundant full blocks, generated lazily as its tokens grow."""

    __slots__ = ("rng", "share", "upto", "blocks", "mapped", "first")

    def __init__(self, rng: np.random.Generator, share: float, start: int):
        self.rng, self.share = rng, share
        self.upto = start          # steps generated up to this token position
        self.blocks: list[int] = []  # indices of full blocks inside redundant steps, ascending
        self.mapped = 0            # of them, mapped now
        self.first = True


@KV_MANAGERS.register("memshare")
class MemShareKVManager(PagedKVManager):
    """Paged KV in which full blocks of redundant reasoning steps map to earlier blocks (zero copy)."""

    Params = MemShareParams

    def __init__(self, params: MemShareParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._seed = int(ctx.rng.integers(2**63))
        self._steps: dict[int, _Steps] = {}
        self.num_mapped = 0          # blocks mapped now (references without memory)
        self.num_mapped_total = 0    # blocks ever mapped

    def _state(self, req: Request) -> _Steps:
        st = self._steps.get(req.id)
        if st is None:
            p = self.params
            rng = np.random.default_rng([self._seed, req.id])
            share = float(rng.uniform(p.redundant_share_min, p.redundant_share_max))
            st = self._steps[req.id] = _Steps(rng, share, req.input_tokens)
        return st

    def _generate(self, st: _Steps, upto: int) -> None:
        p, bs = self.params, self.block_size
        mu = np.log(p.step_tokens_median)
        while st.upto < upto:
            length = max(1, int(round(st.rng.lognormal(mu, p.step_tokens_sigma))))
            redundant = (not st.first) and st.rng.random() < st.share
            st.first = False
            a, b = st.upto, st.upto + length
            if redundant:
                st.blocks.extend(range(-(-a // bs), b // bs))
            st.upto = b

    def _remap(self, req: Request) -> None:
        """Map the full blocks of redundant steps among ``req``'s computed tokens."""
        done = req.num_computed_tokens
        if done <= req.input_tokens:
            return
        st = self._state(req)
        if st.upto < done:
            self._generate(st, done)
        blocks, bs = st.blocks, self.block_size
        k = st.mapped
        n = len(blocks)
        while k < n and (blocks[k] + 1) * bs <= done:
            k += 1
        d = min(k - st.mapped, req.kv_blocks)
        if d > 0:
            req.kv_blocks -= d
            req.kv_shared_blocks += d
            self.num_used -= d
            self.num_free += d
            self.num_mapped += d
            self.num_mapped_total += d
            st.mapped += d

    def allocate(self, req: Request, num_new_tokens: int, lookahead: int = 0, reserve_blocks: int = 0,
                 reserve_tokens: int = 0, match_prefix: bool = False, covered: int | None = None) -> int | None:
        if req.num_output_tokens:
            self._remap(req)
        return super().allocate(req, num_new_tokens, lookahead, reserve_blocks, reserve_tokens, match_prefix,
                                covered)

    def allocate_each(self, reqs: list[Request], num_new_tokens: int) -> bool:
        for r in reqs:
            self._remap(r)
        return super().allocate_each(reqs, num_new_tokens)

    def free(self, req: Request) -> None:
        """Release ``req``'s blocks; its mapped references go with them."""
        st = self._steps.get(req.id)
        if st is not None and st.mapped:
            self.num_mapped -= st.mapped
            req.kv_shared_blocks -= st.mapped  # references without memory: nothing to return
            st.mapped = 0
        super().free(req)
        if st is not None and req.state >= _FINISHED:
            del self._steps[req.id]

    # no mixed stretches (sim/engine/mixed_stretch.py): a block mapping mid-stretch frees a block
    # the paged answer does not foresee
    affordable_chunked_steps = None

    def affordable_steps(self, reqs: list[Request], max_steps: int) -> int:
        """The paged answer, but no further than the first block mapping among ``reqs`` (a
        mapping frees a block; stepping would see it at once), so stretches stay exact."""
        bs = self.block_size
        for r in reqs:
            st = self._state(r)
            upto = r.num_computed_tokens + max_steps + bs
            if st.upto < upto:
                self._generate(st, upto)
            if st.mapped < len(st.blocks):
                k = (st.blocks[st.mapped] + 1) * bs - r.num_computed_tokens  # steps until it maps
                if k < max_steps:
                    max_steps = max(1, k)
        return super().affordable_steps(reqs, max_steps)

    def attention_saved_tokens(self, reqs: list[Request]) -> int:
        """Context tokens decode attention of ``reqs`` does not read: their mapped blocks (it
        reads the distinct blocks; the engine subtracts this from the batch's context)."""
        if not self.params.attention_reads_distinct:
            return 0
        steps, total = self._steps, 0
        for r in reqs:
            st = steps.get(r.id)
            if st is not None:
                total += st.mapped
        return total * self.block_size

    def check_invariants(self) -> None:
        super().check_invariants()
        assert self.num_mapped == sum(st.mapped for st in self._steps.values()) >= 0
        assert self.num_used <= self.num_blocks

    @classmethod
    def example_config(cls) -> dict:
        """One vLLM v1 replica on long chain-of-thought outputs (the reasoning lengths), small KV."""
        return {"workload": {"name": "synthetic", "num_requests": 80, "rate_rps": 2.0,
                             "lengths": {"input": {"name": "lognormal", "median_tokens": 120, "sigma": 0.5,
                                                   "max_tokens": 1024},
                                         "output": {"name": "reasoning_cot", "benchmark": "math500",
                                                    "max_tokens": 2048}}},
                "cluster.pools[0].kv": {"name": "memshare", "block_size": 16, "num_blocks": 1500}}


from sim.engine.states import State  # noqa: E402

_FINISHED = State.FINISHED
