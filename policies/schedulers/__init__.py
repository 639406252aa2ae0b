"""Per-replica batch schedulers, one file each, registered by name."""
