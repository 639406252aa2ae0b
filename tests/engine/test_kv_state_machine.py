"""The KV facade under random operation sequences (hypothesis state machine) and unit cases.

Invariants after every step: used + evictable + free = total; no count or reference count is
negative; blocks in use = private blocks of live requests + blocks of units they reference
(each unit once); a request holds kv_blocks + kv_shared_blocks blocks, the shared part being
the sum of its units' sizes; the evictable units are those of an LRU kept in an ordered dict
(released units appended, revived ones removed, evictions taken from its front).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from policies.kv.paged import PagedKVManager, PagedKVParams
from sim.engine.request import Request
from sim.engine.seams import BuildContext
from sim.registry import KV_MANAGERS

BLOCK = 16
UNIT_TOKENS = 32  # two blocks per prefix unit


class _Cost:
    kv_bytes_per_token = 1024.0
    num_gpus = 1

    def kv_capacity_bytes(self, utilization: float) -> float:
        return 1e9


def make_kv(num_blocks: int = 64, prefix: bool = True, swap_gb: float = 0.001) -> PagedKVManager:
    params = PagedKVParams(num_blocks=num_blocks, enable_prefix_caching=prefix, swap_space_gb=swap_gb)
    return PagedKVManager(params, BuildContext(rng=np.random.default_rng(0), cost_model=_Cost()))


def make_req(i: int, input_tokens: int, chain: tuple | None = None) -> Request:
    return Request(i, 0.0, input_tokens, 50, prefix_hashes=chain, prefix_block_tokens=UNIT_TOKENS if chain else 0)


class KVMachine(RuleBasedStateMachine):
    """Allocate, grow, share, trim, free, evict (through allocation), swap out and in."""

    def __init__(self):
        super().__init__()
        self.kv = make_kv()
        self.live: list[Request] = []
        self.swapped: list[Request] = []
        self.next_id = 0
        self.lru: OrderedDict = OrderedDict()  # the reference LRU: unit key -> blocks, oldest first

    def _refs(self) -> dict:
        return {key: unit[0] for key, unit in self.kv._units.items()}

    def _track(self, before: dict, released: list = ()) -> None:
        """Update the reference LRU from the reference counts before and after a step: units
        referenced again leave it, evicted units must be its oldest, and units whose last
        reference went join it in ``released``'s order (a request's units tail first)."""
        after = self._refs()
        for key, refs in before.items():
            if refs == 0 and after.get(key, 0) > 0:
                del self.lru[key]
        evicted = {key for key, refs in before.items() if refs == 0 and key not in after}
        assert evicted == set(list(self.lru)[:len(evicted)]), "evicted units are not the least recently released"
        for key in evicted:
            del self.lru[key]
        for key in released:
            if before.get(key, 0) > 0 and after.get(key) == 0:
                self.lru[key] = self.kv._units[key][1]

    def _new(self, input_tokens: int, chain_len: int, chain_seed: int) -> Request:
        chain = tuple((chain_seed, j) for j in range(chain_len)) if chain_len else None
        req = make_req(self.next_id, input_tokens, chain)
        self.next_id += 1
        return req

    @rule(input_tokens=st.integers(1, 200), chain_len=st.integers(0, 4), chain_seed=st.integers(0, 2),
          chunk=st.integers(1, 200))
    def admit(self, input_tokens, chain_len, chain_seed, chunk):
        req = self._new(input_tokens, chain_len, chain_seed)
        before = (self.kv.num_used, self.kv.num_free, self.kv.num_evictable)
        covered = self.kv.covered_tokens(req)
        n = min(chunk, input_tokens - covered)
        refs = self._refs()
        got = self.kv.allocate(req, n, match_prefix=True)
        self._track(refs)
        if got is None:
            assert (self.kv.num_used, self.kv.num_free, self.kv.num_evictable) == before
            assert req.kv_blocks == 0 and req.kv_units is None
            return
        req.num_computed_tokens += n
        if req.num_computed_tokens == req.input_tokens:
            self.kv.commit_prefix(req)
        self.live.append(req)

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000), tokens=st.integers(1, 40), lookahead=st.integers(0, 5))
    def grow(self, pick, tokens, lookahead):
        req = self.live[pick % len(self.live)]
        held = self.kv.held_blocks(req)
        refs = self._refs()
        got = self.kv.allocate(req, tokens, lookahead)
        self._track(refs)
        if got is None:
            assert self.kv.held_blocks(req) == held
            return
        assert self.kv.held_blocks(req) >= self.kv.blocks_for(req.num_computed_tokens + tokens + lookahead)
        req.num_computed_tokens += tokens
        self.kv.trim(req, req.num_computed_tokens)  # drop the lookahead slots (rejected drafts)
        assert self.kv.held_blocks(req) >= self.kv.blocks_for(req.num_computed_tokens)

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000), tokens=st.integers(1, 300))
    def share(self, pick, tokens):
        src = self.live[pick % len(self.live)]
        dst = self._new(src.input_tokens, 0, 0)
        covered = self.kv.share(src, dst, tokens)
        assert covered % BLOCK == 0 and covered <= src.num_computed_tokens
        dst.num_computed_tokens = covered
        self.live.append(dst)

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000))
    def free(self, pick):
        req = self.live.pop(pick % len(self.live))
        refs, released = self._refs(), list(reversed(req.kv_units or ()))
        self.kv.free(req)
        self._track(refs, released)
        assert req.kv_blocks == 0 and req.kv_shared_blocks == 0 and req.kv_units is None

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000))
    def swap_out(self, pick):
        req = self.live[pick % len(self.live)]
        if not self.kv.can_swap_out(req):
            return
        self.live.remove(req)
        refs, released = self._refs(), list(reversed(req.kv_units or ()))
        self.kv.swap_out(req)
        self._track(refs, released)
        self.swapped.append(req)

    @precondition(lambda self: self.swapped)
    @rule()
    def swap_in(self):
        req = self.swapped[0]
        if not self.kv.can_swap_in(req):
            return
        self.swapped.pop(0)
        refs = self._refs()
        self.kv.swap_in(req)
        self._track(refs)
        self.live.append(req)

    @invariant()
    def totals(self):
        self.kv.check_invariants()

    @invariant()
    def evictable_in_lru_order(self):
        assert self.kv.evictable_units() == list(self.lru.items())

    @invariant()
    def used_is_what_live_requests_hold(self):
        units = {}
        private = 0
        for req in self.live:
            private += req.kv_blocks
            assert req.kv_blocks >= 0 and req.kv_shared_blocks >= 0
            shared = 0
            for key in req.kv_units or ():
                blocks = self.kv._units[key][1]
                units[key] = blocks
                shared += blocks
            assert shared == req.kv_shared_blocks
        assert self.kv.num_used == private + sum(units.values())
        for key, blocks in units.items():
            refs = sum(1 for r in self.live for k in (r.kv_units or ()) if k == key)
            assert self.kv._units[key][0] == refs, (key, blocks)
        assert self.kv.num_host_used == sum(self.kv.blocks_for(r.num_computed_tokens) for r in self.swapped)

    @invariant()
    def cached_prefix_is_the_first_full_units_before_a_miss(self):
        # the plain walk ``cached_prefix_tokens`` shortens (it walks to the first miss, cutting to
        # the full units after): chains longer than the prompt's full units included
        for chain_seed in range(3):
            chain = tuple((chain_seed, j) for j in range(4))
            for input_tokens in (UNIT_TOKENS - 1, UNIT_TOKENS, 2 * UNIT_TOKENS + 5, 6 * UNIT_TOKENS):
                hits = 0
                for key in chain[: input_tokens // UNIT_TOKENS]:
                    if key not in self.kv._units:
                        break
                    hits += 1
                probe = make_req(-1, input_tokens, chain)
                assert self.kv.cached_prefix_tokens(probe) == hits * UNIT_TOKENS

    def teardown(self):
        for req in self.live:
            self.kv.free(req)
        assert self.kv.num_used == 0
        self.kv.check_invariants()


TestKVStateMachine = KVMachine.TestCase
TestKVStateMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class KVMachineCompacting(KVMachine):
    """The same, with the LRU's stale entries dropped as soon as they outnumber the live ones."""

    def __init__(self):
        super().__init__()
        self.kv.stale_slack = 0


