"""Step prices memoised per context: a cost model's pure-decode prices as tables over contexts.

A pure-decode (or speculative verify) step's price under the analytic model depends on the
batch size, the tokens it computes and the batch's summed context alone, and its array form
(``AnalyticCostModel._total`` / ``_decode_at`` on an int array of contexts) is elementwise:
each element gets the same operations in the same order whatever array it sits in, so the
prices of ``np.arange(size)`` looked up at ``contexts`` are the prices of ``contexts``, bit for
bit. A speculative plan prices a few dozen steps at a time, a dozen or more numpy operations
per pass for each; a lookup costs one indexing.

When it applies: int contexts in ``[0, SPAN)``; the tables together hold at most ``ENTRIES``
prices (beyond either, ``lookup`` answers None and the caller prices directly, as before).
The owner must ``clear`` the tables whenever its prices change (the analytic model's
``set_weight_read_scale``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

MIN_SIZE = 4096   # contexts a table covers at first (grown by doubling)
SPAN = 1 << 16    # largest context a table covers, + 1
ENTRIES = 1 << 21  # prices held by all tables together (16 MB)
_max, _min = np.maximum.reduce, np.minimum.reduce


class ContextTables:
    """Tables of prices at contexts 0..size - 1, one per key, built by the owner's array formula."""

    def __init__(self) -> None:
        self._tabs: dict[Any, np.ndarray] = {}
        self._entries = 0

    def clear(self) -> None:
        """Forget every table (the prices changed)."""
        self._tabs.clear()
        self._entries = 0

    def lookup(self, key: Any, contexts: np.ndarray, build: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
        """``build(contexts)``, read off the table of ``key`` (``build(np.arange(size))``, built or
        grown here); None when the contexts are not ints in [0, SPAN) or the tables are full."""
        if contexts.dtype.kind != "i" or not contexts.size:
            return None
        tab = self.table(key, int(_max(contexts, None)), build)  # ``contexts.max()`` without its Python wrapper
        if tab is None or _min(contexts, None) < 0:
            return None
        return tab[contexts]

    def table(self, key: Any, hi: int, build: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
        """The table of ``key`` itself, covering contexts 0..``hi`` at least (built or grown here),
        for a caller that knows its contexts' range and indexes it directly (``tab[c]`` is
        ``lookup``'s answer at c); None when ``hi`` is past ``SPAN`` or the tables are full."""
        tab = self._tabs.get(key)
        if tab is None or hi >= len(tab):
            old = 0 if tab is None else len(tab)
            size = max(MIN_SIZE, 2 * old)
            while size <= hi:
                size *= 2
            if size > SPAN or self._entries - old + size > ENTRIES:
                return None
            tab = build(np.arange(size, dtype=np.int64))
            self._tabs[key] = tab
            self._entries += size - old
        return tab
