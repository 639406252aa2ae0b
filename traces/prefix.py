"""Prefix-hash ids for generated conversations, and the unlimited-cache hit fraction.

Ids follow Mooncake's convention: one id per ``block_tokens`` block of the prompt, the last
block possibly partial; two prompts share an id at position i only if their first
(i + 1) * block_tokens tokens are identical, so an id names its whole prefix (a chain)::

    turn 1 prompt   [s0 s1 | a2 a3 a4~]              s = system prompt, ~ = partial block
    turn 1 answer                  ...ans...
    turn 2 prompt   [s0 s1 | a2 a3 b4 b5 b6~]        a4 was partial: its content changed
                     shared  shared  fresh ids
"""

from __future__ import annotations

from collections.abc import Iterable


class IdSource:
    """Fresh prefix ids for one run (an instance counter, never global state)."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, n: int) -> tuple[int, ...]:
        """``n`` ids never handed out before."""
        start = self._next
        self._next += n
        return tuple(range(start, start + n))


class Conversation:
    """A growing context (prompt + answers) and the ids of its full blocks."""

    def __init__(self, ids: IdSource, block_tokens: int, base_tokens: int = 0,
                 base_ids: tuple[int, ...] = ()):
        self.ids = ids
        self.block_tokens = block_tokens
        self.context_tokens = base_tokens
        self.full_ids = base_ids[: base_tokens // block_tokens]

    def fork(self) -> Conversation:
        """An independent copy sharing everything so far (fan-out branches)."""
        return Conversation(self.ids, self.block_tokens, self.context_tokens, self.full_ids)

    def prompt(self, new_tokens: int) -> tuple[int, tuple[int, ...]]:
        """(input tokens, prefix ids) of a prompt that appends ``new_tokens`` to the context."""
        n_in = self.context_tokens + new_tokens
        n_blocks = -(-n_in // self.block_tokens)
        ids = self.full_ids + self.ids.take(n_blocks - len(self.full_ids))
        return n_in, ids

    def extend(self, input_tokens: int, ids: tuple[int, ...], output_tokens: int) -> None:
        """Make the prompt ``(input_tokens, ids)`` and its answer the new context."""
        self.context_tokens = input_tokens + output_tokens
        keep = ids[: input_tokens // self.block_tokens]
        self.full_ids = keep + self.ids.take(self.context_tokens // self.block_tokens - len(keep))


def prefix_hit_tokens(requests: Iterable[tuple[int, tuple, int]]) -> tuple[int, int]:
    """(hit tokens, input tokens) with an unlimited prefix cache, in arrival order.

    Each item is (input tokens, prefix ids, block tokens). A request hits the longest run of
    leading ids already seen (at most its input length); then all its ids are cached.
    """
    seen: set = set()
    hits = total = 0
    for n_in, ids, block in requests:
        total += n_in
        if not ids:
            continue
        matched = 0
        for key in ids:
            if key not in seen:
                break
            matched += 1
        hits += min(matched * block, n_in)
        seen.update(ids)
    return hits, total