TestKVStateMachineCompacting = KVMachineCompacting.TestCase
TestKVStateMachineCompacting.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_no_room_is_none_and_changes_nothing():
    kv = make_kv(num_blocks=4, prefix=False)
    a = make_req(0, 60)
    assert kv.allocate(a, 60) == 4
    b = make_req(1, 10)
    assert kv.allocate(b, 10) is None
    assert (kv.num_used, kv.num_free, b.kv_blocks) == (4, 0, 0)
    assert kv.allocate(a, 4) == 0  # still inside its last block


def test_prefix_units_are_shared_and_evicted_lru():
    kv = make_kv(num_blocks=8)
    chain = (("p", 0), ("p", 1))
    a = make_req(0, 64, chain)
    assert kv.allocate(a, 64, match_prefix=True) == 4
    a.num_computed_tokens = 64
    kv.commit_prefix(a)
    b = make_req(1, 64, chain)
    assert kv.cached_prefix_tokens(b) == 64
    kv.allocate(b, 1, match_prefix=True)  # 63 cached (one prompt token is always computed)
    assert b.num_computed_tokens == 63 and kv.held_blocks(b) == 4
    kv.free(a)
    kv.free(b)
    assert kv.num_evictable == 4 and kv.num_used == 0
    c = make_req(2, 128)
    assert kv.allocate(c, 128) == 8  # evicts both units
    assert kv.num_evictable == 0 and kv.cached_prefix_tokens(b) == 0


