"""Paged KV cache with reference-counted prefix units, LRU eviction and host swap.

Blocks are counted, not materialised as objects: the simulator needs how many blocks each
request holds and which prompt prefixes are cached, not block addresses.

::

    total blocks = used + evictable + free
    +--------------------------- used ----------------------------+- evictable -+-- free --+
    | private blocks of live requests | prefix units with refs > 0 | units, refs 0 | no data  |
    +---------------------------------+----------------------------+  (LRU order) +----------+

A *prefix unit* is one entry of a request's ``prefix_hashes`` (e.g. a 512-token Mooncake
hash id): ``prefix_block_tokens / block_size`` blocks, shared by every request whose prompt
starts with the same chain of ids. A new request takes references on the longest chain of
cached units (cached tokens skip prefill compute); when its prefill finishes, the full units
it computed become cached; when it finishes, its references drop and units with no
references become evictable. Allocation takes free blocks first, then evicts the least
recently released units.

The facade (vLLM v1's ``allocate_slots``): the engine, its fast path, its metrics and every
scheduler ask this class, never do block arithmetic themselves.

- ``allocate(req, new_tokens, lookahead=0, reserve_blocks=0, reserve_tokens=0, match_prefix=False)``
  grows ``req``'s KV to hold its computed tokens + ``new_tokens`` + ``lookahead`` slots (or
  ``reserve_tokens`` in all, Orca's up-front reservation), keeping ``reserve_blocks``
  available; with ``match_prefix`` it first takes references on the request's longest cached
  prefix. It returns the blocks newly taken (0 is a success) or **None: no room**, in which
  case nothing changed and the scheduler decides whom to preempt.
- ``blocks_needed``, ``num_available``, ``never_fits``, ``covered_tokens``: the questions.
- ``share(src, dst, num_tokens)``: ``dst`` references ``src``'s first blocks (reference
  counts; private blocks of ``src`` become an anonymous shared unit, freed with its last
  reference); ``trim(req, keep_tokens)`` returns blocks beyond ``keep_tokens`` (rejected
  speculative slots); ``free``, ``detach``/``free_detached``, ``swap_out``/``swap_in``.

Invariants (tests/engine/test_kv_state_machine.py): used + evictable + free = total, every
reference count >= 0, a request holds ``kv_blocks + kv_shared_blocks`` blocks.

Retention (``retain_preempted_blocks``; vLLM V1, whose prefix caching is on by default). Read from
vLLM's code (vllm/v1/core: ``single_type_kv_cache_manager.free``, ``block_pool.free_blocks`` /
``get_new_block_bundles`` / ``cache_full_blocks``, ``kv_cache_utils.FreeKVCacheBlockQueue``,
``kv_cache_manager.get_computed_blocks``, the scheduler's preemption): every full block, prompt or
generated, carries its hash; a freed block keeps it and joins one free queue at its tail, a request's
blocks in reverse order (its tail first); allocation pops the head (the least recently freed), dropping
that block's hash; a recompute preemption frees the request's blocks like a finish, and when it is
scheduled again its leading blocks still holding their hashes are cache hits (at most all its tokens
but one). Here that is:

- ``free_preempted(req)`` (recompute preemption): its full private blocks (computed tokens // block
  size, beyond the shared units it references) become one evictable unit of its own (no
  ``prefix_hashes`` needed), behind its other private blocks and before its shared units, all at the
  LRU's tail; eviction takes such a unit block by block from its tail end (``_evict``).
- When it is admitted again (``allocate(..., match_prefix=True)``) the unit's surviving blocks, if the
  shared units it held before are matched again, become its private blocks and count as cached tokens
  (``retention_stats``, kept apart from ``prefix_stats``; ``req.num_cached_tokens`` holds both).
- ``free(req)`` of a request (a finish, a rejection, a swap-out; not the anonymous holder of a
  migration's reserved blocks, id < 0) puts its private blocks on the LRU's tail as a unit nobody can
  match (in vLLM: blocks whose hashes no other prompt will ask for, or partial ones without a hash),
  instead of making them free: they are reused in the order they were freed, not before every
  retained block. Only blocks never used yet are free first (vLLM's queue starts with all of them).

Simplifications and what is not verified: in vLLM any request with the same tokens could hit a
preempted request's hashed blocks; here its retained blocks are its alone (random prompts share none;
shared prompts are ``prefix_hashes`` units as before), and a request referencing an anonymous shared
unit (``share``) retains nothing. The blocks ``trim`` returns (rejected speculative slots) are free at
once, not queued. The code was read at a stored copy of vllm-project/vllm (commit 002f3491), not at
each release's tag: that later V1 releases (e.g. 0.20) keep the same free order and hit rule is
assumed, not checked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.engine.monotone import last_within
from sim.engine.request import Request
from sim.engine.seams import BuildContext
from sim.errors import ConfigError
from sim.registry import KV_MANAGERS
from sim.schema import param


@dataclass
class PagedKVParams:
    """vLLM's defaults: 16-token blocks, 90% of device memory, 1% admission watermark."""

    block_size: int = param(16, ge=1, doc="tokens per KV block")
    gpu_memory_utilization: float = param(0.9, gt=0, le=1, doc="share of device memory the engine may use")
    num_blocks: int | None = param(None, ge=1, doc="override the block count derived from memory")
    watermark: float = param(0.01, ge=0, lt=1, doc="share of blocks kept free when admitting prefills")
    enable_prefix_caching: bool = param(False, doc="reuse KV of identical prompt prefixes")
    preemption_mode: Literal["recompute", "swap"] = param("recompute", doc="how a preempted request loses its KV")
    swap_space_gb: float = param(4.0, ge=0, doc="host memory per GPU for swapped KV (vLLM default 4 GiB)")
    retain_preempted_blocks: bool = param(
        False, doc="vLLM V1 with prefix caching: a request preempted by recompute keeps its full blocks as "
                   "evictable cache (tail first) and hits the survivors when readmitted; freed blocks queue "
                   "for reuse in the order they were freed (see 'Retention' in the module docstring)")


