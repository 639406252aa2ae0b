"""servesim: a discrete-event simulator of LLM serving clusters."""

from typing import Any

__all__ = ["Result", "simulate"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``sim.simulate`` and ``sim.Result``, imported on first use: importing a leaf module such as
    ``sim.errors`` (as the hardware catalogs do) must not pull in the whole engine."""
    if name in __all__:
        from sim import api

        return getattr(api, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
