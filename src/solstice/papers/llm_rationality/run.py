"""Runner of the LLM-rationality paper: forward modelling on choices13k and inverse modelling on the
Jern et al. preference-inference task, with the human data's own agreement with EV maximisation."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.correlation import correlation, correlation_metric
from solstice.papers.llm_rationality import forward as F
from solstice.papers.llm_rationality import gambles as G
from solstice.papers.llm_rationality import inverse as inv
from solstice.papers.llm_rationality import plots
from solstice.papers.llm_rationality import stimuli as S
from solstice.papers.llm_rationality.config import Config

log = logging.getLogger(__name__)


def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    model = ctx.model("target")
    metrics: dict[str, MetricValue] = {}
    if "forward" in cfg.tasks:
        metrics |= run_forward(cfg, ctx, model)
    if "inverse" in cfg.tasks:
        metrics |= run_inverse(cfg, ctx, model)
    return metrics


# -- forward -----------------------------------------------------------------------------------
def run_forward(cfg: Config, ctx: Any, model: Any) -> dict[str, MetricValue]:
    problems = G.load_problems(ctx.dataset(G.SELECTIONS), ctx.dataset(G.PROBLEMS))
    analysed = ctx.limited(problems[: cfg.rows])
    if cfg.rows > len(problems):
        ctx.warn(f"rows={cfg.rows} exceeds the {len(problems)} rows of choices13k; all rows are used")
    out: dict[str, MetricValue] = {}
    out |= F.human_metrics(analysed, "human")
    out |= F.human_metrics(problems[:2000], "human_first2000")
    out |= F.human_metrics(problems, "human_all")
    refs = ctx.stage("reference_fits", lambda: F.fit_references(problems, analysed, cfg.fit_rows, ctx.seed))
    out |= F.reference_metrics(analysed, refs)
    estimator = F.resolve_estimator(cfg.estimator, model)
    records: dict[str, list[dict[str, Any]]] = {}
    for mode in cfg.modes:
        rows = analysed[: cfg.mode_rows.get(mode, len(analysed))]
        records[mode] = F.predict(ctx, cfg, model, mode, rows, estimator)
        out |= F.mode_metrics(mode, rows, records[mode], refs)
        none = sum(1 for r in records[mode] if not r.get("parse_ok"))
        if none:
            ctx.warn(f"forward {mode}: {none} of {len(rows)} rows gave no parsable answer (left out of the correlations)")
    if cfg.sample_check_rows and estimator == "logprobs" and "individual_zero_shot" in cfg.modes:
        rows = analysed[: cfg.sample_check_rows]
        sampled = F.predict(ctx, cfg, model, "individual_zero_shot", rows, "sample")
        out |= F.sample_check(records["individual_zero_shot"][: len(rows)], sampled)
    fig = ctx.artifact("forward.png")
    plots.forward_figure(out, cfg.modes, fig, f"{model.name}: forward modelling on choices13k ({len(analysed)} rows)")
    ctx.add_plot(fig, "Per prompt mode: correlation of the model's choices with human majority choices and with the "
                      "EV-maximising choice, next to the human-EV correlation on the same rows (95% bootstrap CIs).")
    first = cfg.modes[0]
    pa = [r.get("p_a") for r in records[first]]
    keep = [k for k, p in enumerate(pa) if p is not None]
    if keep:
        sc = ctx.artifact("forward_scatter.png")
        plots.scatter_figure([pa[k] for k in keep], [analysed[k].a_rate for k in keep], sc, f"{first}: model P(A) vs human rate")
        ctx.add_plot(sc, f"{first}: the model's P(A) against the human rate of choosing A, one point per problem.")
    _save_table(ctx, analysed, records, refs)
    return out


def _save_table(ctx: Any, analysed: list[G.Problem], records: dict[str, list[dict[str, Any]]], refs: dict[str, Any]) -> None:
    """A per-row CSV (row, human rate, EV choice, fitted references, each mode's P(A)) for users."""
    import csv

    path = ctx.artifact("forward_rows.csv")
    modes = list(records)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "problem", "n", "a_rate", "ev_a", "ev_b", "amb", "feedback",
                    *[f"p_{k}" for k in refs["p_a"]], *[f"p_{m}" for m in modes]])
        for k, p in enumerate(analysed):
            vals = [records[m][k].get("p_a") if k < len(records[m]) else None for m in modes]
            w.writerow([p.row, p.problem_id, p.n, round(p.a_rate, 6), G.expected_value(p.A), G.expected_value(p.B),
                        p.amb, p.feedback, *[round(v[k], 6) for v in refs["p_a"].values()],
                        *["" if v is None else round(v, 6) for v in vals]])


