"""Controllers: periodic cluster-level policies (autoscaling), registered by name on import."""

from policies.controllers import autoscaler  # noqa: F401  (registration)
