"""Where an experiment writes its figures: docs/ for full runs, elsewhere for quick ones.

Every script in ``experiments/`` resolves its figure folder through :func:`figure_dir`, so a
test or a notebook can run it without touching the committed figures under ``docs/``:
``SERVESIM_FIGURES_DIR=/tmp/x python experiments/vtc_azure.py --quick``.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = "SERVESIM_FIGURES_DIR"
QUICK_DEFAULT = ROOT / "runs" / "figures_quick"


def figure_dir(quick: bool, quick_default: Path | None = None) -> Path:
    """The folder (created) for an experiment's figures.

    ``$SERVESIM_FIGURES_DIR`` when set (quick or full run); otherwise ``docs/`` for a full run
    and ``quick_default`` (``runs/figures_quick/`` unless given) for a quick one.
    """
    env = os.environ.get(ENV)
    if env:
        folder = Path(env)
    elif quick:
        folder = quick_default if quick_default is not None else QUICK_DEFAULT
    else:
        folder = ROOT / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``path`` (its folder created) and say where."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    print(f"wrote {path}")
    return path
