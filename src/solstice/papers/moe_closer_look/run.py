"""The paper's static and dynamic analyses on one MoE model (upcycled from a dense target by default).

Stages (`ctx.stage`, resumable): `static` (matrix-level and neuron-averaged similarity per layer,
gate regression, Hungarian reordering on chosen layers) and `dynamic` (all-experts mode on the
paper's short prompt and on the first WikiText-103 test sentences: output similarity per layer,
rank counts, routing load). A killed run re-upcycles deterministically (same seed) and retrains.
"""

from __future__ import annotations

import csv
import json
import logging
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.data import DataSource
from solstice.errors import CapabilityError, ConfigError
from solstice.papers.moe_closer_look.config import Config

log = logging.getLogger(__name__)


def wikitext_source() -> DataSource:
    from solstice.data.catalogue import WIKITEXT103_TEST

    return WIKITEXT103_TEST


def sentences(path: Any, n: int) -> list[str]:
    """The first n non-heading sentences (split on ' . '), read without a header row."""
    csv.field_size_limit(1 << 30)
    out: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            for line in row[0].split("\n"):
                if not line.strip() or line.lstrip().startswith("="):
                    continue
                for s in line.split(" . "):
                    s = s.strip()
                    if s:
                        out.append(s if s.endswith(".") else s + " .")
                    if len(out) == n:
                        return out
    return out


def _model(cfg: Config, ctx: Any) -> tuple[Any, Any, dict[str, Any]]:
    from solstice.models.moe import moe_layers
    from solstice.models.upcycle import upcycle

    hf = ctx.model("target")
    hf.require("whitebox", purpose="reading expert weights and router scores")
    model, tok = hf.model, hf.tokenizer
    try:
        moe_layers(model)
        return model, tok, {"upcycled": False}
    except CapabilityError:
        if not cfg.upcycle:
            raise
    moe, info = upcycle(model, experts=cfg.experts, top_k=cfg.top_k, init=cfg.init, noise=cfg.noise,
                        router_std=cfg.router_std, aux_loss_coef=cfg.aux_loss_coef, seed=cfg.seed)
    meta = {"upcycled": True, "experts": cfg.experts, "top_k": cfg.top_k, "init": cfg.init}
    if cfg.train_steps:
        meta["training"] = _train(cfg, ctx, moe, tok)
    return moe, tok, meta


def _train(cfg: Config, ctx: Any, moe: Any, tok: Any) -> dict[str, Any]:
    from solstice.models.upcycle import train_only_moe
    from solstice.training.loop import TrainConfig, train

    path = ctx.dataset(wikitext_source())
    L = cfg.train_tokens
    need = cfg.train_steps * cfg.train_batch  # chunks for the requested steps in one epoch
    n = 4000
    while True:  # the sentences after the ones the dynamic analyses read, enough for every step
        sents = sentences(path, cfg.n_sentences + n)
        ids = tok(" ".join(sents[cfg.n_sentences:])).input_ids
        rows = [{"input_ids": ids[i:i + L], "labels": ids[i:i + L]} for i in range(0, len(ids) - L, L)]
        if len(rows) >= need or len(sents) < cfg.n_sentences + n:
            break
        n *= 2
    if len(rows) < need:
        ctx.warn(f"WikiText-103 gives {len(rows)} training chunks of {L} tokens; {cfg.train_steps} steps of "
                 f"{cfg.train_batch} need {need}: the training takes {len(rows) // cfg.train_batch} steps")
    n_params = train_only_moe(moe)
    res = train(moe, tok, rows[:need], TrainConfig(lr=cfg.lr, batch_size=cfg.train_batch, max_steps=cfg.train_steps,
                                                   seed=cfg.seed, max_length=L,
                                                   router_aux_loss_coef=cfg.aux_loss_coef))
    return {"trainable_params": n_params, "train_sentences": len(sents) - cfg.n_sentences, **res.summary()}


