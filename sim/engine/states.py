"""The request life-cycle states (shared by requests and their views)."""

from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    """Where a request is in its life cycle."""

    QUEUED = 0
    PREFILL = 1
    DECODE = 2
    PREEMPTED = 3
    SWAPPED = 4
    MIGRATING = 5
    FINISHED = 6
    REJECTED = 7
