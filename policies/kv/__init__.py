"""KV-cache managers."""

from policies.kv import paged  # noqa: F401
