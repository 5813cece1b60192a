"""Context recycling runner: demos generated from each context (cached by content), the reader arms
read with the context once per question, answer / evidence metrics, paired comparisons, and the
NQ gold-position sweep."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.metrics import mean_metric, proportion_metric
from solstice.metrics.evidence import evidence_prf
from solstice.metrics.stats import paired_difference_metric
from solstice.metrics.text import best_em, best_f1, contains_any
from solstice.models.base import GenParams
from solstice.papers.context_recycling import data as D
from solstice.papers.context_recycling.config import Config
from solstice.papers.context_recycling.demos import DemoSet, content_key, generate_demos, is_leak
from solstice.papers.context_recycling.prompts import Demo, parse_output, reader_prompt

log = logging.getLogger(__name__)
EV_ARMS = ("zero_shot", "recycled", "icl")


def wrap(cfg: Config, body: str, cue: str):
    """The prompt a reader gets: one user turn + an assistant prefill holding the cue (chat), or raw text."""
    if cfg.chat:
        return [{"role": "user", "content": body.rstrip("\n")}, {"role": "assistant", "content": cue}]
    return body + cue


def score_output(raw: str, cue: str, item: D.Item) -> dict[str, Any]:
    """Parse a continuation of `cue` and score it against the item's answers and gold paragraphs."""
    p = parse_output(raw, cue, [x.title for x in item.paragraphs])
    row: dict[str, Any] = {"raw": raw, "evidence": list(p.evidence), "answer": p.answer, "parse_failed": p.failed,
                           "accuracy": contains_any(p.answer, item.answers) if p.answer else False,
                           "em": best_em(p.answer, item.answers), "f1": best_f1(p.answer, item.answers)}
    if cue == "Evidence:":
        row |= {f"ev_{k}": v for k, v in evidence_prf(p.evidence, item.gold).items()}
    return row


def paragraphs_once(prompt_text: str, item: D.Item) -> bool:
    return all(prompt_text.count(p.text) == 1 for p in item.paragraphs)


def oracle_output(item: D.Item) -> str:
    return " " + " ".join(f"[{i}]" for i in item.gold) + f"\nAnswer: {item.answers[0]}"


def build_demos(cfg: Config, ctx, items: list[D.Item], key: str) -> dict[str, DemoSet]:
    """One demo set per distinct context content (resumable through ctx.map)."""
    by_key: dict[str, D.Item] = {}
    for it in items:
        by_key.setdefault(content_key(it.paragraphs), it)
    samples = [Sample(k, "", None, {}) for k in by_key]

    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        gen = ctx.model("generator")
        return [generate_demos(gen, by_key[s.id].paragraphs, cfg.k, seed=cfg.seed, temperature=cfg.demo_temperature,
                               retries=cfg.demo_retries, min_words=cfg.min_words,
                               max_answer_tokens=cfg.max_answer_tokens,
                               max_new_tokens=cfg.demo_max_new_tokens, max_calls=cfg.demo_max_calls).to_json()
                for s in batch]

    rows = ctx.map(samples, fn, batch_size=1, key=key, description=f"demos ({key})", roles=("generator",))
    return {r["sample_id"]: DemoSet.from_json(r) for r in rows}


def read_item(cfg: Config, model, item: D.Item, arms: list[str], demos: list[Demo],
              foreign: list[tuple[tuple, Demo]]) -> dict[str, Any]:
    from solstice.models.prefix_generate import generate_common_prefix

    params = GenParams(max_new_tokens=cfg.max_new_tokens, stop=("\nQuestion:",))
    built = {a: reader_prompt(a, item.paragraphs, item.question, demos, foreign) for a in arms}
    shared = [a for a in arms if a != "icl"]
    prompts = {a: wrap(cfg, *built[a]) for a in arms}
    outs: dict[str, Any] = {}
    stats = None
    if shared:
        if cfg.shared_prefix:
            comps, stats = generate_common_prefix(model, [prompts[a] for a in shared], params)
        else:
            comps = model.generate([prompts[a] for a in shared], params)
        outs |= dict(zip(shared, comps))
    if "icl" in arms:
        outs["icl"] = model.generate([prompts["icl"]], params)[0]
    row: dict[str, Any] = {"question": item.question, "answers": list(item.answers), "gold": list(item.gold),
                           "n_demos": len(demos), "prefix": None if stats is None else vars(stats)}
    for a in arms:
        text = model.render(prompts[a])
        row[a] = {"prompt": text, "prompt_tokens": int(model.count_tokens(text)),
                  "paragraphs_once": paragraphs_once(text, item) if a != "icl" else None,
                  **score_output(outs[a][0].text, built[a][1], item)}
    return row


def usable_demos(ds: DemoSet | None, item: D.Item) -> tuple[list[Demo], int]:
    if ds is None:
        return [], 0
    keep = [d for d in ds.demos if not is_leak(d, item.question)]
    return keep, len(ds.demos) - len(keep)


