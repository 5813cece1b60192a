"""Demonstrations generated from the context itself (recycling), validated and cached per context.

For a context, paragraphs of at least `min_words` words are shuffled with a seed derived from the
context; the first k are asked for one (question, answer) pair each (the generator never sees the
target question). A pair survives when it parses, its answer occurs in its source paragraph (DPR
tokens), has at most `max_answer_tokens` tokens, is not contained in its question, and its question
is not a duplicate of an earlier demo's (normalised). A reply that stops after its question line gets
a second, greedy call that continues "Question: <q>\nAnswer:" (small generators rarely write both
lines in one go). A paragraph whose pair fails is retried up to
`retries` times with another sampling seed, then the next paragraph is used. Demos are keyed by
the context's content (order-independent), so the same paragraphs in another order, or another
question on the same context, reuse them.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from solstice.metrics.retrieval import dpr_tokens, has_answer
from solstice.metrics.text import normalize_answer
from solstice.models.base import GenParams
from solstice.papers.context_recycling.prompts import DEMO_PROMPT, Demo, parse_demo


def content_key(paragraphs: Sequence) -> str:
    """Order-independent key of a context's paragraphs."""
    return hashlib.sha256("\n".join(sorted(p.key() for p in paragraphs)).encode()).hexdigest()[:16]


def candidate_order(paragraphs: Sequence, seed: int, min_words: int) -> list:
    """Eligible paragraphs (>= min_words words, distinct) in a seeded order that depends only on content."""
    uniq = {p.key(): p for p in paragraphs if len(p.text.split()) >= min_words}
    keys = sorted(uniq)
    rng = random.Random(f"{seed}:{content_key(paragraphs)}")
    rng.shuffle(keys)
    return [uniq[k] for k in keys]


def validate(pair: tuple[str, str] | None, paragraph, seen: set[str], max_answer_tokens: int) -> str:
    """'' when the pair is a valid demo for `paragraph`, else the reason it is dropped."""
    if pair is None:
        return "unparsed"
    q, a = pair
    if not has_answer(paragraph.text, [a]):
        return "answer_not_in_paragraph"
    if len(dpr_tokens(a)) > max_answer_tokens:
        return "answer_too_long"
    if normalize_answer(a) and normalize_answer(a) in normalize_answer(q):
        return "answer_in_question"
    if normalize_answer(q) in seen:
        return "duplicate_question"
    return ""


def is_leak(demo: Demo, question: str) -> bool:
    """The demo asks (nearly) the target question: equal normalised text, or word Jaccard >= 0.9."""
    a, b = set(normalize_answer(demo.question).split()), set(normalize_answer(question).split())
    return bool(a | b) and len(a & b) / len(a | b) >= 0.9


@dataclass
class DemoSet:
    demos: list[Demo]
    calls: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"demos": [asdict(d) for d in self.demos], "calls": self.calls, "reasons": self.reasons}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DemoSet:
        return cls([Demo(**x) for x in d["demos"]], int(d["calls"]), dict(d["reasons"]))


def demo_messages(paragraph, question: str | None = None) -> list[dict[str, str]]:
    """The generator prompt with the assistant prefill "Question:" (or, to complete a question whose
    reply stopped before its answer, "Question: <q>\nAnswer:")."""
    prefill = "Question:" if question is None else f"Question: {question}\nAnswer:"
    return [{"role": "user", "content": DEMO_PROMPT.format(title=paragraph.title, text=paragraph.text)},
            {"role": "assistant", "content": prefill}]


def _complete_answers(model, paragraphs: Sequence, texts: list[str], max_new_tokens: int) -> tuple[list, int]:
    """Parse each reply; a reply holding only a question gets a second, greedy call for its answer."""
    pairs: list = [parse_demo(t) for t in texts]
    todo = [i for i, pr in enumerate(pairs) if pr is None and (texts[i] or "").strip()]
    questions = {i: texts[i].strip().split("\n", 1)[0].strip() for i in todo}
    todo = [i for i in todo if questions[i]]
    if todo:
        outs = model.generate([demo_messages(paragraphs[i], questions[i]) for i in todo],
                              GenParams(max_new_tokens=max_new_tokens, stop=("\n",)))
        for i, comps in zip(todo, outs):
            a = comps[0].text.strip().split("\n", 1)[0].strip()
            pairs[i] = (questions[i], a) if a else None
    return pairs, len(todo)


def generate_demos(model, paragraphs: Sequence, k: int, *, seed: int = 0, temperature: float = 0.7,
                   retries: int = 2, min_words: int = 20, max_answer_tokens: int = 10,
                   max_new_tokens: int = 48, max_calls: int = 0) -> DemoSet:
    """Up to k validated demos for a context (see the module docstring); one batched call per round.
    `max_calls` > 0 stops after that many generator calls (the set may then hold fewer than k)."""
    cands = candidate_order(paragraphs, seed, min_words)
    demos: list[Demo] = []
    seen: set[str] = set()
    reasons: Counter[str] = Counter()
    calls = 0
    tries: dict[str, int] = {}
    queue = list(cands)
    active = queue[:k]
    queue = queue[k:]
    rnd = 0
    while active and len(demos) < k and not (max_calls and calls >= max_calls):
        params = GenParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed * 1000 + rnd,
                           stop=("\n\n",))
        outs = model.generate([demo_messages(p) for p in active], params)
        pairs, extra = _complete_answers(model, active, [c[0].text for c in outs], max_new_tokens)
        calls += len(active) + extra
        nxt = []
        for p, pair in zip(active, pairs):
            why = validate(pair, p, seen, max_answer_tokens)
            if not why and len(demos) < k:
                demos.append(Demo(pair[0], pair[1], p.key()))  # type: ignore[index]
                seen.add(normalize_answer(pair[0]))  # type: ignore[index]
                continue
            reasons[why or "surplus"] += 1
            tries[p.key()] = tries.get(p.key(), 0) + 1
            if tries[p.key()] <= retries:
                nxt.append(p)
            elif queue:
                nxt.append(queue.pop(0))
        need = k - len(demos)
        active = nxt[:need]
        rnd += 1
    return DemoSet(demos, calls, dict(reasons))


class DemoCache:
    """Demo sets by content key, with hit/miss counts."""

    def __init__(self) -> None:
        self._sets: dict[str, DemoSet] = {}
        self.hits = 0
        self.misses = 0

    def get(self, paragraphs: Sequence, make) -> DemoSet:
        key = content_key(paragraphs)
        if key in self._sets:
            self.hits += 1
        else:
            self.misses += 1
            self._sets[key] = make()
        return self._sets[key]

    def put(self, key: str, demos: DemoSet) -> None:
        self._sets[key] = demos

    def __contains__(self, key: str) -> bool:
        return key in self._sets
