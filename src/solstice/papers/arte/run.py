"""The ARTE pipeline, one resumable stage per step and task (saved JSON under stages/, copies under
artifacts/):

  irt/<task>        respondents' 0/1 scores on the val items, 2PL fit, D_pref (top-k by alpha)
  drafts/<task>     teacher questions (seeded sampling) and one rationale per system prompt
  scores/<task>     the student's one-shot accuracy on D_pref for every draft; s_r and s_q
  pairs/<task>      DPO pairs: question pairs from the top/bottom quartiles, rationale argmax/argmin
  dpo/s<seed>       LoRA adapter of the aligned teacher (artifacts/dpo_s<seed>/adapter) + log
  gen/<teacher>/s<seed>/<task>   generated training data, 13-gram-checked against the test inputs
  students/s<seed>  vanilla / original-data / aligned-data students' per-item test results
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.data import DataSource
from solstice.errors import CapabilityError, ConfigError
from solstice.papers.arte.config import Config
from solstice.papers.arte.tasks import Task, build_task, contaminated

log = logging.getLogger(__name__)


def bbh_source(cfg: Config) -> DataSource:
    return DataSource("bbh", cfg.bbh_dir, license="MIT", description="BIG-Bench-Hard task files and CoT prompts")


def datasets(cfg: Config) -> list[DataSource]:
    return [bbh_source(cfg)]


# -- stages ----------------------------------------------------------------------------------------
def irt_stage(student: Any, task: Task, cfg: Config) -> dict[str, Any]:
    from solstice.metrics.irt import fit_2pl, most_discriminating
    from solstice.papers.arte.preferences import option_correct, respondent_prompts, respondents

    resp = respondents(task, cfg.respondent_shots, cfg.respondent_draws, cfg.respondent_styles)
    Y = np.array([option_correct(student, respondent_prompts(task, r), task.labels,
                                 [it.target for it in task.val]) for r in resp], dtype=float)
    fit = fit_2pl(Y)
    top = most_discriminating(fit, cfg.k_pref)
    return {"respondents": resp, "scores": Y.astype(int).tolist(), "alpha": fit.alpha.tolist(),
            "beta": fit.beta.tolist(), "theta": fit.theta.tolist(), "converged": fit.converged, "pref": top,
            "respondent_acc": Y.mean(1).tolist()}


def drafts_stage(teacher: Any, task: Task, cfg: Config) -> dict[str, Any]:
    from solstice.papers.arte.drafts import draft_questions, draft_rationales

    exclude = [it.input for it in task.val + task.test]
    qs, stats = draft_questions(teacher, task, cfg.m_questions, seed=cfg.split_seed, max_calls=cfg.max_question_calls,
                                max_tokens=cfg.question_tokens, exclude=exclude)
    drafts = []
    for q in qs:
        rats = [r for r in draft_rationales(teacher, task, q["question"], cfg.n_rationales, cfg.rationale_tokens)
                if r["answer"] is not None]
        if rats:
            drafts.append({**q, "rationales": rats})
    stats["questions"] = len(qs)
    stats["with_rationale"] = len(drafts)
    stats["rationales"] = sum(len(d["rationales"]) for d in drafts)
    return {"drafts": drafts, "stats": stats}


def scores_stage(student: Any, task: Task, drafts: list[dict[str, Any]], pref: list[int]) -> list[dict[str, Any]]:
    from solstice.papers.arte.preferences import draft_scores

    items = [task.val[i] for i in pref]
    out = []
    for d in drafts:
        rats = []
        for r in d["rationales"]:
            s = draft_scores(student, task, items, d["question"], r["rationale"])
            rats.append({**r, "score": float(np.mean(s))})
        out.append({**d, "rationales": rats, "score": float(np.mean([r["score"] for r in rats]))})
    return out


def pairs_stage(teacher: Any, task: Task, scored: list[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    from solstice.papers.arte import prompts as P
    from solstice.papers.arte.preferences import quartile_pairs, rationale_pair

    seeds = [(it.input, it.target) for it in task.seeds]
    qprompt = teacher.render(P.question_prompt(task.name, task.description, seeds, start=len(seeds) + 1)[:1])
    prefill = f"<Question_{len(seeds) + 1}><input>"
    rows = []
    for a, b in quartile_pairs([d["score"] for d in scored], cfg.question_pairs, cfg.split_seed):
        fmt = "{q}</input><target>{t}</target></Question_" + f"{len(seeds) + 1}>"
        rows.append({"kind": "question", "prompt": qprompt + prefill,
                     "chosen": fmt.format(q=scored[a]["question"], t=scored[a]["target"]),
                     "rejected": fmt.format(q=scored[b]["question"], t=scored[b]["target"]),
                     "score_chosen": scored[a]["score"], "score_rejected": scored[b]["score"]})
    lens = [len(r["rationale"]) for d in scored for r in d["rationales"]]
    med = float(np.median(lens)) if lens else 0.0
    ties = 0
    for i, d in enumerate(scored):
        pr = rationale_pair(d["rationales"], med, cfg.split_seed * 7919 + i)
        if pr is None:
            ties += 1
            continue
        w, lo = d["rationales"][pr[0]], d["rationales"][pr[1]]
        rows.append({"kind": "rationale", "prompt": teacher.render(P.naive_prompt(task.description, d["question"])),
                     "chosen": w["rationale"], "rejected": lo["rationale"],
                     "score_chosen": w["score"], "score_rejected": lo["score"]})
    return {"pairs": rows, "rationale_all_tied": ties, "questions": len(scored)}


def generate_stage(teacher: Any, task: Task, cfg: Config, seed: int) -> dict[str, Any]:
    """The teacher writes n_generate questions (temperature 1) and answers them with the naive prompt
    (greedy); answers without a parsable label are dropped; near-copies of test inputs are dropped."""
    from solstice.models.base import GenParams
    from solstice.papers.arte import prompts as P
    from solstice.papers.arte.answers import extract
    from solstice.papers.arte.drafts import draft_questions, label_of

    exclude = [it.input for it in task.val + task.test]
    qs, stats = draft_questions(teacher, task, cfg.n_generate, seed=1000 + seed, max_calls=cfg.max_question_calls,
                                max_tokens=cfg.question_tokens, exclude=exclude)
    msgs = [P.naive_prompt(task.description, q["question"]) for q in qs]
    comps = teacher.generate(msgs, GenParams(max_new_tokens=cfg.answer_tokens, temperature=0.0)) if msgs else []
    rows = []
    for q, c in zip(qs, comps):
        text = c[0].text.strip()
        if label_of(extract(text), task.labels) is not None:
            rows.append({"question": q["question"], "answer": text})
    flags = contaminated([r["question"] for r in rows], [it.input for it in task.test], cfg.contamination_n)
    clean = [r for r, f in zip(rows, flags) if not f]
    return {"rows": clean, "stats": {**stats, "answered": len(rows), "contaminated": int(sum(flags))}}


# -- entry point -------------------------------------------------------------------------------------
def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    from solstice.metrics.stats import paired_difference_metric, proportion_metric
    teacher = ctx.model("teacher")
    if cfg.align and "whitebox" not in teacher.capabilities:
        raise CapabilityError(f"aligning the teacher with DPO needs a local (hf:) teacher; '{teacher.name}' is "
                              "an endpoint — use --set align=false to only generate with it")
    student = ctx.model("student")
    student.require("whitebox", purpose="fine-tuning the student")
    root = ctx.dataset(bbh_source(cfg))
    tasks = {t: build_task(t, Path(root), n_val=cfg.n_val, n_test=cfg.n_test, n_seeds=cfg.n_seed_questions,
                           seed=cfg.split_seed) for t in cfg.tasks}
    for t in tasks.values():
        overlap = {it.input for it in t.val} & {it.input for it in t.test}
        if overlap:
            raise ConfigError(f"task {t.name}: val and test share {len(overlap)} inputs")
    irt = {t: ctx.stage(f"irt__{t}", lambda t=t: irt_stage(student, tasks[t], cfg), roles=("student",)) for t in tasks}
    drafts = {t: ctx.stage(f"drafts__{t}", lambda t=t: drafts_stage(teacher, tasks[t], cfg), roles=("teacher",)) for t in tasks}
    scored = {t: ctx.stage(f"scores__{t}", lambda t=t: scores_stage(student, tasks[t], drafts[t]["drafts"],
                                                                    irt[t]["pref"]),
                            roles=("teacher", "student")) for t in tasks}
    pairs = {t: ctx.stage(f"pairs__{t}", lambda t=t: pairs_stage(teacher, tasks[t], scored[t], cfg),
                        roles=("teacher", "student")) for t in tasks}
    for name, obj in (("irt", irt), ("drafts", drafts), ("scores", scored), ("pairs", pairs)):
        if ctx.is_main:  # under torchrun rank 0 writes the run's files
            ctx.artifact(f"{name}.json").write_text(json.dumps(obj, indent=1))
    all_pairs = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for t in tasks for p in pairs[t]["pairs"]]

    per_seed: dict[int, dict[str, Any]] = {}
    for seed in cfg.seeds:
        aligned = teacher
        dpo_log: list[dict[str, Any]] = []
        if cfg.align and all_pairs:
            aligned, dpo_log = _aligned_teacher(ctx, teacher, all_pairs, cfg, seed)
        elif cfg.align:
            ctx.warn("no DPO pairs (every draft scored the same); the 'aligned' teacher is the original one")
        gens = {}
        for label, tm in (("original", teacher), ("aligned", aligned)):
            gens[label] = {t: ctx.stage(f"gen__{label}__s{seed}__{t}",
                                        lambda t=t, tm=tm, seed=seed: generate_stage(tm, tasks[t], cfg, seed),
                                        roles=("teacher", "student")) for t in tasks}

        def students(seed: int = seed, gens: dict = gens) -> dict[str, Any]:
            from solstice.papers.arte.student import evaluate, sft_student

            out: dict[str, Any] = {"vanilla": {t: evaluate(student, tasks[t]) for t in tasks}}
            for label in ("original", "aligned"):
                data = [r for t in tasks for r in gens[label][t]["rows"]]
                if not data:
                    out[label] = None
                    continue
                sm = sft_student(student, data, lr=cfg.sft_lr, epochs=cfg.sft_epochs, batch_size=cfg.sft_batch_size,
                                 r=cfg.lora_r, alpha=cfg.lora_alpha, seed=seed)
                out[label] = {t: evaluate(sm, tasks[t]) for t in tasks}
                out[f"{label}_n_train"] = len(data)
            return out

        per_seed[seed] = {"students": ctx.stage(f"students__s{seed}", students, roles=("teacher", "student")),
                          "dpo_log": dpo_log,
                          "gen_stats": {lab: {t: g[t]["stats"] for t in g} for lab, g in gens.items()}}
        del aligned
    if ctx.is_main:
        ctx.artifact("results.json").write_text(json.dumps(per_seed, indent=1))

    metrics: dict[str, MetricValue] = {}
    test_n = sum(len(t.test) for t in tasks.values())
    maj = [1 if it.target == t.majority()[0] else 0 for t in tasks.values() for it in t.test]
    metrics["majority_acc"] = proportion_metric(maj, note=f"majority class per task on {test_n} test items")
    for seed, res in per_seed.items():
        st = res["students"]
        for label in ("vanilla", "original", "aligned"):
            if st.get(label) is None:
                continue
            flat = [x for t in tasks for x in st[label][t]]
            metrics[f"{label}_acc_s{seed}"] = proportion_metric(flat, note=f"seed {seed}, {len(flat)} test items")
            metrics[f"{label}_minus_majority_s{seed}"] = paired_difference_metric(
                flat, maj, note="same test items", unit="items")
        if st.get("original") is not None and st.get("aligned") is not None:
            a = [x for t in tasks for x in st["aligned"][t]]
            o = [x for t in tasks for x in st["original"][t]]
            metrics[f"aligned_minus_original_s{seed}"] = paired_difference_metric(
                a, o, note="ARTE data vs original teacher data, same test items", unit="items")
        if res["dpo_log"]:
            losses = [h["loss"] for h in res["dpo_log"] if "loss" in h]
            if losses:
                metrics[f"dpo_first_loss_s{seed}"] = MetricValue(float(losses[0]), 1, None, None,
                                                                 "DPO loss at the first step (ln 2 = 0.6931)")
    n_pairs = len(all_pairs)
    metrics["dpo_pairs"] = MetricValue(float(n_pairs), n_pairs, None, None, "question + rationale pairs, all tasks")
    metrics["drafts"] = MetricValue(float(sum(len(d["drafts"]) for d in drafts.values())), len(tasks), None, None,
                                    "draft questions with at least one parsable rationale")
    metrics["irt_mean_alpha_pref"] = MetricValue(
        float(np.mean([np.array(irt[t]["alpha"])[irt[t]["pref"]].mean() for t in tasks])), len(tasks), None, None,
        "mean IRT discrimination of the D_pref items")
    return metrics


def _aligned_teacher(ctx: Any, teacher: Any, pairs: list[dict[str, str]], cfg: Config, seed: int) -> tuple[Any, list]:
    """The DPO-aligned teacher for `seed`: trained once, its adapter saved; a resumed run loads it."""
    from solstice.models.hf import HFModel
    from solstice.papers.arte.align import dpo_align

    out = ctx.artifact(f"dpo_s{seed}")
    if ctx.is_main:
        out.mkdir(exist_ok=True)
    adapter = out / "adapter"
    log_path = out / "log.json"
    if (adapter / "adapter_model.safetensors").is_file() and log_path.is_file():
        import copy

        from peft import PeftModel

        pm = PeftModel.from_pretrained(copy.deepcopy(teacher.model), str(adapter))
        pm.eval()
        return HFModel(teacher.spec, model=pm, tokenizer=teacher.tokenizer), json.loads(log_path.read_text())
    pm, hist = dpo_align(teacher.model, teacher.tokenizer, pairs, out_dir=out / "trainer", lr=cfg.dpo_lr,
                         beta=cfg.dpo_beta, epochs=cfg.dpo_epochs, batch_size=cfg.dpo_batch_size, r=cfg.lora_r,
                         alpha=cfg.lora_alpha, seed=seed)
    from solstice.training.params import save_adapter

    if ctx.is_main:
        log_path.write_text(json.dumps(hist))
    save_adapter(pm, adapter)  # rank 0 writes under torchrun; the others wait for it
    return HFModel(teacher.spec, model=pm, tokenizer=teacher.tokenizer), hist
