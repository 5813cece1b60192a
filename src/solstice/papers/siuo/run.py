"""SIUO: open generation judged for safety and effectiveness, and multiple choice, on any model.

Stages (each resumable through ctx.map):
  mcqa_logprob    option letters scored by next-token log-probability (one forward pass/item)
  mcqa_generate   answer generated (5 tokens, greedy) and parsed; unparsed -> seeded random
  generation      n responses per question (image + question in one user message)
  safety / effectiveness   the paper's GPT-eval prompts through the judge layer (image attached
                  when the judge can see it); an empty response is safe by the official rule
With `images=text_only` every prompt drops its image (the text-only ablation, labelled in every
metric note); with `images=attach` the target must be a vision model (checked before the run).
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.errors import DataError
from solstice.judge import Judge
from solstice.metrics.agreement import agreement
from solstice.metrics.stats import proportion_metric
from solstice.models import GenParams, user_message
from solstice.papers.siuo import prompts, scoring
from solstice.papers.siuo.config import Config
from solstice.papers.siuo.data import (
    GEN,
    LETTERS,
    MCQA,
    SUSPECT_MCQA,
    Item,
    check_images,
    load_items,
)

log = logging.getLogger(__name__)


def _rate(flags: list[bool], note: str = "", higher: bool | None = True) -> MetricValue:
    """A proportion over questions (or responses) with its bootstrap CI over them."""
    mv = proportion_metric(flags, higher_is_better=higher, note=note)
    return MetricValue(mv.value, mv.n, mv.ci95, mv.higher_is_better, mv.note, "items" if mv.ci95 else "")


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def _prompt(text: str, item: Item, image_root: Path | None) -> list[dict[str, Any]]:
    return [user_message(text, [image_root / item.image] if image_root else [])]


# -- model-independent facts (harness) ----------------------------------------------------------
def degenerate_mcqa(items: list[Item], seed: int = 0) -> dict[str, float]:
    """Accuracy of answer-blind predictors: always one letter, longest / shortest option, the
    option equal to the reference answer, a seeded uniform random letter."""
    n = len(items)
    out = {f"mcqa_always_{c.lower()}": sum(it.correct == c for it in items) / n for c in LETTERS}
    out["mcqa_longest_option"] = sum(max(it.options, key=lambda k: len(it.options[k])) == it.correct for it in items) / n
    out["mcqa_shortest_option"] = sum(min(it.options, key=lambda k: len(it.options[k])) == it.correct for it in items) / n
    out["mcqa_reference_match"] = sum(
        any(v.strip() == it.reference.strip() and k == it.correct for k, v in it.options.items()) for it in items) / n
    rng = random.Random(seed)
    out["mcqa_random"] = sum(rng.choice(LETTERS) == it.correct for it in items) / n
    return out


# -- MCQA ---------------------------------------------------------------------------------------
def _mcqa(cfg: Config, ctx, items: list[Item], image_root: Path | None, note: str) -> dict[str, MetricValue]:
    model = ctx.model("target")
    samples = [Sample(str(it.qid), it) for it in items]
    metrics: dict[str, MetricValue] = {}

    def prompt(it: Item):
        return _prompt(prompts.mcqa_prompt(it.question, it.options), it, image_root)

    if "logprob" in cfg.mcqa_modes:
        def by_logprob(batch: list[Sample]) -> list[dict[str, Any]]:
            lps = model.label_logprobs([prompt(s.input) for s in batch], list(LETTERS))
            return [{"pred": max(lp, key=lp.get), "logprobs": lp, "correct": s.input.correct} for s, lp in zip(batch, lps)]

        rows = ctx.map(samples, by_logprob, batch_size=cfg.batch_size, key="mcqa_logprob")
        metrics.update(_mcqa_metrics("logprob", rows, items, note))
    if "generate" in cfg.mcqa_modes:
        params = GenParams(max_new_tokens=cfg.mcqa_max_new_tokens, temperature=0.0)

        def by_generation(batch: list[Sample]) -> list[dict[str, Any]]:
            outs = model.generate([prompt(s.input) for s in batch], params)
            recs = []
            for s, o in zip(batch, outs):
                rng = random.Random(f"{ctx.seed}:{s.id}")  # seeded per item: independent of batching
                letter, parsed = scoring.mcqa_answer(o[0].text, rng)
                recs.append({"pred": letter, "parsed": parsed, "text": o[0].text, "correct": s.input.correct})
            return recs

        rows = ctx.map(samples, by_generation, batch_size=cfg.batch_size, key="mcqa_generate")
        metrics.update(_mcqa_metrics("generate", rows, items, note))
        metrics["mcqa_unparsed_generate"] = _rate(
            [not r["parsed"] for r in rows], "generated MCQA answers with no letter (scored by a seeded random letter)",
            higher=False)
    return metrics


def _mcqa_metrics(mode: str, rows: list[dict[str, Any]], items: list[Item], note: str) -> dict[str, MetricValue]:
    hits = [r["pred"] == r["correct"] for r in rows]
    keep = [h for h, it in zip(hits, items) if it.qid not in SUSPECT_MCQA]
    dist = {c: sum(r["pred"] == c for r in rows) for c in LETTERS}
    base = f"{note}; predicted letters {dist}"
    return {f"mcqa_acc_{mode}": _rate(hits, base),
            f"mcqa_acc_{mode}_no3019": _rate(keep, f"{note}; without the suspect item 3019")}


# -- generation and judging ---------------------------------------------------------------------
def _generation(cfg: Config, ctx, items: list[Item], image_root: Path | None, note: str) -> dict[str, MetricValue]:
    target = ctx.model("target")
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, n=cfg.n_samples, seed=ctx.seed)
    samples = [Sample(str(it.qid), it) for it in items]

    def generate(batch: list[Sample]) -> list[dict[str, Any]]:
        outs = target.generate([_prompt(s.input.question, s.input, image_root) for s in batch], params)
        return [{"responses": [c.text for c in o], "finish": [c.finish_reason for c in o]} for o in outs]

    gen_rows = ctx.map(samples, generate, batch_size=max(1, cfg.batch_size // max(1, cfg.n_samples)), key="generation")
    judge_model = ctx.model("judge")
    jparams = GenParams(max_new_tokens=cfg.judge_max_new_tokens, temperature=0.0)
    field = "images" if cfg.judge_images and image_root is not None else None

    by_lp = cfg.judge_mode == "logprob"

    def as_user(text_fn, prefill: str):
        def build(it):
            msgs = [{"role": "user", "content": text_fn(it)}]
            return msgs + [{"role": "assistant", "content": prefill}] if by_lp else msgs
        return build

    safety_judge = Judge(judge_model, as_user(lambda it: prompts.safety_prompt(
        it["question"], it["warning"], it["reference"], it["response"]), prompts.SAFETY_PREFILL), scoring.parse_safety,
        params=jparams, image_field=field)
    effect_judge = Judge(judge_model, as_user(lambda it: prompts.effectiveness_prompt(it["question"], it["response"]),
                                              prompts.EFFECTIVENESS_PREFILL),
                         scoring.parse_effectiveness, params=jparams, image_field=field)
    labels = {id(safety_judge): prompts.SAFETY_LABELS, id(effect_judge): prompts.EFFECTIVENESS_LABELS}
    responses = []
    for it, row in zip(items, gen_rows):
        for k, resp in enumerate(row["responses"]):
            responses.append(Sample(f"{it.qid}-{k}", {
                "question": it.question, "warning": it.safety_warning, "reference": it.reference, "response": resp,
                "images": [image_root / it.image] if image_root else []}))

    def judge_with(judge: Judge, empty_rule: str | None):
        def fn(batch: list[Sample]) -> list[dict[str, Any]]:
            todo = [s for s in batch if not (empty_rule and not s.input["response"].strip())]
            items_ = [s.input for s in todo]
            got = (judge.judge_by_logprobs(items_, labels[id(judge)]) if by_lp else judge.judge(items_)) if todo else []
            verdicts = dict(zip([s.id for s in todo], got))
            out = []
            for s in batch:
                v = verdicts.get(s.id)
                if v is None:  # an empty response: safe by the official rule, never sent to the judge
                    out.append({"score": 1, "raw": empty_rule, "empty": True})
                else:
                    out.append({"score": scoring.score(v), "raw": v.raw, "empty": False})
            return out
        return fn

    safe_rows = ctx.map(responses, judge_with(safety_judge, prompts.EMPTY_RESPONSE_SAFE), batch_size=cfg.batch_size,
                        key="safety")
    eff_rows = ctx.map(responses, judge_with(effect_judge, None), batch_size=cfg.batch_size, key="effectiveness")
    per_q: dict[int, dict[str, list[int]]] = {}
    for s, sr, er in zip(responses, safe_rows, eff_rows):
        qid = int(s.id.split("-")[0])
        d = per_q.setdefault(qid, {"safe": [], "effective": []})
        d["safe"].append(sr["score"])
        d["effective"].append(er["score"])
    votes = {it.qid: scoring.question_scores(per_q[it.qid]["safe"], per_q[it.qid]["effective"], cfg.unparsed)
             for it in items}
    judge_note = (f"{note}; judge {ctx.model_specs['judge']} ({'image attached' if safety_judge.sees_images else 'text-only'}, "
                  f"verdicts by {'log-probability' if by_lp else 'generated text'}), "
                  f"unparsed policy {cfg.unparsed}, majority of {cfg.n_samples}")
    metrics: dict[str, MetricValue] = {}
    for dim, name in (("safe", "safe_rate"), ("effective", "effective_rate"), ("safe_effective", "safe_effective_rate")):
        vals = [votes[it.qid][dim] for it in items if votes[it.qid][dim] is not None]
        metrics[name] = _rate([v == 1 for v in vals], f"{judge_note}; {len(items) - len(vals)} unresolved questions")
    cats = sorted({it.category for it in items})
    table = []
    for c in cats:
        row = {"category": c}
        for dim in ("safe", "effective", "safe_effective"):
            vals = [votes[it.qid][dim] for it in items if it.category == c and votes[it.qid][dim] is not None]
            row[dim] = (100 * sum(vals) / len(vals)) if vals else None
            row["n"] = len([it for it in items if it.category == c])
        table.append(row)
        vals = [votes[it.qid]["safe"] for it in items if it.category == c and votes[it.qid]["safe"] is not None]
        if vals:
            metrics[f"safe_rate_{_slug(c)}"] = _rate([v == 1 for v in vals], f"{c}; {judge_note}")
    judged_s = [r for r in safe_rows if not r["empty"]]
    metrics["safety_unparsed_rate"] = _rate([r["score"] == scoring.UNPARSED for r in judged_s],
                                            "safety verdicts the parser could not read", higher=False)
    metrics["effectiveness_unparsed_rate"] = _rate([r["score"] == scoring.UNPARSED for r in eff_rows],
                                                   "effectiveness verdicts the parser could not read", higher=False)
    n_empty = sum(r["empty"] for r in safe_rows)
    metrics["empty_responses"] = MetricValue(float(n_empty), len(safe_rows), None, None,
                                             "responses that were empty (scored safe by the official rule)")
    path = ctx.artifact("per_category.json")
    path.write_text(json.dumps({"judge": ctx.model_specs["judge"], "judge_saw_images": safety_judge.sees_images,
                                "note": judge_note, "per_category": table,
                                "votes": {str(k): v for k, v in votes.items()}}, indent=1))
    if cfg.human_labels:
        metrics.update(_human_agreement(cfg.human_labels, votes))
    return metrics


def _human_agreement(path: str, votes: dict[int, dict[str, int | None]]) -> dict[str, MetricValue]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"human label file '{p}' does not exist")
    text = p.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()] if p.suffix == ".jsonl" else json.loads(text)
    human = {int(r["question_id"]): r for r in rows}
    out: dict[str, MetricValue] = {}
    for dim in ("safe", "effective"):
        qids = [q for q in votes if q in human and dim in human[q]]
        if not qids:
            continue
        rep = agreement([None if votes[q][dim] is None else bool(votes[q][dim]) for q in qids],
                        [bool(int(human[q][dim])) for q in qids])
        for stat in ("kappa", "pa"):
            ci = rep.cis.get(stat)
            out[f"human_{stat}_{dim}"] = MetricValue(float(rep.values[stat]), rep.n, ci, True,
                                                     f"judge vs human labels ({dim}); {rep.n_missing} unresolved", "items")
    return out


def spread(items: list[Item], n: int) -> list[Item]:
    """The first `n` items taken round-robin over the domains (file order within a domain), so a
    subset covers every domain; all items when n >= len(items)."""
    if n >= len(items):
        return list(items)
    by_cat: dict[str, list[Item]] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it)
    out: list[Item] = []
    k = 0
    while len(out) < n:
        for group in by_cat.values():
            if k < len(group) and len(out) < n:
                out.append(group[k])
        k += 1
    return sorted(out, key=lambda it: it.qid)


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    items = load_items(ctx.dataset(GEN), ctx.dataset(MCQA))
    image_root = check_images(items, cfg.image_dir) if cfg.images == "attach" else None
    note = "image + question (paper setting)" if image_root else "TEXT-ONLY ABLATION: images dropped, not the paper's benchmark"
    if image_root is None:
        ctx.warn("text-only ablation: every prompt drops its image; these numbers are not SIUO scores")
    facts = degenerate_mcqa(items, seed=ctx.seed)
    metrics: dict[str, MetricValue] = {"n_items": MetricValue(float(len(items)), len(items), None, None, "data fact")}
    for k, v in facts.items():
        metrics[k] = MetricValue(v, len(items), None, None, "answer-blind predictor (data fact)")
    limited = ctx.limited(items)
    if "mcqa" in cfg.tasks:
        metrics.update(_mcqa(cfg, ctx, spread(limited, cfg.mcqa_questions), image_root, note))
    if "generation" in cfg.tasks:
        metrics.update(_generation(cfg, ctx, spread(limited, cfg.gen_questions), image_root, note))
    return metrics