# -- inverse -----------------------------------------------------------------------------------
def _spearman(a: Any, b: Any) -> float:
    return correlation(a, b, "spearman")


def _rho(a: Any, b: Any, note: str) -> MetricValue:
    return correlation_metric(a, b, "spearman", note=note)


def subset_indices(k: int, n: int = 47) -> list[int]:
    """k choices spread evenly over the human weak-to-strong order."""
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def run_inverse(cfg: Config, ctx: Any, model: Any) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    idx = subset_indices(cfg.inverse_choices)
    for framing in cfg.framings:
        paths = {k: ctx.dataset(src) for k, src in S.sources(framing).items()}
        data = S.load_inverse(framing, paths)
        stim = [data.stimuli[k] for k in idx]
        human = data.human[idx]
        refs = ctx.stage(f"inverse_models_{framing}_{len(idx)}", lambda st=stim, fr=framing: S.model_ranks(
            st, fr, n_samples=cfg.prior_samples, seed=ctx.seed, scale=cfg.choice_scale, threshold=cfg.tie_threshold))
        pre = f"inv/{framing}"
        for name, ranks in refs.items():
            out[f"{pre}/human/rho_{name}"] = _rho(human, ranks, f"human ranks vs {name} model")
        if data.subjects is not None:
            sub = data.subjects[:, idx]
            loo = [_spearman(sub[s], np.delete(sub, s, 0).mean(0)) for s in range(len(sub))]
            out[f"{pre}/human/loo_rho"] = MetricValue(float(np.nanmean(loo)), len(sub), None, True,
                                                      "mean Spearman of one subject with the others' mean (human ceiling)")
        llm_ranks: dict[str, np.ndarray] = {}
        rhos: dict[str, dict[str, float]] = {"human": {m: out[f"{pre}/human/rho_{m}"].value for m in refs}}
        for method in cfg.methods:
            est = inv.resolve_estimator(cfg.inverse_estimator, model, method)
            per = [inv.judge_participant(ctx, cfg, model, stim, framing, method, p, est) for p in range(cfg.participants)]
            mp = f"{pre}/{method}"
            mean_h, std_h = inv.aggregate(per, len(stim), "h")
            llm_ranks[method] = mean_h
            out[f"{mp}/rho_human"] = _rho(mean_h, human, "LLM mean ranks vs human mean ranks")
            if est == "logprobs":
                mean_s, _ = inv.aggregate(per, len(stim), "s")
                out[f"{mp}/rho_human_soft"] = _rho(mean_s, human, "ranks from P(Choice 1) instead of the argmax")
            for name, ranks in refs.items():
                out[f"{mp}/rho_{name}"] = _rho(mean_h, ranks, f"LLM mean ranks vs {name} model")
            rhos[f"LLM {method}"] = {m: out[f"{mp}/rho_{m}"].value for m in refs}
            flat = [r for rec in per for r in rec]
            out[f"{mp}/rank_std"] = MetricValue(std_h, len(per), None, None, "mean per-choice rank std across participants")
            out[f"{mp}/parse_rate"] = MetricValue(float(np.mean([r.get("parse_ok", True) for r in flat])), len(flat), None, True,
                                                  "pairs with a parsed judgement")
            out[f"{mp}/choice1_share"] = MetricValue(
                float(np.mean([(1 - r["h"]) if r["flip"] else r["h"] for r in flat])), len(flat), None, None,
                "share of pairs judged 'Choice 1' as shown (0.5 = no position bias)")
        fig = ctx.artifact(f"inverse_{framing}.png")
        plots.inverse_figure(human, {k: v for k, v in llm_ranks.items()}, rhos, fig,
                             f"{model.name}: inverse modelling, {framing} framing ({len(stim)} choices, {cfg.participants} participants)")
        ctx.add_plot(fig, f"{framing} framing: LLM vs human mean ranks, and each ranking's Spearman rho with the rational "
                          "(Bayesian) and heuristic reference models.")
    return out
