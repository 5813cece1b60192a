"""Metrics, tables and plots of the continual-learning grid."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

from solstice.core.types import MetricValue
from solstice.metrics import mean_metric
from solstice.metrics.stats import paired_difference_metric, two_sample_difference_metric
from solstice.papers.migu.cl_metrics import (
    average_accuracy,
    backward_transfer,
    forgetting,
    item_values,
)
from solstice.report.plots import pyplot, save_figure

HIGHER = {"aa": True, "forgetting": False, "bwt": True}


def _chains_of(cfg: Any, results: dict[str, list[dict[str, Any]]], method: str, seeds: Any = None):
    """(task order, correct matrix) of every chain of a method (of the given seeds)."""
    from solstice.papers.migu.run import correct_matrix

    out = []
    for k, order in enumerate(cfg.orders):
        for seed in cfg.seeds if seeds is None else seeds:
            out.append((order, correct_matrix(results[f"o{k}-{method}-s{seed}"], order)))
    return out


def metrics_from_chains(cfg: Any, results: dict[str, list[dict[str, Any]]], diag: dict[str, Any] | None) -> dict[str, MetricValue]:
    """Pooled AA / forgetting / BWT per method (mean over orders and seeds) and paired differences
    between methods. CIs resample test examples, each with every chain that shares it (a cluster
    bootstrap: the chains reuse the same examples). With fewer than 5 seeds there is no interval over
    seeds: each seed's difference is reported on its own (`..._seed<s>`)."""
    from dataclasses import replace

    T = min(len(o) for o in cfg.orders)
    metrics: dict[str, MetricValue] = {}
    values: dict[tuple[str, str, Any], dict[tuple[str, int], float]] = {}
    groups = [("", None)] + [(f"_seed{s}", [s]) for s in cfg.seeds] if len(cfg.seeds) > 1 else [("", None)]
    for m in cfg.methods:
        for sfx, seeds in groups:
            chains = _chains_of(cfg, results, m, seeds)
            for name in ("aa", "forgetting", "bwt"):
                if name != "aa" and T < 2:
                    continue
                v = item_values(chains, name)
                values[(m, name, sfx)] = v
                if not sfx:
                    metrics[f"{m}_{name}"] = replace(mean_metric(
                        list(v.values()), higher_is_better=HIGHER[name],
                        note=f"mean over {len(chains)} chains (orders x seeds); CI over test examples"), unit="items")
    pairs = [(m, "seqft") for m in cfg.methods if m != "seqft" and "seqft" in cfg.methods]
    if "migu" in cfg.methods and "random" in cfg.methods:
        pairs.append(("migu", "random"))
    for a, b in pairs:
        for name in ("aa", "forgetting", "bwt"):
            for sfx, _ in groups:
                if (a, name, sfx) in values and (b, name, sfx) in values:
                    va, vb = values[(a, name, sfx)], values[(b, name, sfx)]
                    keys = [k for k in va if k in vb]
                    metrics[f"{a}_minus_{b}_{name}{sfx}"] = paired_difference_metric(
                        [va[k] for k in keys], [vb[k] for k in keys], higher_is_better=HIGHER[name],
                        note="paired over test examples (each with all its chains)" + (f"; seed {sfx[5:]} only" if sfx else ""))
    if diag and diag.get("within") and diag.get("between"):
        metrics["mask_jaccard_between_minus_within"] = two_sample_difference_metric(
            diag["between"], diag["within"], higher_is_better=None,
            note="mask overlap between tasks minus within a task (different pairs: two-sample bootstrap)")
    if diag and diag.get("units"):
        metrics["mask_jaccard_within"] = mean_metric(diag["within"], higher_is_better=None,
                                                     note="top-(1-q) mask overlap, two halves of one task")
        metrics["mask_jaccard_between"] = mean_metric(diag["between"], higher_is_better=None,
                                                      note="top-(1-q) mask overlap between tasks")
    return metrics