def arm_metrics(prefix: str, rows: list[dict[str, Any]], arm: str) -> dict[str, MetricValue]:
    rs = [r[arm] for r in rows if arm in r]
    out = {f"{prefix}_{arm}_accuracy": proportion_metric([r["accuracy"] for r in rs]),
           f"{prefix}_{arm}_em": proportion_metric([r["em"] for r in rs]),
           f"{prefix}_{arm}_f1": mean_metric([r["f1"] for r in rs]),
           f"{prefix}_{arm}_parse_failure": proportion_metric([r["parse_failed"] for r in rs], higher_is_better=False),
           f"{prefix}_{arm}_prompt_tokens": mean_metric([r["prompt_tokens"] for r in rs], higher_is_better=None)}
    if arm in EV_ARMS:
        for k in ("precision", "recall", "f1", "exact"):
            out[f"{prefix}_{arm}_ev_{k}"] = mean_metric([r[f"ev_{k}"] for r in rs])
    return out


def paired(prefix: str, rows: list[dict[str, Any]], a: str, b: str, fields=("accuracy", "f1", "ev_f1")) -> dict:
    """Paired differences on the same questions; a comparison with a recycled arm uses only the
    questions that got at least one demo (without demos the recycled prompt is the zero-shot one)."""
    both = [r for r in rows if a in r and b in r
            and (r.get("n_demos", 0) > 0 or not {a, b} & {"recycled", "recycled_noev"})]
    out = {}
    for f in fields:
        if f.startswith("ev_") and (a not in EV_ARMS or b not in EV_ARMS):
            continue
        out[f"{prefix}_paired_{a}_minus_{b}_{f}"] = paired_difference_metric(
            [float(r[a][f]) for r in both], [float(r[b][f]) for r in both],
            note=f"{a} minus {b}, paired over {len(both)} questions")
    return out


def _hotpot(cfg: Config, ctx) -> dict[str, MetricValue]:
    items = D.hotpot_items(ctx.dataset(D.HOTPOT_IRCOT))
    rng = random.Random(cfg.seed)
    items = ctx.limited(rng.sample(items, min(cfg.questions, len(items))))
    need_demos = any(a in cfg.arms for a in ("recycled", "recycled_noev", "icl"))
    demo_sets = build_demos(cfg, ctx, items, "demos-hotpotqa") if need_demos else {}
    icl_ids = {it.id for it in items[: cfg.icl_questions]} if "icl" in cfg.arms else set()
    by_id = {it.id: it for it in items}
    samples = [Sample(it.id, it.question, list(it.answers), {}) for it in items]

    def foreign_for(i: int) -> list[tuple[tuple, Demo]]:
        out = []
        for j in range(1, len(items)):
            other = items[(i + j) % len(items)]
            ds = demo_sets.get(content_key(other.paragraphs))
            if ds and ds.demos:
                out.append((other.paragraphs, ds.demos[0]))
            if len(out) == cfg.k:
                break
        return out

    pos = {it.id: i for i, it in enumerate(items)}

    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        model = ctx.model("reader")
        rows = []
        for s in batch:
            it = by_id[s.id]
            demos, n_leak = usable_demos(demo_sets.get(content_key(it.paragraphs)), it)
            arms = [a for a in cfg.arms if a != "icl" or it.id in icl_ids]
            row = read_item(cfg, model, it, arms, demos, foreign_for(pos[it.id]) if "icl" in arms else [])
            row["leaks_dropped"] = n_leak
            rows.append(row)
        return rows

    rows = ctx.map(samples, fn, batch_size=1, key="hotpotqa", description="hotpotqa reader",
                   roles=("reader", "generator"))
    out: dict[str, MetricValue] = {}
    # an ICL reading without any foreign demo is a zero-shot reading: leave it out of the ICL arm
    rows = [r if "icl" not in r or foreign_for(pos[r["sample_id"]]) else {k: v for k, v in r.items() if k != "icl"}
            for r in rows]
    out["hp_icl_questions_with_demos"] = MetricValue(float(sum("icl" in r for r in rows)), len(icl_ids), None, None,
                                                     "ICL readings that had foreign demos")
    for arm in cfg.arms:
        out |= arm_metrics("hp", rows, arm)
    if {"recycled", "zero_shot"} <= set(cfg.arms):
        out |= paired("hp", rows, "recycled", "zero_shot")
    if {"recycled", "recycled_noev"} <= set(cfg.arms):
        out |= paired("hp", rows, "recycled", "recycled_noev", fields=("accuracy", "f1"))
    if {"recycled", "icl"} <= set(cfg.arms) and icl_ids:
        out |= paired("hp", rows, "recycled", "icl")
    if demo_sets:
        calls = sum(d.calls for d in demo_sets.values())
        kept = sum(len(d.demos) for d in demo_sets.values())
        out["demo_survival"] = MetricValue(kept / calls if calls else float("nan"), calls, None, True,
                                           f"{kept} valid demos from {calls} generator calls")
        out["demo_full_sets"] = proportion_metric([len(d.demos) == cfg.k for d in demo_sets.values()],
                                                  note=f"contexts that got all k = {cfg.k} demos")
        reasons: dict[str, int] = {}
        for d in demo_sets.values():
            for k, v in d.reasons.items():
                reasons[k] = reasons.get(k, 0) + v
        ctx.artifact("demo_rejections.json").write_text(json.dumps(reasons, indent=1))
    out["hp_questions_with_demos"] = proportion_metric([r["n_demos"] > 0 for r in rows], higher_is_better=None,
                                                       note="recycled comparisons are paired over these questions")
    out["hp_leaks_dropped"] = MetricValue(float(sum(r["leaks_dropped"] for r in rows)), len(rows), None, None)
    out["hp_prompt_paragraphs_once"] = proportion_metric(
        [r[a]["paragraphs_once"] for r in rows for a in cfg.arms if a != "icl" and a in r])
    out |= layout_tokens(ctx.model("reader"), items, cfg)
    oracle = [score_output(oracle_output(it), "Evidence:", it) for it in items]
    for k in ("accuracy", "em", "f1", "ev_precision", "ev_recall", "ev_f1"):
        vals = [float(o[k]) for o in oracle]
        out[f"hp_oracle_{k}"] = MetricValue(sum(vals) / len(vals), len(vals), None, True, "scripted oracle reader")
    return out


