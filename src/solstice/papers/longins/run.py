"""LongIns run: build the exam prompts per bucket, fit them to the model window (reported), generate
greedily (resumable), then score every response under both F1 rules next to model-free baselines."""

from __future__ import annotations

import csv
import logging
import random
from collections import defaultdict
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.errors import ConfigError
from solstice.metrics import mean_metric, proportion_metric
from solstice.metrics.stats import paired_difference_metric, two_sample_difference_metric
from solstice.models.base import GenParams
from solstice.models.tokens import get_counter, prompt_tokens, truncate_tokens
from solstice.papers.longins import data as D
from solstice.papers.longins import scoring as S
from solstice.papers.longins.config import Config
from solstice.papers.longins.prompts import build_prompt
from solstice.report.plots import pyplot, save_figure

log = logging.getLogger(__name__)
TRUNC_MARKER = "\n[...]\n"
FIT_NOTES = {"fits": "prompts that fit the window", "truncated": "prompts cut to fit (middle)",
             "skipped": "prompts too long for the window: not run, scored 0", "empty": "samples without items"}


def datasets(cfg: Config) -> list:
    out = {}
    for setting in cfg.settings:
        if setting == "LIMT":
            for L in cfg.limt_source_lengths:
                out[("GIST", L)] = D.source("GIST", L)
            continue
        for L in cfg.lengths:
            if setting == "LIST" and cfg.synthesize_missing and not D.is_available("LIST", L):
                out[("GIST", L)] = D.source("GIST", L)
            else:
                out[(setting, L)] = D.source(setting, L)
    return list(out.values())


def build_buckets(cfg: Config, ctx: Any, count) -> list[tuple[str, list[D.ExamSample]]]:
    """(label, samples) per evaluated bucket, in config order."""
    cache: dict[tuple[str, int], list[D.ExamSample]] = {}

    def released(setting: str, L: int) -> list[D.ExamSample]:
        if (setting, L) not in cache:
            cache[(setting, L)] = D.load_samples(ctx.dataset(D.source(setting, L)), setting, L)
        return cache[(setting, L)]

    buckets = []
    for setting in cfg.settings:
        if setting == "LIMT":
            pool = D.item_pool(s for L in cfg.limt_source_lengths for s in released("GIST", L))
            ctx.warn("LIMT was never released; its samples are synthesized from the GIST items "
                     f"of lengths {cfg.limt_source_lengths} (reported as LIMTsyn)")
            for L in cfg.lengths:
                samples = D.synthesize_limt(pool, L, cfg.limt_samples, count, seed=ctx.seed)
                buckets.append((f"LIMTsyn-{L}", samples))
            continue
        for L in cfg.lengths:
            if setting == "LIST" and not D.is_available("LIST", L):
                ctx.warn(f"LIST-{L} is not under SOLSTICE_DATA; built from GIST-{L} (reported as LISTsyn-{L})")
                buckets.append((f"LISTsyn-{L}", [D.listify(s) for s in released("GIST", L)]))
            else:
                buckets.append((f"{setting}-{L}", released(setting, L)))
    return buckets


def _fit(cfg: Config, model: Any, counter: Any, s: D.ExamSample, window: int) -> dict[str, Any]:
    """The prompt of a sample fitted to the window: status fits / truncated / skipped / empty."""
    text = build_prompt(s.setting, s.task_prompt, s.data, cfg.whitespace)
    msgs = [{"role": "user", "content": text}]
    n = prompt_tokens(model, msgs, counter)
    row = {"prompt_tokens": n, "data_tokens": counter.count(s.data)}
    if s.empty:
        return {**row, "status": "empty", "prompt": None}
    budget = window - cfg.max_new_tokens
    if n <= budget:
        return {**row, "status": "fits", "prompt": msgs}
    if cfg.truncation == "skip":
        return {**row, "status": "skipped", "prompt": None}
    if cfg.truncation == "error":
        raise ConfigError(
            f"LongIns {s.bucket} sample '{s.id}' needs {n} + {cfg.max_new_tokens} tokens but the window is "
            f"{window}; use --set truncation=middle or truncation=skip")
    data_budget = row["data_tokens"] - (n - budget)
    for _ in range(4):  # chat templates do not add up exactly: shrink until it fits
        cut = truncate_tokens(s.data, max(0, data_budget), counter, side="middle", marker=TRUNC_MARKER)
        msgs = [{"role": "user", "content": build_prompt(s.setting, s.task_prompt, cut, cfg.whitespace)}]
        m = prompt_tokens(model, msgs, counter)
        if m <= budget:
            return {**row, "status": "truncated", "prompt": msgs, "truncated_tokens": m}
        data_budget -= m - budget
    return {**row, "status": "skipped", "prompt": None}


