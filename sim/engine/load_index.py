"""The router's replica list with an incremental index of outstanding counts.

``EntryViews`` is the list of replica views the cluster routes among (``Cluster.entry_views``).
Besides being a plain list, it answers ``least_outstanding()``: the first view (lowest list
position) among those with the fewest requests outstanding, which is exactly what
``min(views, key=num_outstanding)`` returns, without scanning every view at each arrival.

How it stays exact: ``OutstandingIndex`` keeps each view's position in a bucket keyed on the
outstanding count its replica had when last told, the positions of a bucket sorted, and the
lowest non-empty count. Every change of ``Replica.num_outstanding`` (enqueue, finish, reject,
detach, attach: sim/engine/replica.py) calls ``load_index.moved(replica)`` on the index that
holds the replica, so at any moment the buckets match the live counts; the pick is then the
smallest position of the lowest bucket, the first of the fewest in list order, ties and all.
Any change of the list itself (the cluster's ``refresh_entry`` when replicas start, drain or
leave; or any other mutation) drops the index, and the next pick rebuilds it from the live
counts, so replicas added or removed by an autoscaler are always seen.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any


class OutstandingIndex:
    """Positions of ``views`` bucketed by their replicas' ``num_outstanding``."""

    __slots__ = ("_views", "_pos", "_count", "_buckets", "_lo")

    def __init__(self, views: list):
        self._views = list(views)
        self._pos: dict[Any, int] = {}          # replica -> its first position in the list
        self._count: list[int] = []             # position -> the count its bucket holds it at
        self._buckets: dict[int, list[int]] = {}  # count -> positions, sorted (never empty)
        for i, view in enumerate(self._views):
            rep = view._rep
            n = rep.num_outstanding
            self._count.append(n)
            if rep in self._pos:  # a repeated view never wins: its first position ties and comes first
                continue
            self._pos[rep] = i
            self._buckets.setdefault(n, []).append(i)  # positions ascending
            rep.load_index = self
        self._lo = min(self._buckets) if self._buckets else 0

    def moved(self, rep: Any) -> None:
        """``rep.num_outstanding`` changed: move its position to the bucket of its new count."""
        i = self._pos[rep]
        old = self._count[i]
        new = rep.num_outstanding
        if new == old:
            return
        self._count[i] = new
        buckets = self._buckets
        b = buckets[old]
        if len(b) == 1:
            del buckets[old]
        else:
            del b[bisect_left(b, i)]
        dest = buckets.get(new)
        if dest is None:
            buckets[new] = [i]
        else:
            insort(dest, i)
        if new < self._lo:
            self._lo = new
        elif old == self._lo and old not in buckets:
            self._lo = new if new == old + 1 else min(buckets)

    def first_least(self) -> Any:
        """The view at the lowest position among those with the fewest outstanding."""
        return self._views[self._buckets[self._lo][0]]

    def release(self) -> None:
        """Stop being told of changes (the list changed; a new index replaces this one)."""
        for rep in self._pos:
            if rep.load_index is self:
                rep.load_index = None


def _invalidating(name: str):
    method = getattr(list, name)

    def mutate(self, *args, **kwargs):
        self.drop_index()
        return method(self, *args, **kwargs)

    mutate.__name__ = name
    mutate.__doc__ = method.__doc__
    return mutate


class EntryViews(list):
    """A list of replica views that also answers ``least_outstanding()`` incrementally.

    The index is built on the first call and dropped by any mutation of the list."""

    __slots__ = ("_index",)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._index: OutstandingIndex | None = None

    def least_outstanding(self) -> Any:
        """``min(self, key=num_outstanding)``: the first of the fewest outstanding (the list is non-empty)."""
        index = self._index
        if index is None:
            index = self._index = OutstandingIndex(self)
        return index.first_least()

    def drop_index(self) -> None:
        if self._index is not None:
            self._index.release()
            self._index = None


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend", "insert", "remove", "pop",
              "clear", "sort", "reverse"):
    setattr(EntryViews, _name, _invalidating(_name))
del _name
