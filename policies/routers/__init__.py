"""Cluster routers, registered by name."""

from policies.routers import basic, length_reservation, pecsched, prefix_affinity, splitwise  # noqa: F401
