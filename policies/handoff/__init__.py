"""Prefill-to-decode hand-off policies (P/D disaggregation), registered by name."""
