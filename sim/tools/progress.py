"""Progress bars for runs and sweeps, from tqdm: shown on a terminal only, never in logs.

One place decides whether a bar is drawn, so every command behaves the same: a bar goes to
``stream`` (stderr by default) only when that stream is a terminal and the caller asked for
progress; otherwise ``bar`` returns a no-op stand-in with the same ``update`` /
``set_postfix_str`` / ``close`` methods. tqdm is imported only when a bar is drawn, so
start-up stays fast for scripted runs.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class _Quiet:
    """What ``bar`` returns when nothing is drawn."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _is_terminal(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(desc: str, total: int | None = None, initial: int = 0, unit: str = "it",
        enabled: bool | TextIO = True, delay_s: float = 0.0) -> Any:
    """A tqdm bar on stderr (or on the stream ``enabled`` names) when it is a terminal, else a
    no-op. ``delay_s`` holds the bar back until the work has run that long (short runs stay
    silent)."""
    if enabled is False or enabled is None:
        return _Quiet()
    stream = sys.stderr if enabled is True else enabled
    if not _is_terminal(stream):
        return _Quiet()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, delay=delay_s,
                mininterval=0.5, dynamic_ncols=True, leave=True)
