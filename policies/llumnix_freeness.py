"""Llumnix's instance freeness from virtual usage (Sun et al., OSDI'24, Algorithm 1), shared by
its router, migration controller and autoscaler.

Each request on an instance has a *virtual usage* in KV blocks::

    running request          its physical blocks (+ a share of the priority headroom if it is
                             high priority: the headroom H, split among the instance's
                             high-priority requests, so an instance carrying any of them counts H more)
    queued request           the head of the queue: its whole demand (blocks for its context);
                             the others 0 (``queued="head"``, the paper and the code's migration
                             load) or every queued request its demand (``queued="all"``, the
                             code's dispatch and scaling load)
    draining instance        infinite: freeness -inf, so migration empties it first

    freeness F = (M - sum of virtual usage) / B
        M  the instance's KV blocks less its watermark (vLLM's free - watermark, as Llumnix's
           ``num_available_gpu_blocks``)
        B  its batch size: running requests + the queued ones counted (``head``: at most 1)
        an instance with no request has F = +inf

Llumnix's code (AlibabaPAI/llumnix v0.1.0, ``instance_info.py``) computes the same quantity as a
load ``-F`` ("remaining_steps"): roughly how many more decode steps every request could take
before the instance runs out of blocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sim.engine.views import ReplicaView

_INF = math.inf
_NEG_INF = -math.inf


def queued_demand_blocks(rep: ReplicaView, queued: str) -> tuple[int, int]:
    """(blocks, count) of the queued requests counted in ``rep``'s virtual usage: the head only
    (``head``; swapped requests go first, as vLLM resumes them first) or every one (``all``).

    ``all`` reads the replica's incremental count of prompt tokens still to compute (queued, or
    left of a prefill in progress, whose blocks are not yet taken) as blocks, plus each swapped
    request's blocks: O(1) per replica whatever the queue's length, within one block per
    queued request of summing each request's own demand."""
    kv = rep.kv
    if queued == "head":
        head = rep.swapped[0] if rep.swapped else (rep.waiting[0] if rep.waiting else None)
        if head is None:
            return 0, 0
        return kv.blocks_for(head.context_tokens), 1
    blocks = kv.blocks_for(rep.pending_prefill_tokens)
    swapped = rep.swapped
    if swapped:
        for r in swapped:
            blocks += kv.blocks_for(r.context_tokens)
    return blocks, len(rep.waiting) + len(swapped)


def has_high_priority(rep: ReplicaView, high_priority_max: int | None) -> bool:
    """Whether a running request on ``rep`` has priority <= ``high_priority_max`` (lower is more urgent)."""
    if high_priority_max is None:
        return False
    return any(r.priority <= high_priority_max for r in rep.running)


def kv_capacity(rep: ReplicaView) -> int:
    """M of an instance: its KV blocks less the watermark (fixed for the instance's life)."""
    kv = rep.kv
    return kv.num_blocks - kv.watermark_blocks


def usage_terms(rep: ReplicaView, queued: str = "head", headroom_blocks: float = 0.0,
                high_priority_max: int | None = None) -> tuple[float, float, int]:
    """(M, total virtual usage, B) of one instance (see the module docstring)."""
    kv = rep.kv
    capacity = kv_capacity(rep)
    blocks, count = queued_demand_blocks(rep, queued)
    usage = kv.num_used_blocks + blocks
    if headroom_blocks and has_high_priority(rep, high_priority_max):
        usage += headroom_blocks
    return float(capacity), float(usage), rep.num_running + count


def freeness(rep: ReplicaView, queued: str = "head", headroom_blocks: float = 0.0,
             high_priority_max: int | None = None, capacity: int | None = None) -> float:
    """Llumnix's freeness F of one instance: -inf while draining, +inf when it holds no request.

    ``usage_terms``' arithmetic with its reads in one pass (routers and the migration pairing
    ask it of every instance at every arrival and tick): the batch first, so an instance with
    no request is not asked for its KV. ``capacity``: ``kv_capacity(rep)``, if the caller keeps it."""
    if rep.lifecycle == "draining":
        return _NEG_INF
    kv = rep.kv
    if queued == "head":  # ``queued_demand_blocks``, head of line, inlined
        swapped = rep.swapped
        if swapped:
            head = swapped[0]
        else:
            waiting = rep.waiting
            head = waiting[0] if waiting else None
        if head is None:
            blocks = count = 0
        else:
            blocks, count = kv.blocks_for(head.context_tokens), 1
    else:
        blocks, count = queued_demand_blocks(rep, queued)
    batch = rep.num_running + count
    if batch == 0:
        return _INF
    usage = kv.num_used_blocks + blocks
    if headroom_blocks and has_high_priority(rep, high_priority_max):
        usage += headroom_blocks
    if capacity is None:
        capacity = kv_capacity(rep)
    return (float(capacity) - float(usage)) / batch


def freeness_bounds(rep: ReplicaView, queued: str = "head", headroom_blocks: float = 0.0,
                    high_priority_max: int | None = None, capacity: int | None = None) -> tuple[float, float]:
    """(lo, hi) with lo <= ``freeness(rep, ...)`` <= hi, from the KV view's cheap bounds on the
    blocks in use (``used_blocks_bounds``: exact, lo == hi, but mid-stretch), without bringing a
    stretch in progress up to now: ``freeness``' arithmetic on each bound (rounding is monotone,
    so the exact value lies between). For a caller that only compares F with a threshold, or
    looks for the largest: where the bounds decide, the exact reads are not needed."""
    if rep.lifecycle == "draining":
        return _NEG_INF, _NEG_INF
    terms = rep.kv_demand_bounds(queued == "head")  # ``queued_demand_blocks`` and the KV bounds in one read
    if terms is None:
        return _INF, _INF
    num_running, count, blocks, lo, hi = terms
    batch = num_running + count
    usage_lo, usage_hi = lo + blocks, hi + blocks
    if headroom_blocks and has_high_priority(rep, high_priority_max):
        usage_lo += headroom_blocks
        usage_hi += headroom_blocks
    if capacity is None:
        capacity = kv_capacity(rep)
    cap = float(capacity)
    return (cap - float(usage_hi)) / batch, (cap - float(usage_lo)) / batch


def mean_freeness(reps: Iterable[ReplicaView], extra_capacity_blocks: float = 0.0, drop_capacity_blocks: float = 0.0,
                  queued: str = "all") -> float:
    """Freeness of a pool taken as one instance (Llumnix's ``avg_load`` scaling metric): summed
    free capacity over summed batch; ``extra_capacity_blocks`` adds empty instances (replicas still
    starting), ``drop_capacity_blocks`` removes one instance's capacity but not its requests (the
    freeness the pool would have after a scale-down)."""
    capacity = usage = 0.0
    batch = 0
    for rep in reps:
        c, u, b = usage_terms(rep, queued)
        capacity += c
        usage += u
        batch += b
    capacity += extra_capacity_blocks - drop_capacity_blocks
    if batch == 0:
        return math.inf
    return (capacity - usage) / batch
