"""Workloads: trace loaders, synthetic generators, transforms and trace statistics.

Importing the package registers the workloads in ``sim.registry.WORKLOADS`` (``trace``,
``synthetic``, ``sessions``, ``agentic``, ``closed_loop``) and fills this package's own
registries: ``traces.arrivals.ARRIVALS``, ``traces.lengths.LENGTHS`` and
``traces.transforms.TRANSFORMS``. See traces/README.md.
"""

from traces import agentic, closed_loop, long_inputs, sessions, synthetic, trace_workload  # noqa: F401
