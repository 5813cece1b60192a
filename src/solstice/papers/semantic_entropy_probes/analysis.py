"""From recorded generations, entropies and hidden states to the run's metrics, plots and saved
probes. Pure computation (no model), recomputed on every resume."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.data.geonames_qa import QAItem
from solstice.metrics import proportion_metric
from solstice.metrics.classification import mean_auroc_metric, paired_difference_metric
from solstice.papers.semantic_entropy_probes.config import Config
from solstice.papers.semantic_entropy_probes.evaluate import (
    PROBES,
    ProbeSettings,
    SetData,
    fit_final,
    in_distribution,
    layer_curve,
    out_of_distribution,
)
from solstice.report.plots import pyplot, save_figure

log = logging.getLogger(__name__)
POSITIONS = ("slt", "tbg")


def _baselines(rows: list[dict[str, Any]], se: dict[str, list[dict[str, Any]]], main: str) -> dict[str, np.ndarray]:
    """Risk scores (higher = more likely wrong) of the sampling-based and token-level baselines."""
    m = se[main]
    out = {
        "se_discrete": np.array([r["se_discrete"] for r in m], dtype=float),
        "se_rao": np.array([r["se_rao"] for r in m], dtype=float),
        "se_mc": np.array([r["se_mc"] for r in m], dtype=float),
        "naive_entropy": np.array([r["naive_entropy"] for r in m], dtype=float),
        "neg_mean_loglik": np.array([-np.mean(r["answer_logprobs"]) if r["answer_logprobs"] else np.nan
                                     for r in rows], dtype=float),
        "neg_loglik": np.array([-np.sum(r["answer_logprobs"]) if r["answer_logprobs"] else np.nan
                                for r in rows], dtype=float),
        "p_true": np.array([1.0 - r["p_true"] if r.get("p_true") is not None else np.nan for r in rows], dtype=float),
    }
    for kind, rs in se.items():
        if kind != main:
            out[f"se_discrete_{kind}"] = np.array([r["se_discrete"] for r in rs], dtype=float)
    return out


def analyse(cfg: Config, ctx, items: dict[str, list[QAItem]], stress: list[str],
            by_id: dict[str, dict[str, Any]], se_rows: dict[str, dict[str, dict[str, Any]]]) -> dict[str, MetricValue]:
    B = cfg.n_bootstrap
    main = cfg.judge
    metrics: dict[str, MetricValue] = {}
    report: dict[str, Any] = {"sets": {}, "judge": main}
    rows_of = {n: [by_id[it.id] for it in qs] for n, qs in items.items()}
    se_of = {n: {k: [v[it.id] for it in qs] for k, v in se_rows.items()} for n, qs in items.items()}
    key = "se_discrete" if cfg.se_target == "discrete" else "se_rao"

    # -- accuracy, SE statistics, baselines --------------------------------------------------------
    all_correct = []
    for n in items:
        corr = [r["correct"] for r in rows_of[n]]
        all_correct += corr
        metrics[f"accuracy_{n}"] = proportion_metric(corr, higher_is_better=None)
        s = np.array([r[key] for r in se_of[n][main]])
        report["sets"][n] = {"n": len(corr), "accuracy": float(np.mean(corr)) if corr else math.nan,
                             "mean_se": float(np.nanmean(s)) if s.size else math.nan,
                             "mean_clusters": float(np.mean([r["n_clusters"] for r in se_of[n][main]])),
                             "stress": n in stress}
    metrics["accuracy"] = proportion_metric(all_correct, higher_is_better=None)
    core = [n for n in items if n not in stress]
    kept = [n for n in core if cfg.min_task_accuracy <= report["sets"][n]["accuracy"] <= cfg.max_task_accuracy]
    for n in core:
        if n not in kept:
            ctx.warn(f"{n} left out of probing: accuracy {report['sets'][n]['accuracy']:.2f} outside "
                     f"[{cfg.min_task_accuracy}, {cfg.max_task_accuracy}]")
    report["probed_sets"] = kept

    base = {n: _baselines(rows_of[n], se_of[n], main) for n in items}
    err = {n: 1 - np.array([r["correct"] for r in rows_of[n]], dtype=int) for n in items}
    for b in base[core[0]] if core else []:
        if all(np.all(np.isnan(base[n][b])) for n in core):
            continue  # not computed (e.g. p_true=false)
        metrics[f"{b}_auroc"] = mean_auroc_metric([(err[n], base[n][b]) for n in core], n_resamples=B,
                                                  note=f"hallucination AUROC, mean over {len(core)} sets")
    if core:
        metrics["se_minus_naive_auroc"] = paired_difference_metric(
            [(err[n], base[n]["se_discrete"], base[n]["naive_entropy"]) for n in core], n_resamples=B,
            note="discrete SE AUROC - naive entropy AUROC")
    if not cfg.probes or not kept:
        if cfg.probes:
            ctx.warn("no question set passed the accuracy filter; probes were not fitted")
        _write_report(ctx, report)
        return metrics

    # -- probes ------------------------------------------------------------------------------------
    from solstice.papers.semantic_entropy_probes.run import load_states

    ps = ProbeSettings(cfg.min_layers, cfg.probe_C, cfg.probe_max_iter, cfg.test_fraction, cfg.val_fraction,
                       cfg.cv_folds, cfg.split_seed, cfg.drop_middle)
    data = {}
    for n in [*kept, *stress]:
        st = load_states(ctx, [it.id for it in items[n]], by_id)
        data[n] = SetData(n, np.array([r[key] for r in se_of[n][main]], dtype=float),
                          np.array([r["correct"] for r in rows_of[n]], dtype=int), st)
    curves: dict[str, dict[str, list[float]]] = {}
    report["ranges"], report["ood"] = {}, {}
    idds: dict[str, dict[str, Any]] = {}
    for pos in POSITIONS:
        idd = idds[pos] = {n: in_distribution(data[n], pos, ps) for n in kept}
        report["ranges"][pos] = {n: idd[n]["ranges"] for n in kept}
        # (1) SE prediction, (2) hallucination detection, in distribution
        se_groups = [(idd[n]["y_se"], idd[n]["sep"]) for n in kept]
        metrics[f"sep_se_auroc_id_{pos}"] = mean_auroc_metric(se_groups, n_resamples=B,
                                                              note="SEP vs binarised SE, mean over sets")
        for name, _ in PROBES:
            groups = [(data[n].is_error[idd[n]["test"]], idd[n][name]) for n in kept]
            metrics[f"{name}_auroc_id_{pos}"] = mean_auroc_metric(groups, n_resamples=B,
                                                                  note="hallucination AUROC, mean over sets")
        metrics[f"sep_minus_acc_id_{pos}"] = paired_difference_metric(
            [(data[n].is_error[idd[n]["test"]], idd[n]["sep"], idd[n]["acc_probe"]) for n in kept], n_resamples=B,
            note="SEP - accuracy probe, hallucination AUROC")
        # per-layer curves (mean over sets)
        for label, y_of, probe in (("sep_se", lambda n, d: d["y_se"], "sep"),
                                   ("sep_err", lambda n, d: data[n].is_error[d["test"]], "sep"),
                                   ("acc_err", lambda n, d: data[n].is_error[d["test"]], "acc_probe")):
            per = np.array([layer_curve(y_of(n, idd[n]), idd[n][f"{probe}_layers"]) for n in kept])
            with np.errstate(all="ignore"):
                curves[f"{label}_{pos}"] = [None if np.all(np.isnan(c)) else float(np.nanmean(c)) for c in per.T]
        best = curves[f"sep_se_{pos}"]
        vals = [v if v is not None else -1 for v in best]
        li = int(np.argmax(vals))
        metrics[f"sep_se_auroc_max_layer_{pos}"] = MetricValue(
            float(best[li]) if best[li] is not None else math.nan, sum(len(data[n]) for n in kept), None, True,
            f"best single layer ({li}) picked on test: optimistic, for the curve only")
        # out of distribution
        if len(kept) >= 2:
            pairs = []
            for a in kept:
                res = out_of_distribution(data[a], [data[b] for b in kept if b != a], pos, ps)
                for b, r in res.items():
                    pairs.append((a, b, r))
            report["ood"][pos] = {f"{a}->{b}": {k: _auc_pair(data[b], r, k) for k in ("sep", "acc_probe", "sep_se")}
                                  for a, b, r in pairs}
            for name, _ in PROBES:
                metrics[f"{name}_auroc_ood_{pos}"] = mean_auroc_metric(
                    [(data[b].is_error, r[name]) for _, b, r in pairs], n_resamples=B,
                    note=f"hallucination AUROC, mean over {len(pairs)} train->test pairs")
            metrics[f"sep_se_auroc_ood_{pos}"] = mean_auroc_metric(
                [(r["y_se"], r["sep"]) for _, _, r in pairs], n_resamples=B, note="SEP vs binarised SE, OOD")
            metrics[f"sep_minus_acc_ood_{pos}"] = paired_difference_metric(
                [(data[b].is_error, r["sep"], r["acc_probe"]) for _, b, r in pairs], n_resamples=B,
                note="SEP - accuracy probe, OOD hallucination AUROC")
            wins = [report["ood"][pos][f"{a}->{b}"]["sep"] > report["ood"][pos][f"{a}->{b}"]["acc_probe"]
                    for a, b, _ in pairs
                    if not (math.isnan(report["ood"][pos][f"{a}->{b}"]["sep"])
                            or math.isnan(report["ood"][pos][f"{a}->{b}"]["acc_probe"]))]
            metrics[f"sep_ood_win_rate_{pos}"] = proportion_metric(wins, higher_is_better=None)
        # probes on all probed sets: saved, and tested on the stress sets
        final = fit_final([data[n] for n in kept], pos, ps)
        for name, probe in final.items():
            probe.meta.update({"model": ctx.model_specs["target"], "sets": kept, "judge": main,
                               "slt_offset": cfg.slt_offset, "few_shot": cfg.few_shot, "chat": cfg.chat})
            probe.save(ctx.artifact(f"probes/{name}_{pos}"))
        for sname in stress:
            for name in ("sep", "acc_probe"):
                metrics[f"{name}_auroc_stress_{sname}_{pos}"] = mean_auroc_metric(
                    [(data[sname].is_error, final[name].risk(data[sname].states[pos]))], n_resamples=B,
                    note=f"trained on {'+'.join(kept)}")
    if {"slt", "tbg"} <= set(idds):  # the two token positions, paired on the same test questions
        same = [n for n in kept if np.array_equal(idds["slt"][n]["test"], idds["tbg"][n]["test"])]
        if same:
            metrics["sep_se_slt_minus_tbg_id"] = paired_difference_metric(
                [(idds["slt"][n]["y_se"], idds["slt"][n]["sep"], idds["tbg"][n]["sep"]) for n in same],
                n_resamples=B, note="SEP vs binarised SE: SLT AUROC - TBG AUROC, same test questions")
    report["layer_curves"] = curves
    _write_report(ctx, report)
    _plot(ctx, curves, kept)
    return metrics


def _auc_pair(d: SetData, r: dict[str, Any], k: str) -> float:
    from solstice.metrics.classification import safe_auroc

    if k == "sep_se":
        return safe_auroc(r["y_se"], r["sep"], warn=False).value
    return safe_auroc(d.is_error, r[k], warn=False).value


def _write_report(ctx, report: dict[str, Any]) -> None:
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, float | np.floating):
            return None if math.isnan(float(x)) else round(float(x), 4)
        if isinstance(x, np.integer):
            return int(x)
        return x

    ctx.artifact("results.json").write_text(json.dumps(clean(report), indent=1))


def _plot(ctx, curves: dict[str, list[float | None]], kept: list[str]) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (title, keys) in zip(axes, (
        ("(1) predicting binarised SE", [("sep_se", "SEP")]),
        ("(2) detecting wrong answers", [("sep_err", "SEP"), ("acc_err", "accuracy probe")]),
    )):
        for k, lab in keys:
            for pos, style in (("slt", "-"), ("tbg", "--")):
                ys = [np.nan if v is None else v for v in curves.get(f"{k}_{pos}", [])]
                ax.plot(range(len(ys)), ys, style, label=f"{lab} {pos.upper()}")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("AUROC (in-distribution, mean over sets)")
    path = save_figure(fig, ctx.artifact("layer_auroc.png"))
    ctx.add_plot(path, f"Per-layer probe AUROC, in-distribution, mean over {', '.join(kept)}")
