"""Workloads: trace loaders, synthetic generators, transforms and trace statistics.

``sim.registry.load_builtins()`` imports every module here, which registers the workloads in
``sim.registry.WORKLOADS`` (``trace``, ``synthetic``, ``sessions``, ``agentic``,
``closed_loop``) and fills this package's own registries: ``traces.arrivals.ARRIVALS``,
``traces.lengths.LENGTHS`` and ``traces.transforms.TRANSFORMS``. See traces/README.md.
"""
