"""Bisection on a non-decreasing cost (how many steps still fit in the free blocks): shared by
the decode stretch's KV check and the mixed stretch."""

from __future__ import annotations

from collections.abc import Callable


def last_within(cost: Callable[[int], int], budget: int, lo: int, hi: int) -> int:
    """The largest k in [lo, hi) with ``cost(k) <= budget``, given ``cost(lo) <= budget <
    cost(hi)`` and ``cost`` non-decreasing in k (it is not called at lo or hi)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo
