"""Hardware: device and model catalogs and the cost models registered in ``COST_MODELS``.

The cost-model modules register on import; ``sim.registry.load_builtins()`` imports them all.
"""
