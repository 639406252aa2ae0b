"""CacheOPT's KV manager: paged KV plus per-request reservations, lending and a global reserve.

Shen, Sen and Tanaka, "Mitigating KV Cache Competition to Enhance User Experience in LLM
Inference" (2025). The blocks themselves are the paged facade's (``PagedKVManager``): a request
still takes physical blocks only as its tokens need them. On top, every admitted request has a
*reservation* (its predicted demand, in blocks) that the scheduler sets; the part not yet used
(``own - held``) is promised to it, so admission only counts the *unreserved* blocks::

    num_available = free + evictable
    +------- held by requests -------+--- unused reservations ---+-- global reserve --+-- unreserved --+
    | physical blocks of live reqs   | sum max(0, own_r - held_r) | G blocks (extends)  | admits here    |

A waiting request that does not fit the unreserved blocks may *borrow* inside a running
request's unused reservation (``lend``): the lender's own reservation shrinks by the
borrower's, and grows back when the borrower leaves while the lender is still here. Proactive
extensions (``extend``) take unreserved blocks first, then the global reserve; only when the
physical blocks run out does the scheduler preempt. The scheduler (policies/schedulers/
cacheopt.py) decides every number; this class only keeps the books, through ``policy_api``.

Invariants (checked by ``check_invariants``): the paged ones, every reservation >= 0, lent
blocks point at live lenders or are released, the unused reservations fit the available blocks
whenever no request outgrew its reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.kv.paged import PagedKVManager, PagedKVParams
from sim.engine.request import Request
from sim.engine.seams import BuildContext
from sim.engine.states import State
from sim.registry import KV_MANAGERS
from sim.schema import param


@dataclass
class CacheOptKVParams(PagedKVParams):
    """The paged parameters plus CacheOPT's global reserve (8 blocks in the reimplementation)."""

    global_reserve_blocks: int = param(8, ge=0, doc="blocks kept out of admission for proactive extensions")


def _req(r: Any) -> Request:
    return getattr(r, "_r", r)  # a RequestView or the engine's Request


class ReservationOps:
    """What CacheOPT's scheduler may do to the reservations (request views in, block counts out)."""

    __slots__ = ("_kv",)

    def __init__(self, kv: CacheOptKVManager):
        self._kv = kv

    @property
    def global_reserve_blocks(self) -> int:
        return self._kv.params.global_reserve_blocks

    def reservation(self, req: Any) -> int:
        """``req``'s own reservation in blocks (0 if none)."""
        entry = self._kv._res.get(_req(req).id)
        return entry[1] if entry is not None else 0

    def spare(self, req: Any) -> int:
        """Blocks of ``req``'s reservation it does not hold yet."""
        r = _req(req)
        entry = self._kv._res.get(r.id)
        return max(0, entry[1] - r.kv_blocks - r.kv_shared_blocks) if entry is not None else 0

    def unused_reserved(self) -> int:
        """Blocks promised to requests and not yet taken by them."""
        return self._kv.unused_reserved()

    def unreserved(self) -> int:
        """Available blocks nobody is promised, the global reserve included."""
        return self._kv.num_available - self._kv.unused_reserved()

    def reserve(self, req: Any, num_blocks: int) -> None:
        """Set ``req``'s own reservation to ``num_blocks`` (it is not a borrower)."""
        r = _req(req)
        self._kv._res[r.id] = [r, max(0, num_blocks)]

    def extend(self, req: Any, num_blocks: int, use_global: bool) -> bool:
        """Grow ``req``'s reservation by ``num_blocks`` from the unreserved blocks, keeping the
        global reserve unless ``use_global``. False (nothing changed) if they do not suffice."""
        kv = self._kv
        room = self.unreserved() - (0 if use_global else kv.params.global_reserve_blocks)
        if num_blocks > room:
            return False
        r = _req(req)
        entry = kv._res.get(r.id)
        if entry is None:
            kv._res[r.id] = [r, num_blocks]
        else:
            entry[1] += num_blocks
        return True

    def lend(self, lender: Any, borrower: Any, num_blocks: int) -> None:
        """Carve ``num_blocks`` out of ``lender``'s reservation as ``borrower``'s reservation."""
        kv = self._kv
        lend, borrow = _req(lender), _req(borrower)
        kv._res[lend.id][1] -= num_blocks
        kv._res[borrow.id] = [borrow, num_blocks]
        kv._lender[borrow.id] = lend.id


@KV_MANAGERS.register("cacheopt")
class CacheOptKVManager(PagedKVManager):
    """Paged KV with CacheOPT's reservations, lending between requests and a global reserve."""

    Params = CacheOptKVParams

    def __init__(self, params: CacheOptKVParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self._res: dict[int, list] = {}     # request id -> [request, own reserved blocks]
        self._lender: dict[int, int] = {}   # borrower id -> lender id
        self.policy_api = ReservationOps(self)
        self.num_borrows = 0

    def unused_reserved(self) -> int:
        """Sum over reserving requests of the blocks promised and not yet held."""
        total = 0
        for r, own in self._res.values():
            spare = own - r.kv_blocks - r.kv_shared_blocks
            if spare > 0:
                total += spare
        return total

    def _release(self, req: Request) -> None:
        entry = self._res.pop(req.id, None)
        lender = self._lender.pop(req.id, None)
        if entry is not None and lender is not None:
            back = self._res.get(lender)
            if back is not None:  # the lender is still here: its reservation grows back
                back[1] += entry[1]

    def free(self, req: Request) -> None:
        """Release ``req``'s blocks and its reservation (finish, recompute, swap-out, reject)."""
        super().free(req)
        if self._res:
            self._release(req)

    def detach(self, req: Request) -> Any:
        if self._res:
            self._release(req)
        return super().detach(req)

    def check_invariants(self) -> None:
        super().check_invariants()
        assert all(own >= 0 for _r, own in self._res.values())
        assert set(self._lender) <= set(self._res)
        assert all(r.state < State.FINISHED for r, _own in self._res.values())  # only live requests reserve

    @classmethod
    def example_config(cls) -> dict:
        """CacheOPT's scheduler on its KV manager (the scheduler default's small KV), oracle predictor."""
        return {"cluster.predictor": {"name": "oracle"},
                "cluster.pools[0].scheduler": {"name": "cacheopt"},
                "cluster.pools[0].kv": {"name": "cacheopt", "block_size": 16, "num_blocks": 800}}
