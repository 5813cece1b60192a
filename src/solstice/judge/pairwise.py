"""Pairwise judging with order swapping and votes.

    judge = PairwiseJudge(model, "Which response is better?\\n[A] {a}\\n[B] {b}\\nAnswer A or B.",
                          samples_per_order=2)
    verdicts = judge.compare([{"first": x, "second": y, ...context fields}, ...])
    verdicts[0].winner        # "first" | "second" | "tie" | None (no readable vote)

Every pair is shown in both orders (first as A, then second as A), so a judge that always answers
"A" gives each side half the votes - position bias cancels instead of deciding. In `generate`
mode each order is sampled `samples_per_order` times and each completion is parsed into a vote;
in `logprobs` mode each order gives one vote, the label with the higher log-probability (no
sampling, never unparsed). All votes are kept (`votes`) so callers can log them and measure
position bias (`position_consistent`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from solstice.judge.base import Judge
from solstice.models.base import GenParams, Model, Prompt

_VERDICT = [
    re.compile(r"\[\[\s*([AB])\s*\]\]"),
    re.compile(r"\b(?:response|answer|option|assistant|choice)\s*\[?\(?([AB])\b", re.I),
    re.compile(r"^\W*\[?\(?([AB])\)?\]?(?:\W|$)"),
    re.compile(r"\b([AB])\b(?=\s*(?:is|was)\s+(?:more|better|worse|less))"),
]


def parse_ab(text: str) -> str | None:
    """'A' or 'B' from a pairwise judge's reply, or None when it names neither (or both in the
    same pattern position, e.g. "A and B")."""
    t = text.strip()
    both = bool(re.search(r"\bA\b", t)) and bool(re.search(r"\bB\b", t))
    for n, rx in enumerate(_VERDICT):
        if n >= 2 and both:  # bare letters only count when the other letter is not named too
            return None
        found = {m.upper() for m in rx.findall(t)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None
    return None


@dataclass(frozen=True)
class Vote:
    order: int  # 0: first shown as A; 1: second shown as A
    label: str | None  # "A", "B" or None (unparsed)
    choice: str | None  # "first", "second" or None
    raw: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "label": self.label, "choice": self.choice, "raw": self.raw}


@dataclass(frozen=True)
class PairwiseVerdict:
    votes: tuple[Vote, ...]
    first_wins_ties: bool = True
    win_fraction: float = 0.5
    probs: tuple[Mapping[str, float] | None, ...] = field(default=())

    @property
    def n_first(self) -> int:
        return sum(v.choice == "first" for v in self.votes)

    @property
    def n_second(self) -> int:
        return sum(v.choice == "second" for v in self.votes)

    @property
    def n_parsed(self) -> int:
        return self.n_first + self.n_second

    @property
    def winner(self) -> str | None:
        """'first' when it has at least `win_fraction` of the parsed votes (strictly more when
        `first_wins_ties` is false), 'second' otherwise; 'tie' for an exact split that nobody
        wins; None when no vote was readable."""
        n = self.n_parsed
        if n == 0:
            return None
        share = self.n_first / n
        if share > self.win_fraction:
            return "first"
        if share == self.win_fraction:
            return "first" if self.first_wins_ties else "tie"
        return "second"

    @property
    def first_wins(self) -> bool:
        return self.winner == "first"

    @property
    def position_consistent(self) -> bool | None:
        """Whether the majority choice is the same in both orders (None if an order has no vote)."""
        by_order = []
        for o in (0, 1):
            ch = [v.choice for v in self.votes if v.order == o and v.choice]
            if not ch:
                return None
            by_order.append(max(set(ch), key=ch.count) if ch.count(ch[0]) * 2 != len(ch) else "split")
        return by_order[0] == by_order[1] and by_order[0] != "split"

    def to_json(self) -> dict[str, Any]:
        return {"winner": self.winner, "n_first": self.n_first, "n_second": self.n_second,
                "votes": [v.to_json() for v in self.votes]}


class PairwiseJudge:
    """A pairwise comparison judge over any model of the model layer.

    `template` is a `str.format` string (or callable item -> Prompt) that receives every field of
    the item plus `a` and `b`, the two texts in display order. Items carry the two compared texts
    under `first` and `second` (names configurable).
    """

    def __init__(
        self,
        model: Model,
        template: str | Callable[[Mapping[str, Any]], Prompt],
        *,
        system: str | None = None,
        mode: str = "generate",
        samples_per_order: int = 2,
        params: GenParams | None = None,
        first_wins_ties: bool = True,
        win_fraction: float = 0.5,
        parser: Callable[[str], str | None] = parse_ab,
        labels: tuple[str, str] = ("A", "B"),
        cache: str | None = None,
    ) -> None:
        if mode not in ("generate", "logprobs"):
            raise ValueError(f"mode must be 'generate' or 'logprobs', not {mode!r}")
        if samples_per_order < 1:
            raise ValueError("samples_per_order must be at least 1")
        self.judge = Judge(model, template, None, system=system, cache=cache)
        self.mode = mode
        self.samples = samples_per_order
        self.params = params or GenParams(max_new_tokens=16, temperature=0.7, top_p=0.95)
        self.first_wins_ties = first_wins_ties
        self.win_fraction = win_fraction
        self.parser = parser
        self.labels = labels

    @property
    def model(self) -> Model:
        return self.judge.model

    def prompts(self, item: Mapping[str, Any], first: str = "first", second: str = "second") -> list[Prompt]:
        """The two prompts of an item: first shown as A, then second shown as A."""
        return [
            self.judge.prompt({**item, "a": item[first], "b": item[second]}),
            self.judge.prompt({**item, "a": item[second], "b": item[first]}),
        ]

    def compare(
        self, items: Sequence[Mapping[str, Any]], *, first: str = "first", second: str = "second",
        seed: int | None = None,
    ) -> list[PairwiseVerdict]:
        """One verdict per item; all 2 x len(items) prompts go to the model in one batch."""
        prompts = [p for it in items for p in self.prompts(it, first, second)]
        if not prompts:
            return []
        la, lb = self.labels
        out: list[PairwiseVerdict] = []
        if self.mode == "logprobs":
            lps = self.judge.model.label_logprobs(prompts, [la, lb])
            for i in range(len(items)):
                votes, probs = [], []
                for order in (0, 1):
                    lp = lps[2 * i + order]
                    a, b = lp.get(la, float("-inf")), lp.get(lb, float("-inf"))
                    label = None if a == b == float("-inf") else ("A" if a >= b else "B")
                    votes.append(Vote(order, label, _choice(label, order), f"{la}={a:.3f} {lb}={b:.3f}"))
                    probs.append({"A": a, "B": b})
                out.append(PairwiseVerdict(tuple(votes), self.first_wins_ties, self.win_fraction, tuple(probs)))
            return out
        params = self.params.replace(n=self.samples, seed=seed if seed is not None else self.params.seed)
        comps = self.judge.model.generate(prompts, params)
        for i in range(len(items)):
            votes = []
            for order in (0, 1):
                for c in comps[2 * i + order]:
                    label = self.parser(c.text)
                    votes.append(Vote(order, label, _choice(label, order), c.text))
            out.append(PairwiseVerdict(tuple(votes), self.first_wins_ties, self.win_fraction))
        return out


def _choice(label: str | None, order: int) -> str | None:
    if label is None:
        return None
    shown_first = "A" if order == 0 else "B"
    return "first" if label == shown_first else "second"