def _static(cfg: Config, layers: list[Any]) -> dict[str, Any]:
    from solstice.analysis import moe_static as S

    reg = S.gate_regression(layers)
    out: dict[str, Any] = {"regression": reg.to_dict(), "matrix": {}, "neuron_mean": {}, "reorder": {}}
    for layer in layers:
        out["matrix"][str(layer.index)] = {p: m.tolist() for p, m in S.matrix_similarity(layer).items()}
        out["neuron_mean"][str(layer.index)] = {p: m.tolist() for p, m in S.neuron_mean_similarity(layer).items()}
    picked = cfg.static_layers
    if picked is None:
        idx = [layer.index for layer in layers]
        picked = sorted(set(idx[::4] + idx[-1:]))
    E = layers[0].num_experts
    pairs = [(a, b) for a in range(E) for b in range(a + 1, E)][: cfg.hungarian_pairs]
    for layer in layers:
        if layer.index not in picked:
            continue
        out["reorder"][str(layer.index)] = {
            p: [{"pair": list(k), "raw": m.raw_cosine, "reordered": m.reordered_cosine, "tau": m.kendall_tau}
                for k, m in S.reorder_similarity(layer, p, pairs).items()] for p in S.PROJECTIONS}
    return out


def _dynamic(cfg: Config, ctx: Any, model: Any, tok: Any, layers: list[Any]) -> dict[str, Any]:
    from solstice.analysis import moe_dynamic as D

    path = ctx.dataset(wikitext_source())
    texts = {"short": cfg.short_prompt, "long": " ".join(sentences(path, cfg.n_sentences))}
    out: dict[str, Any] = {}
    for name, text in texts.items():
        ids = tok(text, return_tensors="pt").input_ids
        rec = D.all_experts(model, layers, ids)
        sim = D.output_similarity(rec, angular=name == "long")
        rc = D.rank_counts(rec)
        top: list[float] = []  # per token-layer case: top-score expert is the max-norm expert
        for r in rec.layers:  # a tie between the two largest norms (identical experts) is no case: NaN
            norms = np.sort(np.linalg.norm(r.outputs, axis=-1).T, axis=1)
            tied = norms[:, -1] - norms[:, -2] <= 1e-5 * norms[:, -1]
            hit = (np.argmax(r.scores, 1) == np.argmax(np.linalg.norm(r.outputs, axis=-1).T, 1)).astype(float)
            top += np.where(tied, np.nan, hit).tolist()
        out[name] = {"tokens": rec.tokens, "recombination_max_abs_err": rec.recombination_error(),
                     "recombination_max_rel_err": rec.recombination_error(relative=True),
                     "similarity_layers": sim.layers, "depth_curve": sim.depth_curve(),
                     "similarity_maps": [m.tolist() for m in sim.maps],
                     "rank_counts": rc.counts.tolist(), "cases": rc.cases, "top_is_max_norm": top,
                     "load": [x.tolist() for x in D.routing_stats(rec).load],
                     "chosen_weights_first_layer": D.chosen_weights(rec.layers[0]).tolist()}
    return out


def _plots(ctx: Any, static: dict[str, Any], dyn: dict[str, Any], layers: list[Any]) -> None:
    from solstice.analysis import moe_dynamic as D
    from solstice.analysis import moe_static as S

    first, last = str(layers[0].index), str(layers[-1].index)
    for idx in (first, last):
        m = {p: np.asarray(v) for p, v in static["matrix"][idx].items()}
        ctx.add_plot(S.plot_heatmaps(m, ctx.artifact(f"matrix_similarity_layer{idx}.png"),
                                     title=f"expert matrix cosine, layer {idx}"),
                     f"Matrix-level expert similarity (analysis 1), layer {idx}")
    long = dyn["long"]
    ctx.add_plot(D.plot_depth(long["depth_curve"], long["similarity_layers"], ctx.artifact("output_similarity_depth.png"),
                              title="expert-output angular similarity"),
                 "Mean off-diagonal angular similarity of expert outputs per layer (analysis 6)")
    rc = D.RankCounts(np.asarray(long["rank_counts"]), long["cases"])
    ctx.add_plot(D.plot_rank_counts(rc, ctx.artifact("rank_counts.png"), title="score rank vs norm rank"),
                 "Gate-score rank vs output-norm rank counts over tokens × layers (analysis 7)")


