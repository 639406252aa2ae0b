"""Built-in policies: schedulers, routers and KV managers, registered by name on import."""

from policies import handoff, kv, routers, schedulers  # noqa: F401  (registration)
