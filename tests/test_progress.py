"""Progress bars come from tqdm, only on a terminal: scripted runs and logs stay clean."""

from __future__ import annotations

import io

from sim.tools.progress import bar
from sim.tools.sweep import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    b = bar("x", total=3, enabled=out)
    b.update(3)
    b.close()
    assert out.getvalue() == ""
    assert type(b).__name__ == "_Quiet"


def test_a_terminal_gets_a_tqdm_bar():
    out = _Terminal()
    b = bar("sweep", total=4, unit="point", enabled=out)
    b.update(4)
    b.close()
    assert type(b).__module__.startswith("tqdm")
    assert "sweep" in out.getvalue() and "4/4" in out.getvalue()


def test_progress_off_draws_nothing():
    assert type(bar("x", enabled=False)).__name__ == "_Quiet"


def test_sweep_progress_counts_failures_and_says_it_resumes():
    out = _Terminal()
    p = Progress(total=5, done=2, stream=out)
    p.update(failed=True)
    p.update(failed=False)
    p.close()
    text = out.getvalue()
    assert "resuming, 2 of 5 points already done" in text
    assert "1 failed" in text and "4/5" in text
