"""The reusable API: semantic entropy of any model's answers, and probes that predict it.

    from solstice.models import load_model
    from solstice.papers.semantic_entropy_probes import api

    model = load_model("default")                       # or "hf:<dir>", "openai:<model>@<url>"
    qs = api.question_set("capital_of", n=300)          # or your own QAItems
    res = api.semantic_entropy(model, qs[:5])           # SE, clusters, baselines (any model)
    probe = api.fit_sep(model, qs, position="tbg")      # hf models: generate, cluster, fit
    probe.save("sep_capitals")                          # JSON + npz
    probe = api.SemanticEntropyProbe.load("sep_capitals")
    risk = api.score_prompts(model, probe, ["Question: What is the capital of Chad?\\nAnswer:"])
    risk, outs = api.generate_with_risk(model, probe, prompts, abstain_above=0.8)

`score_prompts` reads a TBG probe's states in one forward pass over the prompt, before any
decoding; an SLT probe needs the answer: `score_answers(model, probe, prompts, answers)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from solstice.data.geonames_qa import QAItem
from solstice.errors import ConfigError
from solstice.models.base import Completion, GenParams, Model
from solstice.papers.semantic_entropy_probes.clustering import (
    EquivalenceJudge,
    LexicalJudge,
    cluster_answers,
)
from solstice.papers.semantic_entropy_probes.entropy import (
    discrete_semantic_entropy,
    mc_semantic_entropy,
    naive_entropy,
    rao_semantic_entropy,
)
from solstice.papers.semantic_entropy_probes.evaluate import ProbeSettings, SetData, fit_final
from solstice.papers.semantic_entropy_probes.generation import (
    GenSettings,
    answer_states,
    build_prompt,
    generate_batch,
    prompt_ids,
    prompt_states,
)
from solstice.papers.semantic_entropy_probes.probes import SemanticEntropyProbe
from solstice.papers.semantic_entropy_probes.prompts import STOP
from solstice.papers.semantic_entropy_probes.questions import load_question_set, select

__all__ = ["SemanticEntropyProbe", "entropies", "fit_sep", "generate_with_risk", "question_set",
           "score_answers", "score_prompts", "semantic_entropy"]


def entropies(question: str, samples: Sequence[str], loglik: Sequence[float], judge: EquivalenceJudge,
              *, strict: bool = True) -> dict[str, Any]:
    """Cluster one question's samples and return every entropy under its explicit name.
    Samples without a log-likelihood (empty answers) are left out of the weighted forms."""
    ids = cluster_answers(question, list(samples), judge, strict=strict)
    ll = np.asarray(loglik, dtype=float)
    keep = ~np.isnan(ll)
    kept_ids = [i for i, k in zip(ids, keep) if k]
    return {
        "cluster_ids": ids,
        "n_clusters": len(set(ids)),
        "se_discrete": discrete_semantic_entropy(ids),
        "se_rao": rao_semantic_entropy(kept_ids, ll[keep]) if keep.any() else math.nan,
        "se_mc": mc_semantic_entropy(kept_ids, ll[keep]) if keep.any() else math.nan,
        "naive_entropy": naive_entropy(ll[keep]) if keep.any() else math.nan,
    }


def question_set(name: str, n: int | None = None, *, few_shot: int = 5, seed: int = 20) -> list[QAItem]:
    """Up to n questions of a named set (GeoNames tasks offline; others need their files). The
    set's few-shot examples are drawn by `shots_for`; both use the same seed."""
    items = load_question_set(name)
    return select(items, n if n is not None else len(items), few_shot, seed)[1]


def shots_for(items: Sequence[QAItem], few_shot: int = 5, seed: int = 20) -> dict[str, list[QAItem]]:
    """Few-shot examples per source: for each source among `items`, drawn from the full set
    with the seed `question_set` uses (so they never coincide with its questions)."""
    out: dict[str, list[QAItem]] = {}
    for src in dict.fromkeys(it.source for it in items):
        out[src] = select(load_question_set(src), 0, few_shot, seed)[0] if few_shot else []
    return out


