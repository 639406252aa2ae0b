"""Per-replica batch schedulers, one file each."""

from policies.schedulers import (  # noqa: F401
    distserve_prefill,
    orca,
    pecsched,
    sarathi,
    splitfuse,
    splitwise,
    strict_priority,
    vllm_v0,
    vllm_v1,
)