def layout_tokens(model, items: list[D.Item], cfg: Config) -> dict[str, MetricValue]:
    """Prompt tokens of the recycled and classic-ICL layouts with k placeholder demos per question
    (model-independent of what the generator writes): the paper's cost argument."""
    rec, icl = [], []
    for i, it in enumerate(items):
        demos = [Demo(f"What does paragraph {j} say?", p.text.split()[0], p.key())
                 for j, p in enumerate(it.paragraphs[: cfg.k], 1)]
        others = [items[(i + j) % len(items)] for j in range(1, min(cfg.k, len(items) - 1) + 1)]
        foreign = [(o.paragraphs, Demo("What does it say?", o.paragraphs[0].text.split()[0], o.paragraphs[0].key()))
                   for o in others]
        for arm, acc in (("recycled", rec), ("icl", icl)):
            acc.append(model.count_tokens(model.render(wrap(cfg, *reader_prompt(arm, it.paragraphs, it.question,
                                                                                  demos, foreign)))))
    note = f"k = {cfg.k} placeholder demos per question"
    return {"hp_layout_tokens_recycled": mean_metric(rec, higher_is_better=False, note=note),
            "hp_layout_tokens_icl": mean_metric(icl, higher_is_better=False, note=note)}


def _sweep(cfg: Config, ctx) -> dict[str, MetricValue]:
    groups = D.nq_sweep_items(ctx.dataset(D.NQ_ORACLE), cfg.sweep_questions, cfg.sweep_docs, cfg.sweep_positions,
                              cfg.seed)
    groups = ctx.limited(groups)
    flat = [it for g in groups for it in g]
    demo_sets = build_demos(cfg, ctx, [g[0] for g in groups], "demos-sweep") if "recycled" in cfg.sweep_arms else {}
    by_id = {it.id: it for it in flat}
    gold_text = {g[0].id.split("@")[0]: g[0].paragraphs[g[0].gold[0] - 1].text for g in groups}
    samples = [Sample(it.id, it.question, list(it.answers), {}) for it in flat]

    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        model = ctx.model("reader")
        rows = []
        for s in batch:
            it = by_id[s.id]
            demos, _ = usable_demos(demo_sets.get(content_key(it.paragraphs)), it)
            row = read_item(cfg, model, it, list(cfg.sweep_arms), demos, [])
            row["position"] = it.gold[0]
            rows.append(row)
        return rows

    rows = ctx.map(samples, fn, batch_size=1, key="sweep", description="nq position sweep",
                   roles=("reader", "generator"))
    out: dict[str, MetricValue] = {}
    for p in cfg.sweep_positions:
        at = [r for r in rows if r["position"] == p]
        for arm in cfg.sweep_arms:
            out[f"sweep_pos{p}_{arm}_accuracy"] = proportion_metric([r[arm]["accuracy"] for r in at])
            if arm in EV_ARMS:
                out[f"sweep_pos{p}_{arm}_ev_recall"] = mean_metric([r[arm]["ev_recall"] for r in at])
        if {"recycled", "zero_shot"} <= set(cfg.sweep_arms):
            out |= paired(f"sweep_pos{p}", at, "recycled", "zero_shot", fields=("accuracy", "ev_f1"))
    out["sweep_gold_mapping"] = proportion_metric(
        [it.paragraphs[it.gold[0] - 1].text == gold_text[it.id.split("@")[0]] for it in flat],
        note="the gold id points at the gold passage after every move")
    out["sweep_demo_cache_hits"] = MetricValue(float(len(flat) - len(demo_sets)), len(flat), None, None,
                                               f"{len(flat)} contexts, {len(demo_sets)} demo sets generated")
    return out


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {}
    if "hotpotqa" in cfg.experiments:
        metrics |= _hotpot(cfg, ctx)
    if "sweep" in cfg.experiments and cfg.sweep_questions:
        metrics |= _sweep(cfg, ctx)
    return metrics