def score_rows(samples: list[D.ExamSample], responses: dict[str, str]) -> list[dict[str, Any]]:
    """Per-sample scores from stored responses (idempotent)."""
    out = []
    for s in samples:
        resp = responses.get(s.id, "")
        up = S.parse_upstream(resp)
        st = S.parse_strict(resp)
        out.append({
            "id": s.id, "category": s.category, "n_items": s.n_items, "gold": list(s.error),
            "pred_upstream": sorted(up), "pred_strict": sorted(st.indices), "parse_ok": st.ok,
            "f1_reference": S.f1_reference(up, s.error),
            "f1_fixed": S.f1_fixed(st, s.error, s.n_items),
        })
    return out


def baseline_scores(samples: list[D.ExamSample], q: float, seed: int) -> dict[str, dict[str, list]]:
    """Per-sample F1 of the model-free predictors under both rules, through the same parsers."""
    rng = random.Random(f"random-baseline:{seed}")
    preds = {
        "oracle": [S.oracle_response(s.error, s.n_items) for s in samples],
        "all_indices": [S.all_indices_response(s.error, s.n_items) for s in samples],
        "first_only": [S.first_only_response(s.error, s.n_items) for s in samples],
        "random": [S.random_response(s.n_items, q, rng) for s in samples],
    }
    out = {}
    for name, resps in preds.items():
        rows = score_rows(samples, {s.id: r for s, r in zip(samples, resps)})
        out[name] = {"reference": [r["f1_reference"] for r in rows], "fixed": [r["f1_fixed"] for r in rows]}
    out["random_expected"] = {"fixed": [
        S.expected_random_f1(s.n_items, len(s.error), q) if not s.empty else None for s in samples]}
    return out


def _pct(values: list[float | None], note: str = "") -> MetricValue:
    return mean_metric([100.0 * v for v in values if v is not None], note=note)


def _count(k: int, n: int, note: str) -> MetricValue:
    return MetricValue(float(k), n, None, None, note)


