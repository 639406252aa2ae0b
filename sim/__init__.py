"""servesim: a discrete-event simulator of LLM serving clusters."""

from sim.api import Result, simulate

__all__ = ["Result", "simulate"]
__version__ = "0.1.0"
