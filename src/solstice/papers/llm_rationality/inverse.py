"""Inverse modelling: the model compares two observed choices ("which more strongly suggests that the
person likes X?") for every pair of the Jern et al. choices; each simulated participant's pairwise
judgements become a win matrix, its row sums a ranking, and the mean ranking over participants is
compared (Spearman) with the human ranking and with the reference models' rankings.

Per participant and pair the presentation is randomised and seeded: the item -> colour (shock
location) mapping, the order of options within each choice and of items within each option, and
which choice is shown as "Choice 1" (the flip is recorded and undone when scoring).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solstice.core.types import Sample
from solstice.models.base import CAP_LOGLIKELIHOOD, GenParams, Model
from solstice.models.prefix import fast_label_logprobs, shared_prefix
from solstice.papers.llm_rationality.forward import sampled_batch_size
from solstice.papers.llm_rationality.prompts import FRAMING, METHOD, REQUERY
from solstice.papers.llm_rationality.stimuli import ITEMS, Stimulus, average_ranks

LABELS = ("Choice 1", "Choice 2")


@dataclass(frozen=True)
class PairItem:
    """One pairwise question as shown: choices i and j of the stimulus list, `flip` = j shown first."""

    i: int
    j: int
    flip: bool
    target: str
    prompt: str


def _describe(options: Sequence[Sequence[str]], word: str) -> str:
    return "".join(f"{word} {k + 1}: " + ", ".join(o) + ". \n" for k, o in enumerate(options))


def _present(st: Stimulus, mapping: dict[str, str], rng: random.Random) -> tuple[list[list[str]], int]:
    """Options in shuffled order with shuffled items, named by `mapping`; and the chosen option's
    index in that order."""
    order = list(range(len(st.options)))
    rng.shuffle(order)
    opts = []
    for k in order:
        items = [mapping[it] for it in st.options[k]]
        rng.shuffle(items)
        opts.append(items)
    return opts, order.index(0)


def build_pairs(stimuli: Sequence[Stimulus], framing: str, method: str, participant: int, seed: int,
                mapping_per: str = "pair") -> list[PairItem]:
    """All pairs (i < j) for one simulated participant, in a seeded random presentation."""
    f = FRAMING[framing]
    rng = random.Random(f"{seed}:{framing}:{method}:{participant}")

    def new_mapping() -> dict[str, str]:
        names = list(f["items"])
        rng.shuffle(names)
        return dict(zip(ITEMS, names))

    mapping = new_mapping()
    out = []
    for i in range(len(stimuli)):
        for j in range(i + 1, len(stimuli)):
            if mapping_per == "pair":
                mapping = new_mapping()
            (o1, c1), (o2, c2) = _present(stimuli[i], mapping, rng), _present(stimuli[j], mapping, rng)
            flip = rng.random() < 0.5
            if flip:
                (o1, c1), (o2, c2) = (o2, c2), (o1, c1)
            text = f["template"].format(
                kind_1=f["single"] if len(o1) == 1 else f["multiple"], options_1=_describe(o1, f["option"]),
                chosen_1=c1 + 1, kind_2=f["single"] if len(o2) == 1 else f["multiple"],
                options_2=_describe(o2, f["option"]), chosen_2=c2 + 1, X=mapping["x"], method=METHOD[method],
            )
            out.append(PairItem(i, j, flip, mapping["x"], text))
    return out


# -- parsing (the paper's rules) -----------------------------------------------------------------
def parse_pair_answer(text: str) -> float | None:
    """1 if the answer favours Choice 1, 0 if Choice 2, None otherwise (the paper's phrase and
    'only one choice mentioned' rules)."""
    low = (text or "").lower()
    one, two = "choice 1" in low, "choice 2" in low
    if "choice 1 more strongly suggests" in low or "choice 1** more strongly suggests" in low or (one and not two):
        return 1.0
    if "choice 2 more strongly suggests" in low or "choice 2** more strongly suggests" in low or (two and not one):
        return 0.0
    return None


def parse_requery(text: str) -> float | None:
    t = text or ""
    if "1" in t and "2" not in t:
        return 1.0
    if "2" in t and "1" not in t:
        return 0.0
    if "tie" in t.lower():
        return 0.5
    return None


# -- judging -----------------------------------------------------------------------------------
def resolve_estimator(choice: str, model: Model, method: str) -> str:
    """Log-probabilities need exact multi-token label scores (here "Choice 1" / "Choice 2")."""
    if method == "cot":
        return "sample"
    if choice == "auto":
        return "logprobs" if CAP_LOGLIKELIHOOD in model.capabilities else "sample"
    if choice == "logprobs" and CAP_LOGLIKELIHOOD not in model.capabilities:
        from solstice.errors import CapabilityError

        raise CapabilityError(f"model '{model.name}' has no exact log-likelihoods; use inverse_estimator=sample")
    return choice


class Judge:
    """Scores a batch of pair items: `s` = P(choice i is the stronger evidence) (soft), `h` = the hard
    judgement in {0, 0.5, 1}, both for the ORIGINAL order (i before j)."""

    def __init__(self, cfg: Any, model: Model, framing: str, method: str, estimator: str, seed: int, key: str = "") -> None:
        self.cfg, self.model, self.framing, self.method, self.estimator = cfg, model, framing, method, estimator
        self.seed, self.key = seed, key

    def __call__(self, batch: list[Sample]) -> list[dict[str, Any]]:
        items: list[PairItem] = [s.input for s in batch]
        raw = self._logprobs(items) if self.estimator == "logprobs" else self._sample(items, batch[0].id)
        out = []
        for it, r in zip(items, raw):
            shown = r.pop("shown")  # judgement for "Choice 1" as displayed
            soft = r.pop("soft", shown)
            s, h = (1 - soft, 1 - shown) if it.flip else (soft, shown)
            out.append({"i": it.i, "j": it.j, "flip": it.flip, "s": s, "h": h, **r})
        return out

    def _logprobs(self, items: list[PairItem]) -> list[dict[str, Any]]:
        if getattr(self, "_wrapped", None) is None:
            self._wrapped = shared_prefix(self.model)
        res = fast_label_logprobs(self._wrapped, [[{"role": "user", "content": it.prompt}] for it in items], list(LABELS))
        out = []
        for r in res:
            l1, l2 = r[LABELS[0]], r[LABELS[1]]
            if not (math.isfinite(l1) or math.isfinite(l2)):
                out.append({"shown": 0.5, "soft": 0.5, "parse_ok": False})
                continue
            p1 = 1.0 / (1.0 + math.exp(max(min(l2 - l1, 700.0), -700.0)))
            out.append({"shown": 1.0 if p1 > 0.5 else 0.0 if p1 < 0.5 else 0.5, "soft": p1, "parse_ok": True,
                        "lp1": l1, "lp2": l2})
        return out

    def _sample(self, items: list[PairItem], batch_id: str) -> list[dict[str, Any]]:
        c = self.cfg
        tokens = c.inverse_cot_max_tokens if self.method == "cot" else c.inverse_zero_shot_max_tokens
        out: list[dict[str, Any] | None] = [None] * len(items)
        todo = list(range(len(items)))
        for attempt in range(c.max_retries + 1):
            params = GenParams(max_new_tokens=tokens, temperature=c.temperature, seed=_seed(self.seed, self.key, batch_id, attempt))
            texts = self.model.generate_text([[{"role": "user", "content": items[k].prompt}] for k in todo], params)
            res = {k: (t, parse_pair_answer(t)) for k, t in zip(todo, texts)}
            if self.method == "zero_shot":  # unparsed zero-shot answers count as a tie (paper)
                for k, (t, v) in res.items():
                    out[k] = {"shown": 0.5 if v is None else v, "parse_ok": v is not None, "response": t}
                return out  # type: ignore[return-value]
            need = [k for k, (_, v) in res.items() if v is None]
            for k, (t, v) in res.items():
                if v is not None:
                    out[k] = {"shown": v, "parse_ok": True, "requeried": False, "attempts": attempt + 1, "response": t}
            if need:  # condense an unparsed CoT answer by re-asking the same model (paper)
                rq = [[{"role": "user", "content": REQUERY[self.framing].format(X=items[k].target, response=res[k][0])}]
                      for k in need]
                short = self.model.generate_text(rq, params.replace(max_new_tokens=c.requery_max_tokens))
                for k, s in zip(need, short):
                    v = parse_requery(s)
                    if v is not None:
                        out[k] = {"shown": v, "parse_ok": True, "requeried": True, "attempts": attempt + 1,
                                  "response": res[k][0], "condensed": s}
            todo = [k for k in range(len(items)) if out[k] is None]
            if not todo:
                break
        for k in todo:  # still unparsed after the retries: a tie, flagged
            out[k] = {"shown": 0.5, "parse_ok": False, "requeried": True, "attempts": c.max_retries + 1}
        return out  # type: ignore[return-value]


def _seed(*parts: Any) -> int:
    from solstice.core.types import content_id

    return int(content_id(*parts)[:8], 16)


def judge_participant(ctx: Any, cfg: Any, model: Model, stimuli: Sequence[Stimulus], framing: str, method: str,
                      participant: int, estimator: str) -> list[dict[str, Any]]:
    items = build_pairs(stimuli, framing, method, participant, ctx.seed, cfg.mapping_per)
    samples = [Sample(f"{it.i}-{it.j}", it) for it in items]
    key = f"inverse/{framing}/{method}/{estimator}/p{participant}"
    fn = Judge(cfg, model, framing, method, estimator, ctx.seed, key)
    bs = cfg.batch_size if estimator == "logprobs" else sampled_batch_size(cfg, model)
    return ctx.map(samples, fn, batch_size=bs, key=key,
                   description=f"inverse {framing} {method} participant {participant + 1}")


# -- aggregation ---------------------------------------------------------------------------------
def win_matrix(records: Sequence[dict[str, Any]], n: int, field: str = "h") -> np.ndarray:
    """M[i, j] = the judgement that choice i is stronger evidence than j; M[j, i] = 1 - M[i, j]."""
    m = np.zeros((n, n))
    for r in records:
        m[r["i"], r["j"]] = r[field]
        m[r["j"], r["i"]] = 1.0 - r[field]
    return m


def participant_ranks(records: Sequence[dict[str, Any]], n: int, field: str = "h") -> np.ndarray:
    """Fractional ranks (1 = weakest) of the row sums of the win matrix, ties averaged."""
    return average_ranks(win_matrix(records, n, field).sum(1))


def aggregate(per_participant: Sequence[Sequence[dict[str, Any]]], n: int, field: str = "h") -> tuple[np.ndarray, float]:
    """Mean ranks over participants and the mean per-choice standard deviation across them."""
    ranks = np.array([participant_ranks(r, n, field) for r in per_participant])
    std = float(ranks.std(0, ddof=1).mean()) if len(ranks) > 1 else 0.0
    return ranks.mean(0), std