def test_shared_blocks_outlive_the_source_and_free_with_the_last_reference():
    kv = make_kv(num_blocks=10, prefix=False)
    src = make_req(0, 64)
    kv.allocate(src, 64)
    src.num_computed_tokens = 64
    dst = make_req(1, 64)
    assert kv.share(src, dst, 48) == 48
    assert kv.num_used == 4 and kv.held_blocks(dst) == 3 and kv.held_blocks(src) == 4
    kv.free(src)
    assert kv.num_used == 3
    kv.free(dst)
    assert kv.num_used == 0 and kv.num_free == 10 and kv.num_evictable == 0


def test_registered_and_sized_from_the_cost_model():
    assert KV_MANAGERS.get("paged") is PagedKVManager
    params = PagedKVParams(block_size=16)
    kv = PagedKVManager(params, BuildContext(rng=np.random.default_rng(0), cost_model=_Cost()))
    assert kv.num_blocks == int(_Cost().kv_capacity_bytes(0.9) // (16 * _Cost.kv_bytes_per_token))


@pytest.mark.parametrize("steps", [1, 5, 40])
def test_affordable_steps_matches_one_by_one(steps):
    kv = make_kv(num_blocks=12, prefix=False)
    reqs = [make_req(i, 20 + 7 * i) for i in range(3)]
    for r in reqs:
        kv.allocate(r, r.input_tokens + 1)
        r.num_computed_tokens = r.input_tokens
    n = kv.affordable_steps(reqs, steps)
    # stepping one by one: each step every request needs room for one more token
    k = 1
    while k < steps:
        need = sum(max(0, kv.blocks_for(r.num_computed_tokens + k + 1) - kv.held_blocks(r)) for r in reqs)
        if need > kv.num_available:
            break
        k += 1
    assert n == k


def _lru_state(seed: int) -> tuple[PagedKVManager, list[Request]]:
    """A cache whose LRU holds units of two sizes (2 and 4 blocks), few free blocks, and decodes
    each at a block boundary (the next token needs a new block), all built from ``seed``."""
    rng = np.random.default_rng(seed)
    kv = make_kv(num_blocks=120)
    for i in range(12):  # cached chains, released in an order the seed picks
        unit = int(rng.choice([UNIT_TOKENS, 2 * UNIT_TOKENS]))
        chain = tuple((seed, i, j) for j in range(int(rng.integers(1, 4))))
        r = Request(i, 0.0, unit * len(chain) + 1, 50, prefix_hashes=chain, prefix_block_tokens=unit)
        assert kv.allocate(r, r.input_tokens, match_prefix=True) is not None
        r.num_computed_tokens = r.input_tokens
        kv.commit_prefix(r)
        kv.free(r)
    decodes = []
    for i in range(int(rng.integers(3, 9))):
        r = make_req(100 + i, BLOCK * int(rng.integers(1, 4)))
        assert kv.allocate(r, r.input_tokens) is not None
        r.num_computed_tokens = r.input_tokens
        decodes.append(r)
    filler = make_req(99, BLOCK * (kv.num_free - int(rng.integers(0, 3))))
    assert kv.allocate(filler, filler.input_tokens) is not None
    return kv, decodes


@pytest.mark.parametrize("seed", range(8))
def test_allocate_all_evicts_as_one_by_one(seed):
    """``allocate_all`` takes its requests' blocks in one take: the same units evicted, in the
    same LRU order, with the same counts, as ``allocate`` called for each in turn."""
    kv_all, reqs_all = _lru_state(seed)
    kv_one, reqs_one = _lru_state(seed)
    assert kv_all.num_free < len(reqs_all) <= kv_all.num_available  # it must evict, and can
    assert kv_all.allocate_all(reqs_all, 1)
    for r in reqs_one:
        assert kv_one.allocate(r, 1) is not None
    _assert_same_kv(kv_all, reqs_all, kv_one, reqs_one)
    kv_all.check_invariants()


def _assert_same_kv(kv_a: PagedKVManager, reqs_a: list[Request], kv_b: PagedKVManager,
                    reqs_b: list[Request]) -> None:
    """The two managers hold the same LRU order, units, counts, and their requests the same blocks."""
    assert kv_a.evictable_units() == kv_b.evictable_units()
    assert kv_a._units == kv_b._units
    assert (kv_a.num_free, kv_a.num_used, kv_a.num_evictable) == (kv_b.num_free, kv_b.num_used, kv_b.num_evictable)
    assert [r.kv_blocks for r in reqs_a] == [r.kv_blocks for r in reqs_b]


def _affordable_by_pass(kv: PagedKVManager, reqs: list[Request], max_steps: int) -> int:
    """``affordable_steps`` as a pass over the batch for every k (no shortcut)."""
    best = 1
    for k in range(1, max_steps + 1):
        need = 0
        for r in reqs:
            extra = -(-(r.num_computed_tokens + k) // kv.block_size) - r.kv_blocks - r.kv_shared_blocks
            need += max(extra, 0)
        if need <= kv.num_available:
            best = k
    return best


@settings(max_examples=200, deadline=None)
@given(computed=st.lists(st.integers(0, 5).map(lambda j: BLOCK * j + BLOCK - 1) | st.integers(1, 90),
                        min_size=1, max_size=6),
       max_steps=st.integers(1, 120), taken=st.integers(0, 127))
def test_affordable_steps_shortcut_matches_a_pass_over_the_batch(computed, max_steps, taken):
    """The O(1) bound in ``affordable_steps`` (each request holds its step-0 slot, so k steps take
    at most ceil((k - 1) / block) more blocks each) answers what a pass over the batch answers."""
    kv = make_kv(num_blocks=128, prefix=False)
    reqs = []
    for i, c in enumerate(computed):
        r = make_req(i, c + 1)
        if kv.allocate(r, c + 1) is None:  # the step-0 slot (computed + 1 tokens) held
            break
        r.num_computed_tokens = c
        reqs.append(r)
    if not reqs:
        return
    filler = make_req(99, 1)
    if kv.allocate(filler, min(taken, kv.num_available) * BLOCK) is None:
        return
    assert kv.affordable_steps(reqs, max_steps) == _affordable_by_pass(kv, reqs, max_steps)


@settings(max_examples=400, deadline=None)
@given(computed=st.lists(st.integers(0, 5).map(lambda j: BLOCK * j + BLOCK - 1) | st.integers(1, 90),
                        min_size=0, max_size=5),
       chunks=st.lists(st.integers(1, 64), min_size=1, max_size=40), taken=st.integers(0, 127))
def test_affordable_chunked_steps_shortcut_matches_a_pass_over_the_batch(computed, chunks, taken):
    """The O(1) bound in ``affordable_chunked_steps`` (decodes holding their iteration-0 slots)
    answers what the pass over the batch answers at every iteration count."""
    kv = make_kv(num_blocks=128, prefix=False)
    targets = [0, *np.cumsum(chunks).tolist()]
    max_steps = len(chunks)
    prompt = make_req(50, targets[-1] + 1)
    if kv.allocate(prompt, targets[1]) is None:  # its iteration-0 chunk held
        return
    reqs = []
    for i, c in enumerate(computed):
        r = make_req(i, c + 1)
        if kv.allocate(r, c + 1) is None:
            break
        r.num_computed_tokens = c
        reqs.append(r)
    filler = make_req(99, 1)
    if kv.allocate(filler, min(taken, kv.num_available) * BLOCK) is None:
        return

    def need(j: int) -> int:
        total = max(-(-targets[j + 1] // BLOCK) - prompt.kv_blocks, 0)
        for r in reqs:
            total += max(-(-(r.num_computed_tokens + j + 1) // BLOCK) - r.kv_blocks, 0)
        return total

    expected = 1 + max((j for j in range(max_steps) if need(j) <= kv.num_available), default=0)
    assert kv.affordable_chunked_steps(reqs, prompt, targets, max_steps) == expected


@pytest.mark.parametrize("seed", range(8))
def test_take_grown_evicts_as_allocate_each(seed):
    """A decode stretch's ``_advance`` finds each request's blocks in its own pass, raises
    ``kv_blocks`` and calls ``take_grown`` with the sum: the same units evicted, in the same LRU
    order, with the same counts, as ``allocate_each``; and False, with no room for the sum."""
    kv_sum, reqs_sum = _lru_state(seed)
    kv_each, reqs_each = _lru_state(seed)
    assert kv_sum.num_free < len(reqs_sum) <= kv_sum.num_available  # it must evict, and can
    taken = 0
    for r in reqs_sum:
        need = kv_sum.blocks_needed(r, 1)
        r.kv_blocks += need
        taken += need
    assert kv_sum.take_grown(taken)
    assert kv_each.allocate_each(reqs_each, 1)
    _assert_same_kv(kv_sum, reqs_sum, kv_each, reqs_each)
    kv_sum.check_invariants()
    assert not kv_sum.take_grown(kv_sum.num_available + 1)
    kv_sum.check_invariants()
