"""An out-of-tree router plug-in, loaded by its dotted name ``tests.plugins.most_free_kv:MostFreeKVRouter``.

Not registered and not under ``policies/``: it shows that a ``package.module:Class`` name runs
through a simulation (and the conformance suite) like a built-in policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.engine.seams import BuildContext
from sim.engine.views import ReplicaView, RequestView
from sim.schema import param

NAME = "tests.plugins.most_free_kv:MostFreeKVRouter"


@dataclass
class MostFreeKVParams:
    """How many free blocks make a replica worth choosing over its queue length."""

    min_free_blocks: int = param(0, ge=0, doc="replicas with fewer free blocks are chosen last")


class MostFreeKVRouter:
    """The replica with the most free KV blocks; ties go to the fewest outstanding, then the lowest index."""

    Params = MostFreeKVParams

    def __init__(self, params: MostFreeKVParams, ctx: BuildContext):
        self.params = params

    def route(self, req: RequestView, replicas: Sequence[ReplicaView]) -> ReplicaView:
        low = self.params.min_free_blocks
        return min(replicas, key=lambda r: (r.kv.num_free_blocks < low, -r.kv.num_free_blocks, r.num_outstanding,
                                            r.id))