def chain_table(cfg: Any, results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    from solstice.papers.migu.run import acc_matrix

    rows = []
    for k, order in enumerate(cfg.orders):
        for seed in cfg.seeds:
            for m in cfg.methods:
                R = acc_matrix(results[f"o{k}-{m}-s{seed}"], order)
                rows.append({"order": k, "tasks": order, "seed": seed, "method": m, "R": R,
                             "aa": average_accuracy(R), "forgetting": forgetting(R), "bwt": backward_transfer(R),
                             "train_s": sum(r["train_s"] for r in results[f"o{k}-{m}-s{seed}"]),
                             "eval_s": sum(r["eval_s"] for r in results[f"o{k}-{m}-s{seed}"])})
    return rows


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown(cfg: Any, rows: list[dict[str, Any]]) -> str:
    lines = ["| order | seed | method | AA | forgetting | BWT |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {' → '.join(r['tasks'])} | {r['seed']} | {r['method']} | {_fmt(r['aa'])} | "
                     f"{_fmt(r['forgetting'])} | {_fmt(r['bwt'])} |")
    lines += ["", "Accuracy matrices (%; row i = after training task i, column j = task j), mean over seeds:", ""]
    for k, order in enumerate(cfg.orders):
        for m in cfg.methods:
            mats = [r["R"] for r in rows if r["order"] == k and r["method"] == m]
            lines += [f"{m}, order {' → '.join(order)}:", "", "| after \\ on | " + " | ".join(order) + " |",
                      "|---" * (len(order) + 1) + "|"]
            for i in range(len(order)):
                cells = []
                for j in range(len(order)):
                    vals = [M[i][j] for M in mats if M[i][j] is not None]
                    cells.append(_fmt(sum(vals) / len(vals)) if vals else "–")
                lines.append(f"| {order[i]} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def write_outputs(cfg: Any, ctx: Any, results: dict[str, Any], metrics: dict[str, MetricValue],
                  diag: dict[str, Any] | None) -> None:
    if not ctx.is_main:  # under torchrun rank 0 writes the run's files
        return
    rows = chain_table(cfg, results)
    ctx.artifact("chains.json").write_text(json.dumps(rows, indent=1))
    ctx.artifact("summary.md").write_text(markdown(cfg, rows))
    try:
        path = plot(cfg, rows, metrics, ctx.artifact("cl_results.png"))
    except ImportError:  # matplotlib missing: the tables are still written
        return
    ctx.add_plot(path, "Accuracy matrices (mean over seeds) and AA / forgetting / BWT with 95% CIs")


def plot(cfg: Any, rows: list[dict[str, Any]], metrics: dict[str, MetricValue], path: Any) -> Any:
    plt = pyplot()
    import numpy as np

    n_o, n_m = len(cfg.orders), len(cfg.methods)
    fig, axes = plt.subplots(n_o + 1, n_m, figsize=(3.2 * n_m, 2.9 * (n_o + 1)), squeeze=False)
    for k, order in enumerate(cfg.orders):
        for c, m in enumerate(cfg.methods):
            mats = [np.array([[np.nan if x is None else x for x in row] for row in r["R"]], dtype=float)
                    for r in rows if r["order"] == k and r["method"] == m]
            with warnings.catch_warnings():  # cells above the diagonal are never evaluated
                warnings.simplefilter("ignore", RuntimeWarning)
                M = np.nanmean(np.stack(mats), axis=0) * 100
            ax = axes[k][c]
            im = ax.imshow(M, vmin=0, vmax=100, cmap="viridis")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("accuracy (%)", fontsize=6)
            ax.set_xlabel("evaluated on", fontsize=7)
            ax.set_ylabel("after training on", fontsize=7)
            for i in range(M.shape[0]):
                for j in range(M.shape[1]):
                    if not np.isnan(M[i, j]):
                        ax.text(j, i, f"{M[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w")
            ax.set_xticks(range(len(order)), order, fontsize=6, rotation=30)
            ax.set_yticks(range(len(order)), order, fontsize=6)
            ax.set_title(f"{m} · order {k + 1}", fontsize=8)
    names = [("aa", "AA"), ("forgetting", "forgetting"), ("bwt", "BWT")]
    for c in range(n_m):
        axes[n_o][c].axis("off")
    ax = fig.add_subplot(n_o + 1, 1, n_o + 1)
    width = 0.8 / n_m
    for c, m in enumerate(cfg.methods):
        vals, errs = [], [[], []]
        for key, _ in names:
            mv = metrics.get(f"{m}_{key}")
            v = mv.value * 100 if mv else np.nan
            lo, hi = (mv.ci95 if mv and mv.ci95 else (mv.value, mv.value) if mv else (np.nan, np.nan))
            vals.append(v)
            errs[0].append(v - lo * 100)
            errs[1].append(hi * 100 - v)
        ax.bar(np.arange(len(names)) + c * width, vals, width, yerr=errs, label=m, capsize=3)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(np.arange(len(names)) + width * (n_m - 1) / 2, [n for _, n in names])
    ax.set_ylabel("%")
    ax.legend(fontsize=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    save_figure(fig, path, tight=False)
    return path
