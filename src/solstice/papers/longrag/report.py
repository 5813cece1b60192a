"""Tables and a plot of the retrieval experiment, built from the run's metrics."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue
from solstice.report.plots import pyplot, save_figure

_KEY = re.compile(r"^(squad_)?(sr|ar|tok)_(k|b)(\d+)_(.+)_(bm25|dense)$")


def _collect(metrics: Mapping[str, MetricValue]) -> dict[tuple[str, str, str], dict[str, MetricValue]]:
    """(dataset, retriever, arm) -> {'sr_k1': mv, ...}."""
    out: dict[tuple[str, str, str], dict[str, MetricValue]] = {}
    for name, mv in metrics.items():
        m = _KEY.match(name)
        if m:
            ds = "squad" if m.group(1) else "main"
            out.setdefault((ds, m.group(6), m.group(5)), {})[f"{m.group(2)}_{m.group(3)}{m.group(4)}"] = mv
    return out


def _arm_order(arm: str) -> tuple[int, int]:
    for i, p in enumerate(("passages", "paragraphs", "units", "random", "first")):
        if arm.startswith(p):
            rest = arm[len(p):]
            return (i, int(rest) if rest.isdigit() else 0)
    return (9, 0)


def retrieval_tables(metrics: Mapping[str, MetricValue], cfg: Any) -> str:
    data = _collect(metrics)
    if not data:
        return ""
    parts = []
    titles = {"sr": "support recall (all supporting documents retrieved)", "ar": "answer recall (DPR has_answer)",
              "tok": "mean context tokens"}
    for ds in ("main", "squad"):
        for ret in ("dense", "bm25"):
            arms = sorted({a for (d, r, a) in data if d == ds and r == ret}, key=_arm_order)
            if not arms:
                continue
            for kind in ("sr", "ar", "tok"):
                cols = [f"k{k}" for k in cfg.ks] + ([f"b{b}" for b in cfg.budgets] if kind != "tok" else [])
                if not any(f"{kind}_{c}" in data[(ds, ret, a)] for a in arms for c in cols):
                    continue
                head = ["arm"] + [f"@{c[1:]}" if c[0] == "k" else f"@{int(c[1:]) / 1000:g}K tok" for c in cols]
                name = "SQuAD-24 (same-source units)" if ds == "squad" else cfg.dataset
                lines = [f"**{name} · {ret} · {titles[kind]}**", "", "| " + " | ".join(head) + " |",
                         "|" + "---|" * len(head)]
                for a in arms:
                    row = [a]
                    for c in cols:
                        mv = data[(ds, ret, a)].get(f"{kind}_{c}")
                        row.append("—" if mv is None else (f"{mv.value:.0f}" if kind == "tok" else f"{mv.value:.3f}"))
                    lines.append("| " + " | ".join(row) + " |")
                parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def plot_retrieval(metrics: Mapping[str, MetricValue], cfg: Any, path: Path) -> Path | None:
    data = _collect(metrics)
    rets = [r for r in ("dense", "bm25") if any(d == "main" and rr == r for d, rr, _ in data)]
    if not rets:
        return None
    plt = pyplot()

    fig, axes = plt.subplots(len(rets), 2, figsize=(10, 3.6 * len(rets)), squeeze=False)
    for row, ret in enumerate(rets):
        arms = sorted({a for d, r, a in data if d == "main" and r == ret}, key=_arm_order)
        for col, (kind, xs, label) in enumerate((("k", cfg.ks, "units retrieved (k)"),
                                                 ("b", cfg.budgets, "token budget"))):
            ax = axes[row][col]
            for a in arms:
                ys = [data[("main", ret, a)].get(f"sr_{kind}{x}") for x in xs]
                if all(y is None for y in ys):
                    continue
                style = "--" if a.startswith("random") else ":" if a.startswith("first") else "-"
                ax.plot(xs, [y.value if y else float("nan") for y in ys], style, marker="o", label=a)
            ax.set_xscale("log", base=2)
            ax.set_xlabel(label)
            ax.set_ylabel("support recall")
            ax.set_title(f"{ret}: support recall by {label}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)
    return path
