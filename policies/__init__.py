"""Built-in policies: schedulers, routers, KV managers, hand-offs and controllers, registered
by name on import."""

from policies import controllers, handoff, kv, routers, schedulers  # noqa: F401  (registration)
