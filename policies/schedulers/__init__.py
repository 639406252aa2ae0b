"""Per-replica batch schedulers, one file each."""

from policies.schedulers import distserve_prefill, orca, sarathi, splitfuse, vllm_v0, vllm_v1  # noqa: F401
