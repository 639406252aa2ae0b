"""Prefill-to-decode hand-off policies (P/D disaggregation), registered by name."""

from policies.handoff import distserve, pecsched, splitwise  # noqa: F401
