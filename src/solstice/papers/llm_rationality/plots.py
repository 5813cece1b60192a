"""Figures in the structure of the paper's: per mode, how the model's choices correlate with human
choices and with the expected-value choice, next to the human-EV correlation (forward); LLM vs human
rankings and each ranking's agreement with the reference models (inverse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from solstice.core.types import MetricValue
from solstice.report.plots import pyplot, save_figure


def _bar(ax, x, mv: MetricValue | None, color: str, label: str | None) -> None:
    if mv is None or mv.value is None or np.isnan(mv.value):
        return
    err = None
    if mv.ci95 is not None and not any(np.isnan(c) for c in mv.ci95):
        err = [[mv.value - mv.ci95[0]], [mv.ci95[1] - mv.value]]
    ax.bar(x, mv.value, 0.2, yerr=err, color=color, label=label, capsize=2)


def forward_figure(metrics: Mapping[str, MetricValue], modes: Sequence[str], path: Path, title: str) -> None:
    """Two panels (binarised phi, softmax r): model-human and model-EV per mode; the human-EV line."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, (kind, h_key, e_key) in zip(axes, (("binarised choices (phi)", "phi_model_human", "phi_model_ev"),
                                               ("model P(A) (softmax r)", "r_model_human", "r_model_ev"))):
        for k, m in enumerate(modes):
            _bar(ax, k - 0.2, metrics.get(f"{m}/{h_key}"), "tab:blue", "model vs human" if k == 0 else None)
            _bar(ax, k + 0.0, metrics.get(f"{m}/{e_key}"), "tab:orange", "model vs EV" if k == 0 else None)
            _bar(ax, k + 0.2, metrics.get(f"{m}/phi_human_ev"), "tab:gray", "human vs EV (same rows)" if k == 0 else None)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(range(len(modes)))
        ax.set_xticklabels([m.replace("_", "\n", 1) for m in modes], fontsize=7)
        ax.set_title(kind, fontsize=9)
    axes[0].set_ylabel("correlation")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def scatter_figure(p_model: Sequence[float], a_rate: Sequence[float], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.scatter(a_rate, p_model, s=4, alpha=0.4)
    ax.set_xlabel("human rate of choosing A")
    ax.set_ylabel("model P(A)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=8)
    save_figure(fig, path)


def inverse_figure(human: Sequence[float], llm: Mapping[str, Sequence[float]], rhos: Mapping[str, Mapping[str, float]],
                   path: Path, title: str) -> None:
    """Left: LLM mean rank vs human mean rank per method. Right: Spearman with each reference model,
    for humans and for each LLM method."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, ranks in llm.items():
        axes[0].scatter(human, ranks, s=12, label=name)
    axes[0].set_xlabel("human mean rank (1 = weakest evidence)")
    axes[0].set_ylabel("LLM mean rank")
    axes[0].legend(fontsize=7)
    models = list(next(iter(rhos.values())).keys()) if rhos else []
    width = 0.8 / max(len(rhos), 1)
    for k, (who, vals) in enumerate(rhos.items()):
        axes[1].bar(np.arange(len(models)) + k * width, [vals[m] for m in models], width, label=who)
    axes[1].set_xticks(np.arange(len(models)) + 0.4 - width / 2)
    axes[1].set_xticklabels([m.replace("_", "\n") for m in models], fontsize=6)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_ylabel("Spearman rho with the model's ranking")
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
