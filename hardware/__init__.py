"""Hardware: device and model catalogs and the cost models registered in ``COST_MODELS``."""

from hardware import analytic, constant  # noqa: F401  (registration)
