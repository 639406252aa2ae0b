"""Cluster routers, registered by name."""

from policies.routers import basic, prefix_affinity  # noqa: F401
