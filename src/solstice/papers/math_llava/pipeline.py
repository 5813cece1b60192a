"""The MathV360K construction pipeline on procedural figures: render, degrade a fraction, select
(clarity filter, complexity levels, proportional sampling, per-source caps), synthesise with the
four operators, validate, emit LLaVA JSON — with the checks that do not depend on a model:
clarity ROC-AUC (degraded vs clean), complexity vs planted object count (Spearman), level-ratio
error, and the yield / verification rates of the rule and (optionally) model operators."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.classification import auroc_metric
from solstice.metrics.correlation import correlation_metric
from solstice.papers.math_llava import figures as F
from solstice.papers.math_llava import synthesis as S
from solstice.papers.math_llava.selection import (
    Candidate,
    ImageSelector,
    edge_density,
    laplacian_variance,
)

LEVEL_RATIO = {0: 0.1, 1: 0.3, 2: 0.4, 3: 0.2}  # favours medium / hard images (paper: exact ratio unverified)


def run_pipeline(n_figures: int, seed: int, *, degrade_fraction: float = 0.3, select: int = 200,
                 banned: list[str] | None = None
                 ) -> tuple[dict[str, MetricValue], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(metrics, LLaVA JSON of the selected images, a log of the decisions, fid -> selected image)."""
    rng = random.Random(seed)
    figs = F.make_figures(n_figures, seed=seed)
    clean = [F.render(f) for f in figs]
    degraded = [rng.random() < degrade_fraction for _ in figs]
    images = [F.degrade(im, rng) if d else im for im, d in zip(clean, degraded)]
    clarity = [laplacian_variance(im) for im in images]
    metrics: dict[str, MetricValue] = {}
    metrics["clarity_auroc"] = auroc_metric([int(d) for d in degraded], [-c for c in clarity])
    complexity = [edge_density(im) for im in clean]
    metrics["complexity_spearman"] = correlation_metric(complexity, [f.objects for f in figs], method="spearman")
    # threshold: the midpoint (in log space) between the clean and degraded medians is what a
    # learned classifier would be fit to; here it is fixed from the clean images alone
    threshold = float(np.exp(np.log(np.percentile([c for c, d in zip(clarity, degraded) if not d], 1)) - 1.0))
    kept_scores = [edge_density(im) for im, c in zip(images, clarity) if c >= threshold]
    edges = list(np.quantile(kept_scores, [0.25, 0.5, 0.75])) if kept_scores else []
    selector = ImageSelector(clarity_threshold=threshold, level_edges=edges, level_ratio=LEVEL_RATIO,
                             per_source_cap=select // 4, seed=seed)
    cands = [Candidate(f.fid, f.kind, im) for f, im in zip(figs, images)]
    chosen = selector.select(cands, select)
    dropped_degraded = sum(1 for e, d in zip(selector.log, degraded) if d and not e["kept"])
    dropped_clean = sum(1 for e, d in zip(selector.log, degraded) if not d and not e["kept"])
    levels = [lv for _, lv in chosen]
    ratio_err = max(abs(levels.count(k) / max(1, len(levels)) - r) for k, r in LEVEL_RATIO.items())
    metrics["level_ratio_max_error"] = MetricValue(ratio_err, len(levels), None, False,
                                                   f"selected {len(levels)} of {n_figures}; ratio {LEVEL_RATIO}")
    metrics["unclear_dropped"] = MetricValue(dropped_degraded / max(1, sum(degraded)), sum(degraded), None, True,
                                             f"degraded images dropped by the clarity filter ({dropped_clean} clean dropped)")
    by_id = {f.fid: f for f in figs}
    _, stats = S.build_dataset(figs, seed=seed, banned=banned or [])  # yield over every figure
    data, _ = S.build_dataset([by_id[c.id] for c, _ in chosen], seed=seed, banned=banned or [])
    metrics["synth_yield"] = MetricValue(stats["accepted"] / max(1, stats["generated"]), stats["generated"], None, True,
                                         f"rule operators on all {n_figures} figures: accepted / generated")
    metrics["synth_verified"] = MetricValue(stats["verified"] / max(1, stats["accepted"]), stats["accepted"], None, True,
                                            "accepted pairs whose answer the independent reader recovers")
    info = {"selected_items": len(data), "threshold": threshold, "level_edges": edges, "stats": stats,
            "per_source": {k: sum(1 for c, _ in chosen if c.source == k) for k in F.KINDS}}
    return metrics, data, info, {c.id: c.image for c, _ in chosen}


def model_synthesis(model: Any, n_figures: int, seed: int, *, vision: bool, max_new_tokens: int = 128
                    ) -> tuple[dict[str, MetricValue], list[dict[str, Any]]]:
    """The four operators run by a model on `n_figures` figures (images when it sees them, text
    renderings otherwise), parsed and validated like the rule operators."""
    rng = random.Random(seed)
    figs = F.make_figures(n_figures, seed=seed + 1)
    origs = [S.original_qa(f, rng) for f in figs]
    images = [F.render(f) for f in figs] if vision else None
    pairs = []
    for op in S.OPERATORS:
        for got in S.model_operator(model, op, figs, origs, images, max_new_tokens=max_new_tokens):
            pairs += got
    kept, stats = S.validate(pairs, {f.fid: f for f in figs}, keep_unverified=True)
    m = {"model_synth_pairs": MetricValue(float(stats["generated"]), len(figs) * len(S.OPERATORS), None, True,
                                          "question/answer pairs parsed from the model's replies (4 operators)"),
         "model_synth_verified": MetricValue(stats["verified"] / max(1, stats["generated"]), stats["generated"], None,
                                             True, f"parsed pairs verified against the figure; rejections {stats}")}
    return m, S.to_llava(kept)