def semantic_entropy(model: Model, items: Sequence[QAItem], *, judge: EquivalenceJudge | None = None,
                     settings: GenSettings | None = None, shots: dict[str, list[QAItem]] | None = None,
                     strict: bool = True, p_true: bool = True, batch_size: int = 8) -> list[dict[str, Any]]:
    """Generate (most-likely answer + samples), score correctness, cluster, and return one dict
    per question with the answer, correctness, every entropy and the baselines."""
    s = settings or GenSettings()
    judge = judge or LexicalJudge()
    shots = shots if shots is not None else shots_for(items)
    out = []
    for i in range(0, len(items), batch_size):
        rows, _ = generate_batch(model, items[i : i + batch_size], shots, s, want_states=False, p_true=p_true,
                                 batch_seed=i)
        for r in rows:
            r.update(entropies(r["question"], r["samples"], r["sample_loglik"], judge, strict=strict))
        out.extend(rows)
    return out


def fit_sep(model: Model, items: Sequence[QAItem], *, position: str = "slt", target: str = "se",
            judge: EquivalenceJudge | None = None, settings: GenSettings | None = None,
            probe_settings: ProbeSettings | None = None, shots: dict[str, list[QAItem]] | None = None,
            batch_size: int = 8) -> SemanticEntropyProbe:
    """Generate, cluster and fit one probe (SEP for target="se", accuracy probe for "correct")
    with its layer range chosen on a validation split."""
    s = settings or GenSettings()
    judge = judge or LexicalJudge()
    shots = shots if shots is not None else shots_for(items)
    rows, tbg, slt = [], [], []
    for i in range(0, len(items), batch_size):
        r, st = generate_batch(model, items[i : i + batch_size], shots, s, want_states=True, p_true=False,
                               batch_seed=i)
        rows.extend(r)
        tbg.append(st["tbg"])
        slt.append(st["slt"])
    se = np.array([entropies(r["question"], r["samples"], r["sample_loglik"], judge)["se_discrete"] for r in rows])
    d = SetData("fit", se, np.array([r["correct"] for r in rows]),
                {"tbg": np.concatenate(tbg).astype(np.float32), "slt": np.concatenate(slt).astype(np.float32)})
    probe = fit_final([d], position, probe_settings or ProbeSettings())["sep" if target == "se" else "acc_probe"]
    probe.meta.update({"model": model.name, "n_train": len(rows), "prompt": "qa_prompt",
                       "sources": sorted({it.source for it in items}), "slt_offset": s.slt_offset})
    return probe


def score_prompts(model: Model, probe: SemanticEntropyProbe, prompts: Sequence[Any]) -> np.ndarray:
    """Risk (p(high SE) for a SEP) of each prompt from one forward pass, before decoding."""
    if probe.position != "tbg":
        raise ConfigError("score_prompts needs a TBG probe; use score_answers for an SLT probe")
    return probe.risk(prompt_states(model, prompts))


def score_answers(model: Model, probe: SemanticEntropyProbe, prompts: Sequence[Any],
                  answers: Sequence[str | Completion]) -> np.ndarray:
    """Risk of given answers from one teacher-forced pass over prompt + answer."""
    ids = []
    for pr, a in zip(prompts, answers):
        text = a.text if isinstance(a, Completion) else a
        full = model.encode(model.render(pr) + text)
        ids.append(full[len(prompt_ids(model, pr)):])
    tbg, slt = answer_states(model, prompts, ids, int(probe.meta.get("slt_offset", 0)), dtype=np.float32)
    return probe.risk(slt if probe.position == "slt" else tbg)


def generate_with_risk(model: Model, probe: SemanticEntropyProbe, prompts: Sequence[Any],
                       params: GenParams | None = None, *, abstain_above: float | None = None
                       ) -> tuple[np.ndarray, list[Completion | None]]:
    """TBG risk of each prompt, then the answer; prompts whose risk exceeds `abstain_above`
    are not decoded (None), so a confident abstention costs one forward pass."""
    risk = score_prompts(model, probe, prompts)
    todo = [i for i, r in enumerate(risk) if abstain_above is None or r <= abstain_above]
    outs: list[Completion | None] = [None] * len(prompts)
    p = params or GenParams(max_new_tokens=50, stop=STOP)
    if todo:
        for i, c in zip(todo, model.generate([prompts[i] for i in todo], p)):
            outs[i] = c[0]
    return risk, outs


def default_prompt(item: QAItem, shots: Sequence[QAItem] = (), settings: GenSettings | None = None) -> Any:
    """The prompt this paper uses for a question (instruction, few-shot block, question)."""
    return build_prompt(item, shots, settings or GenSettings())
