"""Step 2 (preference collection): IRT-selected preference items, the student's one-shot scores of
every draft, and the DPO pairs (step 3's data).

Scores are option log-likelihood accuracies: the student reads a prompt ending in `<ans>` and the
label with the highest log-probability is its answer (shared-prefix scoring through
`solstice.models.prefix.fast_label_logprobs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from solstice.papers.arte import prompts as P
from solstice.papers.arte.tasks import Item, Task


def option_correct(student: Any, prompts: Sequence[str], labels: Sequence[str], targets: Sequence[str]) -> list[int]:
    from solstice.models.prefix import fast_label_logprobs

    lps = fast_label_logprobs(student, list(prompts), list(labels))
    return [int(max(labels, key=lambda lab: (lp[lab], -labels.index(lab))) == t) for lp, t in zip(lps, targets)]


def respondents(task: Task, shots: Sequence[int], draws: int, styles: Sequence[str]) -> list[dict[str, Any]]:
    """Respondent definitions: (k demos drawn from the seed pool with a draw seed, prompt style)."""
    out = []
    for style in styles:
        for k in shots:
            for d in range(draws if k > 0 else 1):
                out.append({"k": k, "draw": d, "style": style})
    return out


def respondent_prompts(task: Task, resp: dict[str, Any]) -> list[str]:
    """k demos drawn once per respondent from the val items (an item never sees itself as a demo:
    the next drawn item takes its place)."""
    pool = task.val
    k = min(resp["k"], len(pool) - 1)
    order = [int(i) for i in np.random.default_rng(1000 * resp["k"] + resp["draw"]).permutation(len(pool))[: k + 1]]
    desc = task.description if resp["style"] == "described" else ""
    out = []
    for j, it in enumerate(pool):
        idx = [i for i in order if i != j][:k]
        demos = [(pool[i].input, f"<ans>{pool[i].target}</ans>") for i in idx]
        out.append(P.scoring_prompt(demos, it.input, desc))
    return out


def draft_scores(student: Any, task: Task, pref: Sequence[Item], question: str, rationale: str) -> list[int]:
    """1[student right] on each D_pref item with the draft (question, rationale) as the only demo."""
    prompts = [P.scoring_prompt([(question, rationale)], it.input) for it in pref]
    return option_correct(student, prompts, task.labels, [it.target for it in pref])


def quartile_pairs(scores: Sequence[float], n_pairs: int, seed: int) -> list[tuple[int, int]]:
    """(chosen, rejected) index pairs: chosen drawn from the top 25% by score, rejected from the bottom
    25%; pairs with equal scores are never formed (when the quartiles overlap in score, those
    candidates are dropped). Distinct pairs, at most n_pairs, seeded."""
    s = np.asarray(scores, dtype=float)
    n = len(s)
    q = max(1, n // 4)
    order = np.argsort(-s, kind="stable")
    top, bottom = list(order[:q]), list(order[::-1][:q])
    cands = [(int(a), int(b)) for a in top for b in bottom if s[a] > s[b]]
    if not cands:
        return []
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(cands))[:n_pairs]
    return [cands[int(i)] for i in sorted(pick)]


def rationale_pair(rats: Sequence[dict[str, Any]], median_len: float, seed: int) -> tuple[int, int] | None:
    """(argmax, argmin) of the rationale scores; ties broken by length closeness to the task's median
    rationale length, then by a seeded order. None when all scores are equal."""
    s = np.array([r["score"] for r in rats], dtype=float)
    if s.max() == s.min():
        return None
    rng = np.random.default_rng(seed)
    jitter = rng.permutation(len(rats))

    def key(i: int) -> tuple[float, int]:
        return (abs(len(rats[i]["rationale"]) - median_len), int(jitter[i]))

    best = min((i for i in range(len(rats)) if s[i] == s.max()), key=key)
    worst = min((i for i in range(len(rats)) if s[i] == s.min()), key=key)
    return best, worst
