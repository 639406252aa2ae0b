"""The engine: cluster, replicas and their iteration loop, requests, KV hand-overs, recording.

Nothing here is a policy: routers, schedulers, KV managers, hand-offs, speculators and
controllers live in ``policies/`` and meet the engine through ``sim.engine.seams``.
"""
