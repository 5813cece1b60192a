"""Base vs Instruct LLMs in RAG: three conditions over any model pair, three tasks, trust metrics
next to accuracy, paired comparisons on the same questions, and the model-independent checks."""

from __future__ import annotations

import json
import logging
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.errors import ConfigError
from solstice.metrics import mean_metric, proportion_metric
from solstice.metrics.stats import paired_difference_metric
from solstice.models.base import GenParams
from solstice.papers.base_vs_instruct_rag import data as D
from solstice.papers.base_vs_instruct_rag import harness as H
from solstice.papers.base_vs_instruct_rag import prompts as P
from solstice.papers.base_vs_instruct_rag.config import Config
from solstice.retrieval.documents import Document
from solstice.retrieval.passages import dedup_documents, order_for_prompt, render_numbered

log = logging.getLogger(__name__)
ROLE = {"base": "base", "instruct_plain": "instruct", "instruct_template": "instruct"}
BASE_HINT = "hf:HuggingFaceTB/SmolLM2-135M"


def spread(items: list, n: int) -> list:
    """`n` items evenly spaced over the list (all when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def check_models(cfg: Config, specs: dict[str, str]) -> None:
    """One line before any work when a condition cannot run with the given models."""
    from solstice.models.loader import parse_spec

    if "base" in cfg.conditions and specs.get("base") in ("default", specs.get("instruct")):
        raise ConfigError(
            "condition 'base' needs a base model (the embedded default is an instruct model): pass --model base=<spec> "
            f"(e.g. --model base={BASE_HINT} --model instruct=hf:HuggingFaceTB/SmolLM2-135M-Instruct), or drop it "
            "with --set conditions=[instruct_plain,instruct_template]")
    for cond in cfg.conditions:
        if cond == "instruct_template":
            continue
        ms = parse_spec(specs[ROLE[cond]])
        if ms.kind == "openai" and ms.options.get("mode", "chat") == "chat":
            raise ConfigError(
                f"condition '{cond}' sends a raw prompt without a chat template, but endpoint '{ms}' is in chat mode "
                "(the server would apply its template): add ?mode=completions to --model "
                f"{ROLE[cond]}=...")


def system_slot(cfg: Config, model) -> bool:
    """Whether condition (3) puts the instruction in a system message (else merged into the user turn):
    `auto` renders a probe and merges when the template refuses or drops a system message."""
    if cfg.system_slot != "auto":
        return cfg.system_slot == "system"
    if model.spec.kind == "openai":
        return True
    marker = "\x1fSOLSTICE-SYSTEM-PROBE\x1f"
    try:
        text = model.render([{"role": "system", "content": marker}, {"role": "user", "content": "q"}])
    except Exception:  # noqa: BLE001 - jinja raises for templates without a system role (Mistral)
        return False
    return marker in text


def _docs_from_stage(entries: list[list[Any]]) -> list[Document]:
    return [Document(id=str(i), title=t, text=x) for i, t, x, _ in entries]


def retrieve(cfg: Config, ctx, questions: list[D.Question], everyone: list[D.Question]) -> dict[str, list[list[Any]]]:
    """{question id: [[doc id, title, text, score], ...]} best first (a JSON-able stage); the mini-corpus
    holds the gold passages of `everyone` (all test questions) and the distractors."""
    from solstice.retrieval.passages import load_topk, passage_index, search_passages

    if cfg.retrieval == "gold":
        return {q.id: [[q.gold_id, q.title, q.gold_text, None]] for q in questions}
    corpus = None
    if cfg.retrieval == "file" and cfg.corpus_file:
        from solstice.data import DataSource
        from solstice.retrieval.documents import Corpus

        corpus = Corpus.from_file(ctx.dataset(DataSource("user-corpus", cfg.corpus_file)))
    if corpus is None and (cfg.retrieval != "file" or not cfg.corpus_file):
        corpus = D.mini_corpus(everyone, {n: ctx.dataset(D.DISTRACTORS[n]) for n in cfg.distractors})
    if cfg.retrieval == "file":
        from solstice.data import DataSource
        from solstice.errors import DataError

        ranked = load_topk(ctx.dataset(DataSource("user-topk", cfg.topk_file)), corpus, cfg.k)
        missing = [q.id for q in questions if q.id not in ranked and q.text not in ranked]
        if missing:
            raise DataError(f"top-k file '{cfg.topk_file}' has no ranking for {len(missing)} of {len(questions)} "
                            f"questions (first: example_id {missing[0]})")
        per_q = [ranked.get(q.id) or ranked[q.text] for q in questions]
    else:
        index = passage_index(corpus, backend=cfg.retrieval, encoder=cfg.encoder)
        depth = cfg.k + (cfg.absent_depth if cfg.answer_absent > 0 else 0)
        per_q = search_passages(index, corpus, [q.text for q in questions], depth)
        per_q = [without_answer(rs, q.answers, cfg.k) if absent_pick(q.id, cfg) else rs[: cfg.k]
                 for q, rs in zip(questions, per_q)]
    return {q.id: [[r.doc.id, r.doc.title, r.doc.text, r.score] for r in rs] for q, rs in zip(questions, per_q)}


def absent_pick(qid: str, cfg: Config) -> bool:
    """Whether a question is one of the seeded `answer_absent` share whose documents hold no answer."""
    import hashlib

    if cfg.answer_absent <= 0:
        return False
    h = int(hashlib.sha256(f"{cfg.seed}:{qid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < cfg.answer_absent


def without_answer(ranked: list, answers, k: int) -> list:
    """The top k of a ranking after removing every document that contains a gold answer."""
    from solstice.metrics.answers import answer_in_text

    return [r for r in ranked if not answer_in_text(f"{r.doc.title} {r.doc.text}", answers)][:k]


def build_prompt(cfg: Config, task: str, cond: str, q: D.Question, docs: list[Document], system: bool):
    """(prompt for the model, documents text for matching, document ids in prompt order, duplicates dropped)."""
    instr = P.instruction(task, rejection=cfg.rejection, token_cap=cfg.token_cap)
    dropped, ordered = 0, []
    if task != "query_only":
        kept, dropped = dedup_documents(docs) if cfg.dedup else (list(docs), 0)
        ordered = order_for_prompt(kept, reverse=cfg.reverse)
    body = P.body(task, q.text, render_numbered(ordered))
    prompt = P.chat_prompt(instr, body, system=system) if cond == "instruct_template" else P.plain_prompt(instr, body)
    match_text = "\n".join(f"{d.title} {d.text}" for d in ordered) if task != "query_only" else None
    return prompt, match_text, [d.id for d in ordered], dropped


def _rendered(model, prompt) -> tuple[str, bool]:
    """The exact string the model reads, and whether it is exact (an endpoint in chat mode renders
    messages on the server: then the messages are recorded as JSON)."""
    if isinstance(prompt, str):
        return prompt, True
    if model.spec.kind == "openai":
        return json.dumps(prompt, ensure_ascii=False), False
    return model.render(prompt), True


def run_condition(cfg: Config, ctx, task: str, cond: str, qs: list[D.Question], contexts) -> list[dict[str, Any]]:
    by_id = {q.id: q for q in qs}
    samples = [Sample(q.id, q.text, list(q.answers), {}) for q in qs]
    state: dict[str, Any] = {}
    params = GenParams(max_new_tokens=cfg.proof_max_new_tokens if task == "proof" else cfg.max_new_tokens)

    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        if "model" not in state:
            state["model"] = ctx.model(ROLE[cond])
            state["system"] = system_slot(cfg, state["model"]) if cond == "instruct_template" else None
        model = state["model"]
        built = []
        for s in batch:
            q = by_id[s.id]
            docs = _docs_from_stage(contexts[q.id]) if task != "query_only" else []
            built.append(build_prompt(cfg, task, cond, q, docs, bool(state["system"])))
        outs = model.generate([b[0] for b in built], params)
        rows = []
        for s, (prompt, match_text, ids, dropped), comps in zip(batch, built, outs):
            q = by_id[s.id]
            c = comps[0]
            rendered, exact = _rendered(model, prompt)
            rows.append({"task": task, "condition": cond, "model": model.name, "question": q.text,
                         "answers": list(q.answers), "prompt": rendered, "prompt_exact": exact,
                         "system_slot": state["system"], "doc_ids": ids, "duplicates_dropped": dropped,
                         "finish_reason": c.finish_reason, "n_tokens": c.n_tokens,
                         **H.score(c.text, q.answers, match_text)})
        return rows

    return ctx.map(samples, fn, batch_size=cfg.batch_size, key=f"{task}-{cond}", description=f"{task} {cond}",
                   roles=(ROLE[cond],))


def condition_metrics(prefix: str, rows: list[dict[str, Any]], task: str) -> dict[str, MetricValue]:
    out = {
        f"{prefix}_accuracy": proportion_metric([r["substring"] for r in rows], note="normalised gold substring of the "
                                                "first answer line; empty normalised golds skipped"),
        f"{prefix}_accuracy_unguarded": proportion_metric([r["substring_unguarded"] for r in rows]),
        f"{prefix}_em": proportion_metric([r["exact"] for r in rows]),
        f"{prefix}_token_contains": proportion_metric([r["token_contains"] for r in rows]),
        f"{prefix}_answer_words": mean_metric([r["answer_words"] for r in rows], higher_is_better=None),
        f"{prefix}_nores_rate": proportion_metric([r["nores"] for r in rows], higher_is_better=None),
        f"{prefix}_first_line_cut": proportion_metric([r["truncated"] for r in rows], higher_is_better=None,
                                                       note="outputs with text after the answer line (cut)"),
    }
    if task != "query_only":
        absent = [r for r in rows if not r["ans_in_docs"]]
        n = len(absent)
        out[f"{prefix}_negative_rejection"] = proportion_metric(
            [r["nores"] for r in absent], note=f"NO-RES among the {n} of {len(rows)} questions whose documents lack the answer")
        out[f"{prefix}_parametric_recall"] = proportion_metric(
            [r["substring"] for r in absent], note=f"correct among the {n} of {len(rows)} answer-absent questions")
    if task == "proof":
        out[f"{prefix}_no_proof_rate"] = proportion_metric([r["proof"] == P.NO_PROOF for r in rows], higher_is_better=None)
        with_proof = [r for r in rows if "ans_in_proof" in r]
        out[f"{prefix}_ans_in_proof"] = proportion_metric(
            [r["ans_in_proof"] for r in with_proof], note=f"among the {len(with_proof)} outputs with a proof")
    return out


def paired_metrics(task: str, per: dict[str, dict[str, dict[str, Any]]]) -> dict[str, MetricValue]:
    """Paired accuracy differences (and McNemar's exact p) between conditions on the same questions."""
    out: dict[str, MetricValue] = {}
    conds = [c for c in ("base", "instruct_plain", "instruct_template") if c in per]
    for i, a in enumerate(conds):
        for b in conds[i + 1:]:
            ids = [k for k in per[a] if k in per[b]]
            xa = [float(per[a][k]["substring"]) for k in ids]
            xb = [float(per[b][k]["substring"]) for k in ids]
            out[f"{task}_paired_{a}_minus_{b}"] = paired_difference_metric(
                xa, xb, note=f"accuracy of {a} minus {b}, paired over {len(ids)} questions")
            out[f"{task}_mcnemar_p_{a}_vs_{b}"] = _mcnemar(xa, xb)
    return out


def _mcnemar(xa: list[float], xb: list[float]) -> MetricValue:
    from statsmodels.stats.contingency_tables import mcnemar

    b = sum(1 for x, y in zip(xa, xb) if x and not y)
    c = sum(1 for x, y in zip(xa, xb) if y and not x)
    table = [[sum(1 for x, y in zip(xa, xb) if x and y), b], [c, sum(1 for x, y in zip(xa, xb) if not x and not y)]]
    p = float(mcnemar(table, exact=True).pvalue) if b + c else 1.0
    return MetricValue(p, len(xa), None, None, f"exact McNemar, discordant {b} vs {c}")


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    check_models(cfg, ctx.model_specs)
    questions = D.load_questions(ctx.dataset(D.NQ_TEST), ctx.dataset(D.NQ_ORACLE))
    metrics: dict[str, MetricValue] = {}
    # model-independent checks on all 2,889 questions
    metrics |= H.data_facts(questions)
    metrics |= H.degenerate_readers(questions)

    selections = {"task1": spread(questions, cfg.questions), "proof": spread(questions, cfg.proof_questions),
                  "query_only": spread(questions, cfg.query_only_questions)}
    selections = {t: ctx.limited(selections[t]) for t in cfg.tasks}
    need = {q.id: q for t in ("task1", "proof") if t in selections for q in selections[t]}
    contexts: dict[str, Any] = {}
    if need:
        contexts = ctx.stage(f"retrieval-{cfg.retrieval}", lambda: retrieve(cfg, ctx, list(need.values()), questions),
                             roles=())
        with open(ctx.artifact("topk.jsonl"), "w") as f:
            for qid, entries in contexts.items():
                f.write(json.dumps({"id": qid, "ctxs": [{"id": e[0], "score": e[3]} for e in entries]}) + "\n")
    for task, qs in selections.items():
        per: dict[str, dict[str, dict[str, Any]]] = {}
        for cond in cfg.conditions:
            rows = run_condition(cfg, ctx, task, cond, qs, contexts)
            per[cond] = {r["sample_id"]: r for r in rows}
            metrics |= condition_metrics(f"{task}_{cond}", rows, task)
        if task != "query_only":
            any_rows = next(iter(per.values())).values()
            metrics[f"{task}_ans_in_docs"] = proportion_metric([r["ans_in_docs"] for r in any_rows],
                                                               higher_is_better=None, note="normalised definition")
            metrics[f"{task}_ans_in_docs_raw"] = proportion_metric([r["ans_in_docs_raw"] for r in any_rows],
                                                                   higher_is_better=None, note="raw case-sensitive")
            oracle = [H.score(H.oracle_reader(q.answers, t, q.text), q.answers, t) for q in qs
                      for t in ["\n".join(f"{d[1]} {d[2]}" for d in contexts[q.id])]]
            metrics |= H.reader_metrics(f"{task}_oracle", oracle)
        metrics |= paired_metrics(task, per)
    return metrics