@KV_MANAGERS.register("paged")
class PagedKVManager:
    """Block accounting, prefix reuse and swap for one replica (vLLM-style paged attention).

    Built as ``cls(params, ctx)``: the block count comes from ``ctx.cost_model``'s KV capacity
    (or ``num_blocks``), the bytes per block from its ``kv_bytes_per_token``.
    """

    Params = PagedKVParams
    stale_slack = 1024  # stale LRU entries allowed beyond the live ones before they are dropped (_compact_lru)

    def __init__(self, params: PagedKVParams, ctx: BuildContext):
        cost_model = ctx.cost_model
        bytes_per_token = cost_model.kv_bytes_per_token
        if params.num_blocks is not None:
            num_blocks = params.num_blocks
        else:
            capacity = cost_model.kv_capacity_bytes(params.gpu_memory_utilization)
            num_blocks = int(capacity // (params.block_size * bytes_per_token))
        num_gpus = getattr(cost_model, "num_gpus", 1)
        self.params = params
        self.block_size = params.block_size
        self.num_blocks = num_blocks
        self.bytes_per_block = bytes_per_token * params.block_size
        self.watermark_blocks = int(params.watermark * num_blocks)
        self.prefix_caching = params.enable_prefix_caching
        self.retain_blocks = params.retain_preempted_blocks
        if self.retain_blocks and type(self).free is not PagedKVManager.free:
            raise ConfigError(f"kv manager {type(self).__name__} frees blocks its own way: "
                              "retain_preempted_blocks needs the paged manager's free")
        self._kept: dict = {}               # request id -> (key of its retained unit, shared units it held)
        self._num_released = 0              # units made of freed blocks (keys ("released", n) / ("kept", n))
        self.num_retention_queries = 0
        self.num_retention_hit_tokens = 0
        host_bytes = params.swap_space_gb * (1 << 30) * num_gpus
        self.num_host_blocks = int(host_bytes // self.bytes_per_block) if self.bytes_per_block else 0
        self.num_host_used = 0
        self.num_free = num_blocks          # blocks holding no data
        self.num_used = 0                   # blocks referenced by live requests
        self.num_evictable = 0              # blocks of cached units nobody references
        self._units: dict = {}              # unit key -> [refcount, blocks, key, stale entries]
        self._lru: deque = deque()          # units released to no reference, oldest first (see _evict)
        self._num_stale = 0                 # entries of ``_lru`` left by units referenced again
        self._num_shares = 0
        self._anon: set = set()             # keys of the anonymous units made by share()
        self.num_prefix_queries = 0
        self.num_prefix_query_tokens = 0
        self.num_prefix_hit_tokens = 0
        if type(self).allocate is not PagedKVManager.allocate:  # a subclass's allocate has its own steps
            self.grow = self.allocate
        # allocate_each(reqs, n) gives each request blocks for its computed + n tokens, nothing
        # else: a fast-path stretch may take its blocks before its tokens are counted (sync_kv)
        self.allocates_by_target = type(self).allocate_each is PagedKVManager.allocate_each
        # a finish only gives blocks back (free) and ``affordable_steps`` only reads: a decode
        # stretch may count on the blocks available now for iterations after a finish (thru_finish.py)
        self.finishes_give_back = self.allocates_by_target and type(self).free is PagedKVManager.free \
            and type(self).affordable_steps is PagedKVManager.affordable_steps

    # ------------------------------------------------------------------ questions
    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens."""
        return -(-num_tokens // self.block_size)

    @property
    def num_available(self) -> int:
        """Blocks an allocation could obtain now (free + evictable)."""
        return self.num_free + self.num_evictable

    @property
    def max_tokens(self) -> int:
        """Tokens the whole cache holds."""
        return self.num_blocks * self.block_size

    def held_blocks(self, req: Request) -> int:
        """Blocks whose KV ``req`` can use (its private blocks and the shared units it references)."""
        return req.kv_blocks + req.kv_shared_blocks

    def blocks_needed(self, req: Request, num_new_tokens: int, lookahead: int = 0) -> int:
        """Blocks ``req`` must obtain to compute ``num_new_tokens`` more tokens (plus ``lookahead``
        speculative slots); 0 when it holds enough."""
        need = self.blocks_for(req.num_computed_tokens + num_new_tokens + lookahead) - req.kv_blocks \
            - req.kv_shared_blocks
        return need if need > 0 else 0

    def never_fits(self, req: Request, reserve_blocks: int = 0) -> bool:
        """True if ``req``'s prompt (and generated tokens) could not be held even with every block free."""
        return self.blocks_for(req.input_tokens + req.num_output_tokens) > self.num_blocks - reserve_blocks

    def admission_stable(self) -> bool:
        """Whether, from now until blocks are released, while the only allocations are running
        requests' growth, every answer an admission gets stays as it is or turns against it
        (decode stretches with a blocked queue: sim/engine/blocked_stretch.py): no cached unit
        can be evicted (none is evictable), so prefix hits and each request's blocks needed stay
        the same while the blocks available only fall; and the allocation steps are these (a
        subclass's own ``allocate`` or ``allocate_each`` may free or map blocks as it goes)."""
        return not self.num_evictable and self.allocates_by_target and type(self).allocate is PagedKVManager.allocate

    def covered_tokens(self, req: Request) -> int:
        """Tokens of ``req`` that need no compute if it starts now: those already computed, or
        its cached prefix (at most all but one prompt token; the last one emits the first token)."""
        cached = self.cached_prefix_tokens(req)
        if cached > req.input_tokens - 1:
            cached = req.input_tokens - 1
        if self._kept and req.id in self._kept:
            shared, hit = self._retained_hit(req)
            if hit:
                cached = (shared + hit) * self.block_size
        return req.num_computed_tokens if req.num_computed_tokens > cached else cached

    # ------------------------------------------------------------------ allocation
    def allocate(self, req: Request, num_new_tokens: int, lookahead: int = 0, reserve_blocks: int = 0,
                 reserve_tokens: int = 0, match_prefix: bool = False, covered: int | None = None) -> int | None:
        """Grow ``req``'s KV for ``num_new_tokens`` more tokens and ``lookahead`` slots (or to
        ``reserve_tokens`` in all, if more), keeping ``reserve_blocks`` available.

        With ``match_prefix`` (a request starting here) the longest cached prefix is referenced
        first and the room check counts the prefix as covered tokens still to be held (the
        check vLLM makes before it touches the cache). Returns the blocks newly taken, or None
        when there is no room (then nothing changed). ``covered``: ``covered_tokens(req)`` if the
        caller has it already.
        """
        bs = self.block_size
        if match_prefix and req.kv_units is None and (
                (self.prefix_caching and req.prefix_hashes) or (self._kept and req.id in self._kept)):
            if covered is None:
                covered = self.covered_tokens(req)
            total = covered + num_new_tokens + lookahead
            if reserve_tokens > total:
                total = reserve_tokens
            if -(-total // bs) - req.kv_blocks - req.kv_shared_blocks > self.num_free + self.num_evictable \
                    - reserve_blocks:
                return None
            self.match_prefix(req)
        # inlined blocks_needed: this runs for every request in every iteration
        total = req.num_computed_tokens + num_new_tokens + lookahead
        if reserve_tokens > total:
            total = reserve_tokens
        need = -(-total // bs) - req.kv_blocks - req.kv_shared_blocks
        if need <= 0:
            return 0
        if need > self.num_free + self.num_evictable - reserve_blocks:
            return None
        self._take(need)
        req.kv_blocks += need
        return need

    def grow(self, req: Request, num_new_tokens: int, lookahead: int = 0) -> int | None:
        """``allocate(req, num_new_tokens, lookahead)`` for a running request (``ReplicaOps.grow``:
        once per request in every stepped iteration), its steps inlined. A subclass that
        overrides ``allocate`` gets that here instead (see ``__init__``)."""
        need = -(-(req.num_computed_tokens + num_new_tokens + lookahead) // self.block_size) - req.kv_blocks \
            - req.kv_shared_blocks
        if need <= 0:
            return 0
        free = self.num_free
        if need > free:  # ``_take``, inlined
            if need > free + self.num_evictable:
                return None
            self._evict(need - free)
        self.num_free -= need
        self.num_used += need
        req.kv_blocks += need
        return need

    def allocate_each(self, reqs: list[Request], num_new_tokens: int) -> bool:
        """``allocate(r, num_new_tokens)`` for each of ``reqs`` in order (the fast path's decode
        batches); False at the first with no room, those before it keeping their blocks. Only
        the requests that cross a block boundary take blocks (``allocate``'s steps, inlined)."""
        bs = self.block_size
        for r in reqs:
            need = -(-(r.num_computed_tokens + num_new_tokens) // bs) - r.kv_blocks - r.kv_shared_blocks
            if need > 0:
                free = self.num_free
                if need > free:  # ``_take``, inlined
                    if need > free + self.num_evictable:
                        return False
                    self._evict(need - free)
                self.num_free -= need
                self.num_used += need
                r.kv_blocks += need
        return True

    def take_grown(self, num_blocks: int) -> bool:
        """Take ``num_blocks`` for requests whose ``kv_blocks`` the caller has raised by that many
        in all, each to hold its computed + n tokens (``allocate_each(reqs, n)``'s steps, with the
        boundary crossings found in a pass of the caller's own): the takes as one, as in
        ``allocate_all`` (LRU eviction pops the same oldest units); False if they cannot be had
        (the caller's stretch then has no plan to go on with)."""
        if num_blocks > self.num_free + self.num_evictable:
            return False
        self._take(num_blocks)
        return True

    def allocate_all(self, reqs: list[Request], num_new_tokens: int) -> bool:
        """``allocate(r, num_new_tokens)`` for each of ``reqs`` in order if their blocks, summed,
        are available now (True: each succeeds, as it would one by one); else False and nothing
        changes."""
        bs = self.block_size
        total = 0
        takers = []  # (request, blocks) of those crossing a block boundary, in order
        for r in reqs:
            need = -(-(r.num_computed_tokens + num_new_tokens) // bs) - r.kv_blocks - r.kv_shared_blocks
            if need > 0:
                total += need
                takers.append((r, need))
        if total > self.num_free + self.num_evictable:
            return False
        if not self.allocates_by_target:  # a subclass's own allocate_each steps (memshare)
            if not self.allocate_each(reqs, num_new_tokens):
                raise AssertionError("allocate_each failed within the blocks available")
            return True
        # ``allocate_each``'s steps for the takers alone (the others take nothing), their takes as
        # one: LRU eviction pops the oldest units until the blocks freed cover the need, so a run
        # of takes evicts exactly the units one take of their sum does
        self._take(total)
        for r, need in takers:
            r.kv_blocks += need
        return True

    def trim(self, req: Request, keep_tokens: int) -> int:
        """Return ``req``'s private blocks beyond those ``keep_tokens`` tokens need (rejected
        speculative slots); returns the blocks freed."""
        extra = req.kv_blocks + req.kv_shared_blocks - self.blocks_for(keep_tokens)
        if extra <= 0:
            return 0
        if extra > req.kv_blocks:
            extra = req.kv_blocks
        req.kv_blocks -= extra
        self.num_used -= extra
        self.num_free += extra
        return extra

    def _take(self, need: int) -> None:
        """Move ``need`` blocks from free (evicting LRU units first if short) to used."""
        if need > self.num_free:
            self._evict(need - self.num_free)
        self.num_free -= need
        self.num_used += need

    def _evict(self, num_blocks: int) -> None:
        """Evict the least recently released units until ``num_blocks`` blocks are freed.

        The LRU is a queue of units in the order their last reference went (``free`` appends),
        and a unit referenced again (``match_prefix``) stays in it as a *stale* entry, counted
        in the unit (``unit[3]``) instead of being taken out::

            _lru (oldest first):  A  B  A' C  B'    A, B: stale (revived and released again since: A', B')
            evictable order:            A' C  B'    what an ordered dict of keys would hold

        A unit's entries are in the order it was released and only its newest can be live (it
        is released again only after being revived, which made the one before it stale), so the
        oldest entry of a unit with stale entries is one of them. Popping from the front and
        skipping an entry whose unit still counts stale ones (one fewer each) therefore meets
        the live units in exactly the order, and with exactly the keys, of an LRU that removes
        a unit on revival: the same units are evicted. Appends, pops and revivals are O(1), with
        no hashing (an ``OrderedDict`` spent about 600 instructions on each insert, delete and
        pop); ``_compact_lru`` bounds the stale entries."""
        popleft, units = self._lru.popleft, self._units
        freed = skipped = 0
        while freed < num_blocks:
            unit = popleft()
            if unit[3]:  # an older entry of a unit released again later (or in use): not this one
                unit[3] -= 1
                skipped += 1
                continue
            if freed + unit[1] > num_blocks and self.retain_blocks and type(unit[2]) is tuple and unit[2][0] == "kept":
                # a retained unit gives up blocks one by one from its tail end (vLLM frees a request's
                # blocks in reverse): as many as are still needed, the rest stays at the head
                unit[1] -= num_blocks - freed
                freed = num_blocks
                self._lru.appendleft(unit)
                break
            del units[unit[2]]
            freed += unit[1]
        self._num_stale -= skipped
        self.num_evictable -= freed
        self.num_free += freed

    def _compact_lru(self) -> None:
        """Drop ``_lru``'s stale entries (``_evict``'s skips, without evicting), keeping the order."""
        lru = self._lru
        for _ in range(len(lru)):
            unit = lru.popleft()
            if unit[3]:
                unit[3] -= 1
            else:
                lru.append(unit)
        self._num_stale = 0

    def evictable_units(self) -> list[tuple]:
        """(key, blocks) of the evictable units, the next to be evicted first (for tests and checks)."""
        skip: dict[int, int] = {}
        order = []
        for unit in self._lru:
            stale = skip.get(id(unit), unit[3])
            if stale:
                skip[id(unit)] = stale - 1
            else:
                order.append((unit[2], unit[1]))
        return order

    def free(self, req: Request) -> None:
        """Release every block ``req`` holds (finish, rejection, swap-out; a recompute preemption
        goes through ``free_preempted``). With retention its private blocks queue on the LRU's
        tail as a unit nobody matches (see 'Retention' above); else they are free at once."""
        if self.retain_blocks and req.id >= 0 and req.kv_blocks:
            self._release_private(req, 0)
        keys = req.kv_units
        if keys:
            units, anon = self._units, self._anon
            append = self._lru.append
            released = evictable = 0
            if not anon:  # no anonymous unit exists: every released unit becomes evictable
                for key in reversed(keys):  # tail units become the oldest evictable
                    unit = units[key]
                    if unit[0] == 1:  # its last reference (most units have one holder)
                        unit[0] = 0
                        append(unit)
                        evictable += unit[1]
                    else:
                        unit[0] -= 1
                released = evictable
            else:
                for key in reversed(keys):
                    unit = units[key]
                    unit[0] -= 1
                    if unit[0] == 0:
                        blocks = unit[1]
                        released += blocks
                        if key in anon:  # a shared unit nobody can match again: free it
                            del units[key]
                            anon.discard(key)
                        else:
                            evictable += blocks
                            append(unit)
            self.num_used -= released
            self.num_evictable += evictable
            self.num_free += released - evictable
        req.kv_units = None
        req.kv_shared_blocks = 0
        self.num_used -= req.kv_blocks
        self.num_free += req.kv_blocks
        req.kv_blocks = 0

    def free_preempted(self, req: Request) -> None:
        """Release ``req``'s blocks on a recompute preemption. Without retention, ``free(req)``;
        with it, its full private blocks become an evictable unit of its own, hit again when it is
        admitted (``match_prefix``), its other private blocks queue before them (vLLM frees a
        request's blocks tail first), then its shared units are released as ``free`` does."""
        if not self.retain_blocks or req.id < 0 or (req.kv_units and self._anon
                                                     and any(key in self._anon for key in req.kv_units)):
            self.free(req)  # a request referencing another's blocks (share) keeps no chain of its own
            return
        full = req.num_computed_tokens // self.block_size - req.kv_shared_blocks
        if full > req.kv_blocks:
            full = req.kv_blocks
        if full < 0:
            full = 0
        self._release_private(req, full)
        self.free(req)  # the shared units (its private blocks are released already)

    def _release_private(self, req: Request, full: int) -> None:
        """Move ``req``'s private blocks to the LRU's tail: those beyond its first ``full`` as a unit
        nobody matches, then (``full`` > 0) its first ``full`` as its retained unit; they are
        evictable, no longer used."""
        blocks = req.kv_blocks
        append, units = self._lru.append, self._units
        rest = blocks - full
        if rest:
            self._num_released += 1
            key = ("released", self._num_released)
            unit = [0, rest, key, 0]
            units[key] = unit
            append(unit)
        if full:
            self._num_released += 1
            key = ("kept", self._num_released)
            unit = [0, full, key, 0]
            units[key] = unit
            append(unit)
            # an older retained unit of the request (preempted again elsewhere since) stays, unmatched
            self._kept[req.id] = (key, len(req.kv_units or ()))
        self.num_used -= blocks
        self.num_evictable += blocks
        req.kv_blocks = 0

    def _retained_hit(self, req: Request) -> tuple[int, int]:
        """(blocks of shared units before it, blocks of ``req``'s retained unit it would hit now): its
        unit's surviving blocks if the shared units it held when preempted are cached again, at most
        all its tokens but one (read-only)."""
        key, chain = self._kept[req.id]
        unit = self._units.get(key)
        if unit is None:
            return 0, 0
        # its unit starts after the ``chain`` shared units it held: a hit only if the prefix match
        # finds exactly those again (more would overlap the unit's blocks, fewer break the chain)
        matched = self.cached_prefix_tokens(req) // req.prefix_block_tokens \
            if self.prefix_caching and req.prefix_hashes else 0
        if matched != chain:
            return 0, 0
        shared = chain * self._unit_blocks(req) if chain else 0
        hit = (req.input_tokens + req.num_output_tokens - 1) // self.block_size - shared
        if hit > unit[1]:
            hit = unit[1]
        return shared, hit if hit > 0 else 0

    def _take_retained(self, req: Request) -> int:
        """Turn ``req``'s retained unit into its private blocks as far as ``_retained_hit`` allows
        (the rest of the unit becomes free); returns the blocks hit. Its chain of shared units is
        referenced already (``match_prefix``)."""
        shared, hit = self._retained_hit(req)
        key, _chain = self._kept.pop(req.id)
        self.num_retention_queries += 1
        unit = self._units.get(key)
        if unit is None or not hit or req.kv_shared_blocks != shared or req.kv_blocks:
            return 0  # evicted, or its chain not matched again: the unit stays, unmatched
        del self._units[key]
        unit[3] += 1  # its LRU entry is stale now (_evict skips it)
        self._num_stale += 1
        if 2 * self._num_stale > len(self._lru) + self.stale_slack:
            self._compact_lru()
        blocks = unit[1]
        self.num_evictable -= blocks
        self.num_used += hit
        self.num_free += blocks - hit
        req.kv_blocks = hit
        self.num_retention_hit_tokens += hit * self.block_size
        return hit

    def retention_stats(self) -> tuple[int, int]:
        """(readmissions of requests with retained blocks, tokens they found cached) so far."""
        return self.num_retention_queries, self.num_retention_hit_tokens

    # ------------------------------------------------------------------ sharing
    def share(self, src: Request, dst: Request, num_tokens: int) -> int:
        """Let ``dst`` (holding nothing here) reference ``src``'s first full blocks covering up to
        ``num_tokens`` tokens, by reference count (parallel samples, forks, shared contexts).
        ``src``'s private blocks among them become one anonymous shared unit, freed when its last
        reference goes. Returns the tokens ``dst`` now has KV for (a multiple of the block size)."""
        if dst.kv_blocks or dst.kv_units:
            raise ValueError("share() needs a destination that holds no KV")
        want = min(num_tokens, src.num_computed_tokens) // self.block_size
        units = self._units
        taken, blocks = [], 0
        for key in src.kv_units or ():
            unit = units[key]
            if blocks + unit[1] > want:
                break
            taken.append(key)
            blocks += unit[1]
        more = min(want - blocks, src.kv_blocks)
        if more > 0 and len(taken) == len(src.kv_units or ()):
            self._num_shares += 1
            key = ("shared", self._num_shares)
            self._anon.add(key)
            units[key] = [1, more, key, 0]   # src's reference
            src.kv_blocks -= more
            src.kv_shared_blocks += more
            if src.kv_units is None:
                src.kv_units = []
            src.kv_units.append(key)
            taken.append(key)
            blocks += more
        for key in taken:
            units[key][0] += 1
        dst.kv_units = taken
        dst.kv_shared_blocks = blocks
        return blocks * self.block_size

    # ------------------------------------------------------------------ hand-over
    def detach(self, req: Request) -> tuple[int, int, list | None]:
        """Keep ``req``'s blocks allocated but untie them from the request (it is moving to
        another replica); returns a handle for ``free_detached`` once the copy is done."""
        handle = (req.kv_blocks, req.kv_shared_blocks, req.kv_units)
        req.kv_blocks = 0
        req.kv_shared_blocks = 0
        req.kv_units = None
        return handle

    def free_detached(self, handle: tuple[int, int, list | None]) -> None:
        """Release blocks kept by ``detach``."""
        blocks, shared, units = handle
        ghost = Request(-1, 0.0, 0, 0)
        ghost.kv_blocks, ghost.kv_shared_blocks, ghost.kv_units = blocks, shared, units
        self.free(ghost)

    # ------------------------------------------------------------------ prefix cache
    def _unit_blocks(self, req: Request) -> int:
        size = req.prefix_block_tokens
        if size % self.block_size:
            raise ConfigError(
                f"prefix block of {size} tokens is not a multiple of the KV block size {self.block_size}"
            )
        return size // self.block_size

    def _full_units(self, req: Request) -> int:
        return min(len(req.prefix_hashes), req.input_tokens // req.prefix_block_tokens)

    def cached_prefix_tokens(self, req: Request) -> int:
        """Prompt tokens of ``req`` already cached here (read-only; for routers)."""
        if not (self.prefix_caching and req.prefix_hashes):
            return 0
        units = self._units
        hashes = req.prefix_hashes
        if hashes[0] not in units:  # the usual answer where the chain was never seen: no copy, no loop
            return 0
        # the cached units before the chain's first missing one, of its first ``full`` (_full_units,
        # inlined: routers ask every replica): min(first miss, full), found by walking to the first
        # miss and cutting to ``full`` after, with no count test per unit (a chain usually holds one
        # unit beyond ``full``, its partial last block, or none)
        hits = 0
        for key in hashes:
            if key not in units:
                break
            hits += 1
        full = req.input_tokens // req.prefix_block_tokens
        return (hits if hits < full else full) * req.prefix_block_tokens

    def match_prefix(self, req: Request) -> int:
        """Reference the longest cached prefix of ``req``; set and return its cached tokens.

        At least one prompt token is always computed (the step that emits the first token). With
        retention, a request preempted here also takes its retained blocks after the prefix
        (``_take_retained``).
        """
        if req.kv_units is not None:
            return req.num_cached_tokens
        if not (self.prefix_caching and req.prefix_hashes):
            if not (self._kept and req.id in self._kept):
                return 0
            return self._set_cached(req, 0)
        unit_blocks = self._unit_blocks(req)
        units = self._units
        chain = req.prefix_hashes[: self._full_units(req)]
        num = 0  # the chain's units taken: its first ``num`` (one list of them after, not one append each)
        revived = num_revived = 0  # blocks and count of evictable units referenced again
        for key in chain:
            unit = units.get(key)
            if unit is None:
                break
            if unit[0] == 0:  # its entry in the LRU becomes stale (_evict)
                unit[3] += 1
                revived += unit[1]
                num_revived += 1
            unit[0] += 1
            num += 1
        taken = list(chain[:num])
        if num_revived:
            self._num_stale += num_revived
            if 2 * self._num_stale > len(self._lru) + self.stale_slack:  # stale - live > slack
                self._compact_lru()
        self.num_evictable -= revived
        self.num_used += revived
        req.kv_units = taken
        req.kv_shared_blocks += len(taken) * unit_blocks
        cached = min(len(taken) * unit_blocks * self.block_size, req.input_tokens - 1)
        self.num_prefix_queries += 1
        self.num_prefix_query_tokens += req.input_tokens
        self.num_prefix_hit_tokens += cached
        return self._set_cached(req, cached)

    def _set_cached(self, req: Request, cached: int) -> int:
        """Add ``req``'s retained blocks (if any) to the ``cached`` prefix tokens it references; set
        and return its cached tokens."""
        if self._kept and req.id in self._kept:
            hit = self._take_retained(req)
            if hit:
                cached = (req.kv_shared_blocks + hit) * self.block_size
        req.num_cached_tokens = cached
        if req.num_computed_tokens < cached:
            req.num_computed_tokens = cached
        return cached

    def commit_prefix(self, req: Request) -> None:
        """After ``req``'s prefill: turn its full, computed prompt units into cached units."""
        if not (self.prefix_caching and req.prefix_hashes) or req.kv_units is None:
            return
        held = req.kv_units
        if held and held[-1] in self._anon:
            return  # it references another request's blocks: its chain is not its own to cache
        unit_blocks = self._unit_blocks(req)
        units = self._units
        start = len(held)
        # the units its private blocks can fill, of the full units after those it references
        stop = min(self._full_units(req), start + req.kv_blocks // unit_blocks)
        append = held.append
        for key in req.prefix_hashes[start:stop]:
            if key in units:
                break  # computed concurrently elsewhere: keep ours private, stop the chain
            units[key] = [1, unit_blocks, key, 0]
            append(key)
        shared = (len(held) - start) * unit_blocks
        req.kv_blocks -= shared
        req.kv_shared_blocks += shared

    def prefix_stats(self) -> tuple[int, int, int]:
        """(prefix lookups, prompt tokens looked up, tokens found cached) so far."""
        return self.num_prefix_queries, self.num_prefix_query_tokens, self.num_prefix_hit_tokens

    # ------------------------------------------------------------------ swap
    def can_swap_out(self, req: Request) -> bool:
        """Whether host memory has room for ``req``'s KV."""
        return self.num_host_used + self.blocks_for(req.num_computed_tokens) <= self.num_host_blocks

    def swap_out(self, req: Request) -> int:
        """Move ``req``'s KV to host memory; returns the bytes copied."""
        blocks = self.blocks_for(req.num_computed_tokens)
        self.free(req)
        self.num_host_used += blocks
        return int(blocks * self.bytes_per_block)

    def can_swap_in(self, req: Request, reserve_blocks: int = 0, extra_tokens: int = 0) -> bool:
        """Whether ``req``'s swapped KV (and ``extra_tokens`` more) fits back on the device."""
        return self.blocks_for(req.num_computed_tokens + extra_tokens) <= self.num_available - reserve_blocks

    def swap_in(self, req: Request) -> int:
        """Bring ``req``'s KV back from host memory; returns the bytes copied."""
        blocks = self.blocks_for(req.num_computed_tokens)
        self._take(blocks)
        req.kv_blocks = blocks
        req.kv_shared_blocks = 0
        req.kv_units = None
        self.num_host_used -= blocks
        return int(blocks * self.bytes_per_block)

    def drop_swapped(self, req: Request) -> None:
        """Forget ``req``'s KV in host memory (a swapped request given up on)."""
        self.num_host_used -= self.blocks_for(req.num_computed_tokens)

    # ------------------------------------------------------------------ decode stretches (fast path)
    def affordable_steps(self, reqs: list[Request], max_steps: int) -> int:
        """How many decode iterations (1..max_steps) ``reqs`` can all run, one token each, with
        the blocks available now; the first iteration's slot is already allocated."""
        if max_steps <= 1:
            return max_steps
        available = self.num_available
        bs = self.block_size
        # each request holds its step-0 slot (computed + 1 tokens), so steps 1..k-1 take at most
        # ceil((k - 1) / bs) more blocks each: where that many fit, so do all (no pass over reqs)
        if len(reqs) * -(-(max_steps - 1) // bs) <= available:
            return max_steps

        def blocks_needed(k: int) -> int:  # blocks for steps 1..k-1 (step 0 is allocated)
            total = 0
            for r in reqs:
                extra = -(-(r.num_computed_tokens + k) // bs) - r.kv_blocks - r.kv_shared_blocks
                if extra > 0:
                    total += extra
            return total

        if blocks_needed(max_steps) <= available:
            return max_steps
        # blocks_needed(1) <= available < blocks_needed(max_steps)
        return last_within(blocks_needed, available, 1, max_steps)

    def affordable_chunked_steps(self, reqs: list[Request], chunked: Request, targets: list[int],
                                 max_steps: int) -> int:
        """How many iterations (1..max_steps) ``reqs`` (one token each) and ``chunked`` (a prompt
        in chunks: ``targets[j + 1]`` tokens beyond its computed ones by the end of iteration j)
        can all run with the blocks available now; the first iteration's blocks are held already
        (the mixed stretch, sim/engine/mixed_stretch.py)."""
        available = self.num_available
        bs = self.block_size
        c0 = chunked.num_computed_tokens
        held = chunked.kv_blocks + chunked.kv_shared_blocks

        def blocks_needed(j: int) -> int:  # blocks still to take for iterations 1..j
            extra = -(-(c0 + targets[j + 1]) // bs) - held
            total = extra if extra > 0 else 0
            for r in reqs:
                extra = -(-(r.num_computed_tokens + j + 1) // bs) - r.kv_blocks - r.kv_shared_blocks
                if extra > 0:
                    total += extra
            return total

        # the decodes hold their iteration-0 slots (computed + 1), so iterations 1..j take at most
        # ceil(j / bs) more blocks each: where that many fit with the prompt's, so do all
        j = max_steps - 1
        extra = -(-(c0 + targets[j + 1]) // bs) - held
        if (extra if extra > 0 else 0) + len(reqs) * -(-j // bs) <= available:
            return max_steps
        if blocks_needed(max_steps - 1) <= available:
            return max_steps
        # blocks_needed(0) <= available < blocks_needed(max_steps - 1)
        return last_within(blocks_needed, available, 0, max_steps - 1) + 1

    def lookahead_steps(self, reqs: list[Request], slots: np.ndarray) -> int:
        """How many leading rows of ``slots`` (speculative steps x ``reqs``: the KV slots each
        request holds in that step, its computed tokens + 1 + its lookahead; row 0's are held
        now) the requests can hold one after another, each holding no fewer blocks than in
        the step before, with the blocks available now.

        Within so many steps every call stepping makes (``allocate_each``, the lookahead
        ``allocate``, ``trim`` of the rejected slots) succeeds, and since each request's
        blocks only grow from step to step, the blocks it holds in a step, the counts and the
        units evicted (always the oldest, as many as the growth needs beyond the free blocks)
        are what one ``allocate`` to that step's slots gives: a speculative stretch may take
        them late, in one call per request (sim/engine/spec_stretch.py). 1 when that is not
        known (a subclass's own ``allocate``, ``allocate_each`` or ``trim``)."""
        m = len(slots)
        if m <= 1 or type(self).allocate is not PagedKVManager.allocate or not self.allocates_by_target \
                or type(self).trim is not PagedKVManager.trim:
            return min(m, 1)
        bs = self.block_size
        growth = held_sum = 0  # blocks taken by the last step, beyond those held now
        for r, first, last in zip(reqs, slots[1].tolist(), slots[-1].tolist(), strict=True):
            shared = r.kv_shared_blocks
            held = r.kv_blocks + shared
            if max(-(-first // bs), shared) < held:  # the first trim gives back blocks not taken again
                return 1
            growth += max(-(-last // bs), shared) - held
            held_sum += held
        available = self.num_free + self.num_evictable
        if growth <= available:  # the growth only rises from step to step: all of them fit
            return m
        shared = np.fromiter((r.kv_shared_blocks for r in reqs), dtype=np.int64, count=len(reqs))
        hold = np.maximum(-(-slots[1:] // bs), shared[None, :])  # steps 1.. (trimmed, then grown)
        return 1 + int(np.searchsorted(hold.sum(axis=1) - held_sum, available, side="right"))

    def decode_holdings(self, reqs: list[Request]) -> tuple[np.ndarray, np.ndarray]:
        """(computed tokens, blocks held) of each of ``reqs`` now, for ``decode_usage`` later."""
        comp = np.fromiter((r.num_computed_tokens for r in reqs), dtype=np.int64, count=len(reqs))
        held = np.fromiter((r.kv_blocks + r.kv_shared_blocks for r in reqs), dtype=np.int64, count=len(reqs))
        return comp, held

    def decode_usage(self, computed0: np.ndarray, held0: np.ndarray, num_steps: int) -> np.ndarray:
        """Blocks ``reqs`` held in each of ``num_steps`` one-token decode iterations that started
        from (``computed0``, ``held0``): iteration k needs computed0 + k + 1 slots, and blocks are
        taken lazily, so it holds max(held0, blocks for that), summed over the requests."""
        k = np.arange(num_steps, dtype=np.int64)
        need = -(-(computed0[:, None] + k[None, :] + 1) // self.block_size)
        return np.maximum(need, held0[:, None]).sum(axis=0)

    # ------------------------------------------------------------------ checks
    def check_invariants(self) -> None:
        """Assert used + evictable + free == total, no negative count, and the LRU's live entries
        are the units nobody references, once each, with its stale count kept (used by tests)."""
        assert self.num_used + self.num_evictable + self.num_free == self.num_blocks, (
            self.num_used, self.num_evictable, self.num_free, self.num_blocks)
        assert min(self.num_used, self.num_evictable, self.num_free) >= 0
        evictable = self.evictable_units()
        assert self.num_evictable == sum(blocks for _key, blocks in evictable)
        idle = [key for key, unit in self._units.items() if unit[0] == 0]  # every unit with no reference, once
        assert sorted(map(repr, idle)) == sorted(repr(key) for key, _blocks in evictable)
        in_lru = {id(unit): unit for unit in self._lru}
        assert self._num_stale == sum(unit[3] for unit in in_lru.values())
        assert all(unit[3] == 0 for unit in self._units.values() if id(unit) not in in_lru)
        assert all(unit[0] >= 0 for unit in self._units.values())

    @classmethod
    def example_config(cls) -> dict:
        """One vLLM v1 replica with prefix caching over multi-turn sessions sharing a system prompt, small KV."""
        return {"workload": {"name": "sessions", "num_sessions": 150, "rate_rps": 6.0, "turns": 2, "turns_max": 6,
                             "think_time_s": 1.0, "system_prompt_tokens": 512, "input_tokens": 200,
                             "output_tokens": 64},
                "cluster.pools[0].kv.enable_prefix_caching": True, "cluster.pools[0].kv.num_blocks": 600}
