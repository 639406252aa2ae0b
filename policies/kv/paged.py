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
recently released units. "No room" is an answer (False), never an exception.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from sim.engine.request import Request
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


@KV_MANAGERS.register("paged")
class PagedKVManager:
    """Block accounting, prefix reuse and swap for one replica (vLLM-style paged attention)."""

    Params = PagedKVParams

    def __init__(self, params: PagedKVParams, num_blocks: int, kv_bytes_per_token: float, num_gpus: int = 1):
        self.params = params
        self.block_size = params.block_size
        self.num_blocks = num_blocks
        self.bytes_per_block = kv_bytes_per_token * params.block_size
        self.watermark_blocks = int(params.watermark * num_blocks)
        self.prefix_caching = params.enable_prefix_caching
        host_bytes = params.swap_space_gb * (1 << 30) * num_gpus
        self.num_host_blocks = int(host_bytes // self.bytes_per_block) if self.bytes_per_block else 0
        self.num_host_used = 0
        self.num_free = num_blocks          # blocks holding no data
        self.num_used = 0                   # blocks referenced by live requests
        self.num_evictable = 0              # blocks of cached units nobody references
        self._units: dict = {}              # unit key -> [refcount, blocks]
        self._lru: OrderedDict = OrderedDict()  # evictable unit key -> blocks, oldest first
        self.num_prefix_queries = 0
        self.num_prefix_query_tokens = 0
        self.num_prefix_hit_tokens = 0

    # ------------------------------------------------------------------ sizes
    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens."""
        return -(-num_tokens // self.block_size)

    @property
    def num_available(self) -> int:
        """Blocks an allocation could obtain now (free + evictable)."""
        return self.num_free + self.num_evictable

    def held_blocks(self, req: Request) -> int:
        """Blocks whose KV ``req`` can use (its private blocks and its prefix units)."""
        if req.kv_units:
            return req.kv_blocks + len(req.kv_units) * (req.prefix_block_tokens // self.block_size)
        return req.kv_blocks

    def extra_blocks(self, req: Request, num_new_tokens: int) -> int:
        """Blocks ``req`` must obtain to compute ``num_new_tokens`` more tokens."""
        return self.blocks_for(req.num_computed_tokens + num_new_tokens) - self.held_blocks(req)

    # ------------------------------------------------------------------ allocation
    def can_allocate(self, req: Request, num_new_tokens: int, reserve_blocks: int = 0) -> bool:
        """Whether ``allocate`` would succeed while keeping ``reserve_blocks`` available."""
        return self.extra_blocks(req, num_new_tokens) <= self.num_available - reserve_blocks

    def allocate(self, req: Request, num_new_tokens: int) -> bool:
        """Grow ``req``'s KV to hold ``num_new_tokens`` more tokens; False if there is no room."""
        # inlined blocks_for / held_blocks: this runs for every request in every iteration
        bs = self.block_size
        held = req.kv_blocks
        if req.kv_units:
            held += len(req.kv_units) * (req.prefix_block_tokens // bs)
        need = -(-(req.num_computed_tokens + num_new_tokens) // bs) - held
        if need <= 0:
            return True
        if need > self.num_free + self.num_evictable:
            return False
        self._take(need)
        req.kv_blocks += need
        return True

    def allocate_blocks(self, req: Request, num_blocks: int) -> None:
        """Give ``req`` ``num_blocks`` more private blocks; the caller checked there is room."""
        self._take(num_blocks)
        req.kv_blocks += num_blocks

    def _take(self, need: int) -> None:
        if need > self.num_free:
            self._evict(need - self.num_free)
        self.num_free -= need
        self.num_used += need

    def _evict(self, num_blocks: int) -> None:
        lru, units = self._lru, self._units
        while num_blocks > 0:
            key, blocks = lru.popitem(last=False)
            del units[key]
            self.num_evictable -= blocks
            self.num_free += blocks
            num_blocks -= blocks

    def free(self, req: Request) -> None:
        """Release every block ``req`` holds (finish or recompute preemption)."""
        if req.kv_units:
            units, lru = self._units, self._lru
            for key in reversed(req.kv_units):  # tail units become the oldest evictable
                unit = units[key]
                unit[0] -= 1
                if unit[0] == 0:
                    self.num_used -= unit[1]
                    self.num_evictable += unit[1]
                    lru[key] = unit[1]
            req.kv_units = None
        self.num_used -= req.kv_blocks
        self.num_free += req.kv_blocks
        req.kv_blocks = 0

    # ------------------------------------------------------------------ hand-over
    def detach(self, req: Request) -> tuple[int, list | None]:
        """Keep ``req``'s blocks allocated but untie them from the request (it is moving to
        another replica); returns a handle for ``free_detached`` once the copy is done."""
        handle = (req.kv_blocks, req.kv_units)
        req.kv_blocks = 0
        req.kv_units = None
        return handle

    def free_detached(self, handle: tuple[int, list | None]) -> None:
        """Release blocks kept by ``detach``."""
        blocks, units = handle
        ghost = Request(-1, 0.0, 0, 0)
        ghost.kv_blocks, ghost.kv_units = blocks, units
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
        hits = 0
        for key in req.prefix_hashes[: self._full_units(req)]:
            if key not in units:
                break
            hits += 1
        return hits * req.prefix_block_tokens

    def match_prefix(self, req: Request) -> int:
        """Reference the longest cached prefix of ``req``; set and return its cached tokens.

        At least one prompt token is always computed (the step that emits the first token).
        """
        if not (self.prefix_caching and req.prefix_hashes) or req.kv_units is not None:
            return req.num_cached_tokens if req.kv_units is not None else 0
        unit_blocks = self._unit_blocks(req)
        units, lru = self._units, self._lru
        taken = []
        for key in req.prefix_hashes[: self._full_units(req)]:
            unit = units.get(key)
            if unit is None:
                break
            if unit[0] == 0:
                del lru[key]
                self.num_evictable -= unit[1]
                self.num_used += unit[1]
            unit[0] += 1
            taken.append(key)
        req.kv_units = taken
        cached = min(len(taken) * unit_blocks * self.block_size, req.input_tokens - 1)
        self.num_prefix_queries += 1
        self.num_prefix_query_tokens += req.input_tokens
        self.num_prefix_hit_tokens += cached
        req.num_cached_tokens = cached
        if req.num_computed_tokens < cached:
            req.num_computed_tokens = cached
        return cached

    def commit_prefix(self, req: Request) -> None:
        """After ``req``'s prefill: turn its full, computed prompt units into cached units."""
        if not (self.prefix_caching and req.prefix_hashes) or req.kv_units is None:
            return
        unit_blocks = self._unit_blocks(req)
        units = self._units
        held = req.kv_units
        for key in req.prefix_hashes[len(held): self._full_units(req)]:
            if key in units or req.kv_blocks < unit_blocks:
                break  # computed concurrently elsewhere: keep ours private, stop the chain
            units[key] = [1, unit_blocks]
            req.kv_blocks -= unit_blocks
            held.append(key)

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

    def can_swap_in(self, req: Request, reserve_blocks: int = 0) -> bool:
        """Whether ``req``'s swapped KV fits back on the device."""
        return self.blocks_for(req.num_computed_tokens) <= self.num_available - reserve_blocks

    def swap_in(self, req: Request) -> int:
        """Bring ``req``'s KV back from host memory; returns the bytes copied."""
        blocks = self.blocks_for(req.num_computed_tokens)
        self._take(blocks)
        req.kv_blocks = blocks
        req.kv_units = None
        self.num_host_used -= blocks
        return int(blocks * self.bytes_per_block)

    # ------------------------------------------------------------------ checks
    def check_invariants(self) -> None:
        """Assert used + evictable + free == total (used by tests)."""
        assert self.num_used + self.num_evictable + self.num_free == self.num_blocks, (
            self.num_used, self.num_evictable, self.num_free, self.num_blocks)
        assert min(self.num_used, self.num_evictable, self.num_free) >= 0
        assert self.num_evictable == sum(self._lru.values())

    @classmethod
    def example_config(cls) -> dict:
        """One vLLM v1 replica with prefix caching over multi-turn sessions sharing a system prompt, small KV."""
        return {"workload": {"name": "sessions", "num_sessions": 150, "rate_rps": 6.0, "turns": 2, "turns_max": 6,
                             "think_time_s": 1.0, "system_prompt_tokens": 512, "input_tokens": 200,
                             "output_tokens": 64},
                "cluster.pools[0].kv.enable_prefix_caching": True, "cluster.pools[0].kv.num_blocks": 600}