def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    from solstice.metrics.stats import mean_metric, paired_difference_metric
    from solstice.models.moe import moe_layers

    model, tok, meta = _model(cfg, ctx)
    layers = moe_layers(model)
    if cfg.layers is not None:
        layers = [lay for lay in layers if lay.index in set(cfg.layers)]
        if len(layers) < 2:
            raise ConfigError(f"layers {cfg.layers}: fewer than 2 of them are sparse layers of this model")
    E = layers[0].num_experts
    static = ctx.stage("static", lambda: _static(cfg, layers))
    dyn = ctx.stage("dynamic", lambda: _dynamic(cfg, ctx, model, tok, layers))
    save = cfg.save_model if cfg.save_model is not None else bool(meta.get("training"))
    if save and meta.get("upcycled") and ctx.is_main:
        out = ctx.artifact("upcycled_model")
        model.save_pretrained(out)  # safetensors + config.json: `--model hf:<run>/artifacts/upcycled_model`
        tok.save_pretrained(out)
        meta["saved_to"] = "artifacts/upcycled_model"
    if ctx.is_main:  # under torchrun rank 0 writes the run's files
        ctx.artifact("model.json").write_text(json.dumps({**meta, "layers": [lay.index for lay in layers],
                                                          "experts": E, "top_k": layers[0].top_k}, indent=1))
        _plots(ctx, static, dyn, layers)

    r2 = {p: [r["r2"] for r in rs] for p, rs in static["regression"]["per_layer"].items()}
    long = dyn["long"]
    counts = np.asarray(long["rank_counts"])
    T_L = long["cases"]
    margin = int(max(np.abs(counts.sum(0) - T_L).max(), np.abs(counts.sum(1) - T_L).max()))
    curve = long["depth_curve"]
    reordered = [m["reordered"] for per in static["reorder"].values() for ms in per.values() for m in ms]
    metrics = {
        "gate_r2": mean_metric(r2["gate"]), "up_r2": mean_metric(r2["up"]), "down_r2": mean_metric(r2["down"]),
        "gate_minus_up_r2": paired_difference_metric(r2["gate"], r2["up"], note="paired over sparse layers"),
        "gate_minus_down_r2": paired_difference_metric(r2["gate"], r2["down"], note="paired over sparse layers"),
        "p_top_is_max_norm": mean_metric([float(x) for x in long["top_is_max_norm"]],
                                         note="cases with tied largest norms dropped"),
        "top_max_norm_minus_chance": mean_metric([float(x) - 1.0 / E for x in long["top_is_max_norm"]],
                                                 note=f"chance 1/E = {1 / E:.3f}; token-layer cases, not independent"),
        "last_minus_min_similarity": MetricValue(float(curve[-1] - min(curve[:-1])) if len(curve) > 1 else float("nan"),
                                                 1, note="one model, no CI"),
        "mean_output_similarity": MetricValue(float(np.mean(curve)), len(curve)),
        "recombination_max_rel_err": MetricValue(max(dyn[k]["recombination_max_rel_err"] for k in dyn), len(layers),
                                                 higher_is_better=False, note="max |Δ| / max |block output|"),
        "rank_count_margin_error": MetricValue(float(margin), T_L, higher_is_better=False),
    }
    if reordered:
        metrics["min_reordered_cosine"] = MetricValue(float(min(reordered)), len(reordered))
    if meta.get("init") != "permute" or meta.get("training"):
        metrics.pop("min_reordered_cosine", None)
        ctx.warn("permute_recovered is only a harness check for an untrained permute-upcycled model")
    return metrics
