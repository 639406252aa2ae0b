"""KV-cache managers, registered by name."""
