"""Cluster routers, registered by name."""