def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    model = ctx.model("target")
    counter = get_counter(cfg.token_counter, model)
    window = cfg.context_window or model.context_window
    ctx.record.update(token_counting={**counter.info(), "window": window, "window_source":
                                      "config" if cfg.context_window else "model"})
    buckets = build_buckets(cfg, ctx, counter.count)
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    metrics: dict[str, MetricValue] = {}
    table: list[dict[str, Any]] = []
    curve: dict[str, dict[int, float]] = defaultdict(dict)
    fit_report = {}
    per_bucket: dict[str, tuple[str, int, list[float]]] = {}
    for label, all_samples in buckets:
        samples = ctx.limited(D.stratified(all_samples, cfg.n_per_bucket, ctx.seed))
        by_id = {s.id: s for s in samples}
        # the fit of every sample (status and token counts; prompts are rebuilt, deterministically)
        fitted = ctx.stage(f"fit-{label}-{len(samples)}", lambda samples=samples: {
            s.id: {k: v for k, v in _fit(cfg, model, counter, s, window).items() if k != "prompt"}
            for s in samples})
        status = defaultdict(int)
        for f in fitted.values():
            status[f["status"]] += 1
        fit_report[label] = dict(status)
        over = status["truncated"] + status["skipped"]
        if over:
            ctx.warn(f"{label}: {over} of {len(samples)} prompts exceed the {window}-token window "
                     f"({status['truncated']} truncated, {status['skipped']} skipped, policy {cfg.truncation})")
        runs = {"fits", "truncated"}
        todo = [Sample(s.id, s.id, metadata={"n": fitted[s.id]["prompt_tokens"]})
                for s in samples if fitted[s.id]["status"] in runs]
        todo.sort(key=lambda x: x.metadata["n"])

        def generate(batch: list[Sample], by_id: dict = by_id, label: str = label) -> list[dict[str, Any]]:
            fits = [_fit(cfg, model, counter, by_id[b.id], window) for b in batch]
            comps = model.generate([f["prompt"] for f in fits], params)
            return [{"response": c[0].text, "n_new": c[0].n_tokens, "finish": c[0].finish_reason,
                     "prompt_tokens": f.get("truncated_tokens", f["prompt_tokens"]), "status": f["status"]}
                    for f, c in zip(fits, comps)]

        rows = ctx.map(todo, generate, batch_size=cfg.batch_size, key=label, description=f"longins {label}",
                       roles=("target",))
        responses = {r["sample_id"]: r["response"] for r in rows}
        scored = score_rows(samples, responses)
        ran = [r for r in scored if fitted[r["id"]]["status"] in runs]
        L = samples[0].length if samples else 0
        metrics[f"f1/{label}"] = _pct([r["f1_reference"] for r in scored], "reference rule and parser; ×100")
        metrics[f"f1_fixed/{label}"] = _pct([r["f1_fixed"] for r in scored], "strict parser, scorable samples; ×100")
        per_bucket[label] = (label.split("-")[0], samples[0].length if samples else 0,
                             [100.0 * r["f1_fixed"] for r in scored if r["f1_fixed"] is not None])
        metrics[f"parse_fail/{label}"] = proportion_metric([not r["parse_ok"] for r in ran], higher_is_better=False)
        for k, what in FIT_NOTES.items():
            metrics[f"n_{k}/{label}"] = _count(status[k], len(samples), what)
        series = label.split("-")[0]
        curve[f"model {series}"][L] = metrics[f"f1_fixed/{label}"].value
        base = baseline_scores(samples, cfg.random_q, ctx.seed) if cfg.baselines else {}
        for name, rules in base.items():
            if "reference" in rules:
                metrics[f"{name}/{label}"] = _pct(rules["reference"], "reference rule; ×100")
            metrics[f"{name}_fixed/{label}"] = _pct(rules["fixed"], "fixed rule; ×100")
            if name in ("all_indices", "random"):
                curve[f"{name} {series}"][L] = metrics[f"{name}_fixed/{label}"].value
        if "all_indices" in base:  # the model against flagging every item, paired on the same samples
            pairs = [(m, b) for m, b in zip((r["f1_fixed"] for r in scored), base["all_indices"]["fixed"])
                     if m is not None and b is not None]
            metrics[f"f1_fixed_minus_all_indices/{label}"] = paired_difference_metric(
                [100.0 * m for m, _ in pairs], [100.0 * b for _, b in pairs],
                note="model minus all-indices predictor, strict parser, paired over samples; ×100")
        table += _category_rows(label, scored, base)
    # "scores fall as the context grows": adjacent lengths of a setting hold different samples, so the
    # drop is a two-sample difference (strict parser: an echoed item header earns nothing)
    for series in {v[0] for v in per_bucket.values()}:
        ladder = sorted((v[1], lab) for lab, v in per_bucket.items() if v[0] == series)
        for (l1, a), (l2, b) in zip(ladder, ladder[1:]):
            metrics[f"f1_fixed_drop/{series}-{l1}_vs_{l2}"] = two_sample_difference_metric(
                per_bucket[a][2], per_bucket[b][2], note=f"strict F1 at {l1} minus at {l2} tokens; ×100")
    ctx.record.update(longins_fit=fit_report)
    _write_table(ctx, table)
    _plot(ctx, curve, buckets)
    return metrics


def _category_rows(label: str, scored: list[dict], base: dict) -> list[dict[str, Any]]:
    by: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(scored):
        by[r["category"]].append(i)
    out = []
    for cat, idx in sorted(by.items(), key=lambda kv: -len(kv[1])):
        def mean(vals: list, idx: list[int] = idx) -> float | str:
            v = [vals[i] for i in idx if vals[i] is not None]
            return round(100 * sum(v) / len(v), 2) if v else ""

        out.append({
            "bucket": label, "category": cat, "n": len(idx),
            "f1": mean([r["f1_reference"] for r in scored]),
            "f1_fixed": mean([r["f1_fixed"] for r in scored]),
            "parse_fail": mean([0.0 if r["parse_ok"] else 1.0 for r in scored]),
            **({"all_indices_fixed": mean(base["all_indices"]["fixed"]),
                "random_fixed": mean(base["random"]["fixed"])} if base else {}),
        })
    return out


def _write_table(ctx: Any, table: list[dict[str, Any]]) -> None:
    if not table:
        return
    path = ctx.artifact("categories.csv")
    keys = list(dict.fromkeys(k for row in table for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(table)


def _plot(ctx: Any, curve: dict[str, dict[int, float]], buckets: list) -> None:
    lengths = sorted({L for pts in curve.values() for L in pts})
    if len(lengths) < 2:
        return
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, pts in curve.items():
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", label=name, lw=2 if name.startswith("model") else 1,
                ls="-" if name.startswith("model") else "--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bucket length (tokens)")
    ax.set_ylabel("F1 ×100 (fixed rule)")
    ax.legend(fontsize=7)
    path = save_figure(fig, ctx.artifact("f1_vs_length.png"))
    ctx.add_plot(path, "LongIns F1 (fixed rule) by bucket length: model and model-free predictors")
