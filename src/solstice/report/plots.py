"""Figures for run directories and READMEs: a headless pyplot and one way to write a figure.

matplotlib is imported only when a paper draws, so importing this module stays cheap."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """`matplotlib.pyplot` on the non-interactive Agg backend (runs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120, tight: bool = True) -> Path:
    """Lay out (unless `tight=False`), write `fig` to `path` and free it; returns the path."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return Path(path)


def worth_drawing(values: Any, *, min_points: int = 2) -> bool:
    """Whether a series says anything as a figure: at least `min_points` finite values, not all
    zero. An all-zero bar chart or a one-point "curve" is left out (say it in words instead)."""
    import math

    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return len(vals) >= min_points and any(v != 0 for v in vals)
