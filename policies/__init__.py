"""Built-in policies: schedulers, routers and KV managers, registered by name on import."""

from policies import handoff, kv, routers, schedulers, speculators  # noqa: F401  (registration)
from policies.speculators import fixed  # noqa: F401
