"""Retention of a preempted request's blocks (``retain_preempted_blocks``, vLLM V1's prefix cache).

A hypothesis state machine checks the KV facade's invariants with retention on (used + evictable +
free = total, the LRU's units, what live requests hold) against a reference queue of evictable
units kept here: releases append (a request's blocks tail first), hits take a unit out, evictions
take the queue's head, a retained unit block by block from its tail end; and a readmitted request
(with no prefix chain) finds cached exactly its retained unit's surviving blocks, at most all its
tokens but one. Unit cases pin the two hit cases and the free-queue order; whole runs check no
request is lost, the same seed gives the same run, and the fast path equals stepping.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from policies.kv.paged import PagedKVManager, PagedKVParams
from sim.engine.request import Request
from sim.engine.seams import BuildContext
from sim.errors import ConfigError
from sim.tools.bench import DATA
from tests.cluster_run import assert_same_run, run_cluster
from tests.engine.test_kv_state_machine import BLOCK, UNIT_TOKENS, _Cost


def make_kv(num_blocks: int = 64, prefix: bool = True, retain: bool = True) -> PagedKVManager:
    params = PagedKVParams(num_blocks=num_blocks, enable_prefix_caching=prefix, retain_preempted_blocks=retain)
    return PagedKVManager(params, BuildContext(rng=np.random.default_rng(0), cost_model=_Cost()))


def make_req(i: int, input_tokens: int, chain: tuple | None = None) -> Request:
    return Request(i, 0.0, input_tokens, 10_000, prefix_hashes=chain,
                   prefix_block_tokens=UNIT_TOKENS if chain else 0)


def preempt(kv: PagedKVManager, req: Request) -> None:
    """What a recompute preemption does to the request (sim/engine/queue_ops.py ``_take_off``)."""
    kv.free_preempted(req)
    req.num_computed_tokens = 0
    req.num_cached_tokens = 0


def run_to(kv: PagedKVManager, req: Request, computed: int) -> None:
    """Admit ``req`` and compute it to ``computed`` tokens (prompt, then generated ones)."""
    assert kv.allocate(req, computed - req.num_computed_tokens, match_prefix=True) is not None
    req.num_computed_tokens = computed
    req.num_output_tokens = max(0, computed - req.input_tokens + 1)


class RetentionMachine(RuleBasedStateMachine):
    """Admit, grow (prompt and generated tokens), finish, preempt by recompute, readmit, give up."""

    def __init__(self):
        super().__init__()
        self.kv = make_kv()
        self.live: list[Request] = []
        self.preempted: list[Request] = []
        self.kept: dict[int, tuple] = {}  # request id -> key of the retained unit its last preemption made
        self.next_id = 0
        self.ref: list[list] = []  # reference evictable queue: [key, blocks], the next to be evicted first

    # ---------------------------------------------------------------- reference queue
    def _refs(self) -> dict:
        return {key: unit[0] for key, unit in self.kv._units.items()}

    def _after_take(self, before_evictable: int, revived: set) -> None:
        """Drop revived units from the reference, then evict from its head what the manager evicted."""
        revived_blocks = sum(blocks for key, blocks in self.ref if key in revived)
        self.ref = [e for e in self.ref if e[0] not in revived]
        remaining = before_evictable - revived_blocks - self.kv.num_evictable
        assert remaining >= 0
        while remaining:
            key, blocks = self.ref[0]
            if blocks <= remaining:
                self.ref.pop(0)
                remaining -= blocks
            else:
                assert key[0] == "kept", f"a unit of {blocks} blocks split by an eviction of {remaining}"
                self.ref[0][1] -= remaining
                remaining = 0

    def _after_release(self, req_units: list, refs: dict) -> list:
        """Append what a release queued: the new units (in the order made), then the shared units
        whose last reference went (tail first); returns the new units' keys."""
        new = sorted((key for key in self.kv._units if key not in refs), key=lambda k: k[1])
        for key in new:
            self.ref.append([key, self.kv._units[key][1]])
        after = self._refs()
        for key in reversed(req_units):
            if refs.get(key, 0) > 0 and after.get(key) == 0:
                self.ref.append([key, self.kv._units[key][1]])
        return new

    def _revived(self, refs: dict, req: Request) -> set:
        after = self._refs()
        revived = {key for key, n in refs.items() if n == 0 and after.get(key, 0) > 0}
        kept = self.kept.get(req.id)
        if kept is not None and kept in refs and kept not in after:  # taken by its request, not evicted
            if req.kv_blocks and req.num_cached_tokens:
                revived.add(kept)
        return revived

    # ---------------------------------------------------------------- rules
    @rule(input_tokens=st.integers(1, 200), chain_len=st.integers(0, 3), chain_seed=st.integers(0, 1),
          chunk=st.integers(1, 200))
    def admit(self, input_tokens, chain_len, chain_seed, chunk):
        chain = tuple((chain_seed, j) for j in range(chain_len)) if chain_len else None
        req = make_req(self.next_id, input_tokens, chain)
        self.next_id += 1
        self._admit(req, chunk)

    def _admit(self, req: Request, chunk: int) -> bool:
        kv = self.kv
        counts = (kv.num_used, kv.num_free, kv.num_evictable)
        total = req.input_tokens + req.num_output_tokens
        covered = kv.covered_tokens(req)
        n = min(chunk, total - covered)
        surviving = dict((k, b) for k, b in self.ref).get(self.kept.get(req.id), 0)
        refs, before = self._refs(), kv.num_evictable
        got = kv.allocate(req, n, match_prefix=True)
        if got is None:
            assert (kv.num_used, kv.num_free, kv.num_evictable) == counts
            assert req.kv_blocks == 0 and req.kv_units is None
            return False
        self._after_take(before, self._revived(refs, req))
        assert req.num_computed_tokens == covered
        if req.prefix_hashes is None and req.id in self.kept:
            hit = min(surviving, (total - 1) // BLOCK)
            assert req.num_cached_tokens == hit * BLOCK, (surviving, total)
            del self.kept[req.id]
        req.num_computed_tokens += n
        if req.num_computed_tokens >= req.input_tokens:
            kv.commit_prefix(req)
        self.live.append(req)
        return True

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000), tokens=st.integers(1, 40))
    def grow(self, pick, tokens):
        req = self.live[pick % len(self.live)]
        before = self.kv.num_evictable
        if self.kv.allocate(req, tokens) is None:
            return
        self._after_take(before, set())
        req.num_computed_tokens += tokens
        req.num_output_tokens = max(0, req.num_computed_tokens - req.input_tokens + 1)

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000))
    def finish(self, pick):
        req = self.live.pop(pick % len(self.live))
        units, refs = list(req.kv_units or ()), self._refs()
        self.kv.free(req)
        new = self._after_release(units, refs)
        assert all(key[0] == "released" for key in new)

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 1000))
    def preempt(self, pick):
        req = self.live.pop(pick % len(self.live))
        units, refs = list(req.kv_units or ()), self._refs()
        full = max(0, min(req.num_computed_tokens // BLOCK - req.kv_shared_blocks, req.kv_blocks))
        preempt(self.kv, req)
        new = self._after_release(units, refs)
        kept = [key for key in new if key[0] == "kept"]
        assert [self.kv._units[key][1] for key in kept] == ([full] if full else [])
        if kept:
            self.kept[req.id] = kept[0]
        else:
            self.kept.pop(req.id, None)
        self.preempted.append(req)

    @precondition(lambda self: self.preempted)
    @rule(pick=st.integers(0, 1000), chunk=st.integers(1, 400))
    def readmit(self, pick, chunk):
        req = self.preempted[pick % len(self.preempted)]
        if self._admit(req, chunk):
            self.preempted.remove(req)

    @precondition(lambda self: self.preempted)
    @rule(pick=st.integers(0, 1000))
    def give_up(self, pick):
        req = self.preempted.pop(pick % len(self.preempted))
        self.kv.free(req)  # holds nothing: a rejection; its retained unit stays, unmatched
        self.kept.pop(req.id, None)

    # ---------------------------------------------------------------- invariants
    @invariant()
    def totals(self):
        self.kv.check_invariants()

    @invariant()
    def evictable_in_reference_order(self):
        assert self.kv.evictable_units() == [tuple(e) for e in self.ref]

    @invariant()
    def used_is_what_live_requests_hold(self):
        units, private = {}, 0
        for req in self.live:
            private += req.kv_blocks
            for key in req.kv_units or ():
                units[key] = self.kv._units[key][1]
            assert req.kv_shared_blocks == sum(self.kv._units[key][1] for key in req.kv_units or ())
        assert self.kv.num_used == private + sum(units.values())
        assert all(not r.kv_blocks and not r.kv_units for r in self.preempted)

    def teardown(self):
        for req in self.live:
            self.kv.free(req)
        assert self.kv.num_used == 0
        self.kv.check_invariants()


TestRetentionMachine = RetentionMachine.TestCase
TestRetentionMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


class RetentionMachineCompacting(RetentionMachine):
    """The same, with the LRU's stale entries dropped as soon as they outnumber the live ones."""

    def __init__(self):
        super().__init__()
        self.kv.stale_slack = 0


TestRetentionMachineCompacting = RetentionMachineCompacting.TestCase
TestRetentionMachineCompacting.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


# -------------------------------------------------------------------- unit cases
def test_resumed_with_no_competition_hits_all_its_full_blocks():
    kv = make_kv(num_blocks=40, prefix=False)
    a = make_req(0, 100)
    run_to(kv, a, 130)  # 100 prompt + 30 generated tokens: 8 full blocks, 9 held
    assert a.kv_blocks == 9
    preempt(kv, a)
    assert (kv.num_used, kv.num_evictable, kv.num_free) == (0, 9, 31)
    assert kv.covered_tokens(a) == 8 * BLOCK
    assert kv.allocate(a, a.input_tokens + a.num_output_tokens - 8 * BLOCK, match_prefix=True) == 1
    assert (a.num_computed_tokens, a.num_cached_tokens, a.kv_blocks) == (128, 128, 9)
    assert kv.retention_stats() == (1, 128) and kv.prefix_stats() == (0, 0, 0)
    kv.check_invariants()


def test_partly_evicted_hits_only_its_leading_surviving_blocks():
    kv = make_kv(num_blocks=20, prefix=False)
    a = make_req(0, 160)
    run_to(kv, a, 160)  # 10 full blocks
    preempt(kv, a)
    b = make_req(1, 16 * 13)
    run_to(kv, b, 16 * 13)  # 10 free blocks, then 3 taken from a's tail end
    assert kv.evictable_units()[0][1] == 7
    assert kv.covered_tokens(a) == 7 * BLOCK
    assert kv.allocate(a, 1, match_prefix=True) is None  # 7 hit + 3 new blocks: only the 7 available
    kv.free(b)
    assert kv.allocate(a, a.input_tokens - 7 * BLOCK, match_prefix=True) == 3
    assert a.num_cached_tokens == 7 * BLOCK
    kv.check_invariants()


def test_prompt_and_generated_blocks_are_hit_but_never_every_token():
    kv = make_kv(num_blocks=20, prefix=False)
    a = make_req(0, 100)
    run_to(kv, a, 160)  # the 160 computed tokens fill 10 blocks; 161 tokens in all (one not computed)
    preempt(kv, a)
    assert kv.covered_tokens(a) == 160
    a.num_output_tokens -= 1  # were there 160 tokens in all, one must be recomputed: 9 blocks hit
    assert kv.covered_tokens(a) == 9 * BLOCK


def test_freed_blocks_are_reused_in_the_order_they_were_freed():
    """A finish after a preemption queues its blocks behind the retained ones (vLLM's one free queue)."""
    kv = make_kv(num_blocks=20, prefix=False)
    a, b = make_req(0, 160), make_req(1, 160)
    run_to(kv, a, 160)
    run_to(kv, b, 160)
    preempt(kv, a)
    kv.free(b)
    assert kv.num_free == 0 and [blocks for _key, blocks in kv.evictable_units()] == [10, 10]
    c = make_req(2, 64)
    run_to(kv, c, 64)  # 4 blocks: from a's retained unit, not b's
    assert kv.covered_tokens(a) == 6 * BLOCK
    kv.check_invariants()


def test_without_retention_a_preemption_frees_everything():
    kv = make_kv(num_blocks=20, prefix=False, retain=False)
    a = make_req(0, 160)
    run_to(kv, a, 160)
    preempt(kv, a)
    assert (kv.num_free, kv.num_evictable, kv.covered_tokens(a)) == (20, 0, 0)


def test_chain_of_shared_units_must_be_matched_again():
    kv = make_kv(num_blocks=24)
    chain = (("p", 0), ("p", 1))
    a = make_req(0, 100, chain)
    run_to(kv, a, 100)
    kv.commit_prefix(a)  # 2 units of 2 blocks, then 2 full private blocks
    assert (a.kv_shared_blocks, a.kv_blocks) == (4, 3)
    preempt(kv, a)
    assert kv.covered_tokens(a) == 6 * BLOCK  # the chain, then its retained blocks
    filler = make_req(1, 16 * 20)
    run_to(kv, filler, 16 * 20)  # 17 free, then its tail-first evictions: a's partial block's unit, 2 retained
    assert kv.cached_prefix_tokens(a) == 64 and kv.covered_tokens(a) == 64
    kv.check_invariants()


def test_a_manager_with_its_own_free_refuses_retention():
    from policies.kv.cacheopt import CacheOptKVManager

    params = CacheOptKVManager.Params(num_blocks=64, retain_preempted_blocks=True)
    with pytest.raises(ConfigError, match="retain_preempted_blocks"):
        CacheOptKVManager(params, BuildContext(rng=np.random.default_rng(0), cost_model=_Cost()))


# -------------------------------------------------------------------- whole runs
_LENGTHS = {"file": str(DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv")}


def _config(scheduler: str, retain: bool, fast_forward: bool = True, sessions: bool = False) -> dict:
    workload = ({"name": "sessions", "num_sessions": 60, "rate_rps": 8.0, "turns": 2, "turns_max": 4,
                 "think_time_s": 0.5, "system_prompt_tokens": 512, "input_tokens": 300, "output_tokens": 200}
                if sessions else
                {"name": "synthetic", "num_requests": 250, "rate_rps": 20.0, "lengths": _LENGTHS})
    kv = {"name": "paged", "num_blocks": 900, "retain_preempted_blocks": retain,
          "enable_prefix_caching": sessions}
    pool = {"name": "main", "num_replicas": 1, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B", "tp": 1},
            "cost_model": "analytic", "scheduler": scheduler, "kv": kv}
    return {"seed": 3, "workload": workload, "cluster": {"pools": [pool]},
            "output": {"record_token_times": True}, "engine": {"progress": False, "fast_forward": fast_forward}}


CASES = [("vllm_v1", False), ("vllm", False), ("vllm_v1", True)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}{'_sessions' if p else ''}" for s, p in CASES])
def runs(request):
    scheduler, sessions = request.param
    return {mode: run_cluster(_config(scheduler, True, mode == "fast", sessions)) for mode in ("fast", "slow")} | {
        "off": run_cluster(_config(scheduler, False, True, sessions)), "case": request.param}


def test_runs_preempt_and_hit_retained_blocks(runs):
    kv = runs["fast"].replicas[0].kv
    queries, hit_tokens = kv.retention_stats()
    df = runs["fast"].recorder.requests_frame()
    assert df["num_preemptions"].sum() > 10 and queries > 10 and hit_tokens > 0


def test_every_request_finishes_and_kv_ends_free(runs):
    for mode in ("fast", "slow"):
        cluster = runs[mode]
        df = cluster.recorder.requests_frame()
        assert len(df) == cluster.num_arrived == cluster.num_done and set(df["state"]) == {"finished"}
        assert (df["num_output_tokens"] == df["output_tokens"]).all()
        kv = cluster.replicas[0].kv
        kv.check_invariants()
        assert kv.num_used == 0 and kv.num_free + kv.num_evictable == kv.num_blocks


def test_fast_path_equals_stepping(runs):
    assert_same_run(runs["fast"], runs["slow"])


def test_same_seed_same_run(runs):
    scheduler, sessions = runs["case"]
    assert_same_run(runs["fast"], run_cluster(_config(scheduler, True, True, sessions)))


def test_retention_saves_recompute(runs):
    """Fewer prompt tokens computed with retention than without (the same requests). Not asked of
    the sessions case: there the one free queue also lets a finished request's blocks wait behind
    cached prefix units (free first no more), so units are evicted sooner and prefix hits fall (a
    run of this case computed 114,799 prompt tokens with retention, 111,150 without)."""
    scheduler, sessions = runs["case"]
    if sessions:
        pytest.skip("prefix units age in the same queue: fewer prefix hits may outweigh the retained ones")
    computed = {}
    for retain in (True, False):
        config = _config(scheduler, retain, True, sessions)
        config["output"]["record_steps"] = True
        cluster = run_cluster(config)
        computed[retain] = int(cluster.recorder.steps_frame()["prefill_tokens"].sum())
    assert computed[True] < computed[False]
    assert runs["off"].replicas[0].kv.retention_stats() == (0, 0)
