"""The engine: cluster, replicas and their iteration loop, requests, KV hand-overs, recording.

Nothing here is a policy: routers, schedulers, KV managers, hand-offs, speculators and
controllers live in ``policies/`` and meet the engine through ``sim.engine.seams``.
"""

from sim.engine.simpy_import import import_simpy

import_simpy()  # before any engine module's ``import simpy``: see sim/engine/simpy_import.py
