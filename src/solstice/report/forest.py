"""The forest plot of a report: per tested claim, our value with its 95% CI beside the paper's
value (or the bound the claim tests), one row each on its own scale (claims measure different
things), coloured by verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from solstice.report.plots import pyplot, save_figure

COLOURS = {"reproduced": "#1a7f37", "point estimate holds": "#7aa116", "inconclusive": "#8c8c8c",
           "not reproduced": "#cf222e", "failed": "#bc4c00", "not run": "#8c8c8c", "pass": "#1a7f37",
           "fail": "#cf222e"}


@dataclass(frozen=True)
class ForestRow:
    label: str
    value: float
    ci: tuple[float, float] | None
    status: str
    paper: float | None = None  # the paper's value of this metric
    reference: float | None = None  # the bound the claim tests (0 for a paired difference)


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x) and not math.isinf(x)


def drawable(rows: Sequence[ForestRow]) -> list[ForestRow]:
    """The rows with a finite value (a row without one has nothing to draw)."""
    return [r for r in rows if _finite(r.value)]


def forest_plot(rows: Sequence[ForestRow], path: str | Path, title: str = "") -> Path | None:
    """Draw the rows to `path` (PNG); None, and nothing written, when no row has a value."""
    rows = drawable(rows)
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 0.55 * len(rows) + 0.9), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        colour = COLOURS.get(r.status, "#444444")
        xs = [r.value] + ([*r.ci] if r.ci and all(_finite(c) for c in r.ci) else [])
        xs += [x for x in (r.paper, r.reference) if _finite(x)]
        if r.ci and all(_finite(c) for c in r.ci):
            ax.hlines(0, r.ci[0], r.ci[1], color=colour, lw=2.5)
        ax.plot([r.value], [0], "o", color=colour, ms=6, label="ours (95% CI)")
        if _finite(r.reference):
            ax.axvline(r.reference, color="#555555", ls=":", lw=1, label="bound tested")
        if _finite(r.paper):
            ax.plot([r.paper], [0], "D", mfc="none", mec="#0550ae", ms=7, label="paper")
        lo, hi = min(xs), max(xs)
        pad = (hi - lo) * 0.15 or max(abs(hi), 1.0) * 0.1
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks([])
        ax.set_ylabel(f"{r.label}\n{r.status}", rotation=0, ha="right", va="center", fontsize=8, color=colour)
        ax.tick_params(axis="x", labelsize=7)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper right", fontsize=7, ncol=3, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (0.55 * len(rows) + 0.9)))
    return save_figure(fig, path, dpi=110, tight=False)
