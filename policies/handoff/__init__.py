"""Prefill-to-decode hand-off policies (P/D disaggregation), registered by name."""

from policies.handoff import distserve, splitwise  # noqa: F401
