"""The exam side of the paper: question selection, exam prompts, answer truncation, and the
synthetic exam with known labels that our live judge runs use.

Paper §3 (official code described, not copied): TriviaQA `unfiltered` validation is shuffled with
`numpy.random.Generator(PCG64(51)).permutation(N)`, questions with more than `max_references` (10)
references (answer value + aliases) are skipped, the first 400 kept; five few-shot examples come
from train via a fresh `Generator(PCG64(51)).choice(n_train, 5, replace=False)`. Base models read
"Q: {q}\\nA: {a}\\n\\n" x 5 + "Q: {q}\\nA:"; chat models read the same block inside the CHAT_V2
instruction. Answers are cut at the first "\\nQ:" (`newlinequestion`, the default).

The released verdicts do not include the exam-takers' answers, so our live runs judge a synthetic
exam instead: for each released question, answers of known correctness drawn from its references
and from other questions' answers (see `build_exam`).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from solstice.judge.lexical import as_references
from solstice.metrics.text import normalize_answer

SEED = 51
MAX_REFERENCES = 10
N_QUESTIONS = 400
N_FEWSHOT = 5

FEWSHOT_TEMPLATE = "Q: {question}\nA: {answer}\n\n"
CHAT_V2 = "\n".join([
    "You are a part of a question answering benchmark. Look at the following ",
    "examples on how to answer the questions.",
    "",
    "```",
    "{fewshot}",
    "```",
    "",
    "Your task is to answer the following question. Remember to be concise and ",
    "only give the answer in a few words.",
    "",
    "Q: {question}",
    "A:",
])  # the paper's chat exam prompt, verbatim (official repository, templates/benchmark_chat.py)


# -- question selection (needs TriviaQA) -------------------------------------------------------------
def references_of(row: dict[str, Any]) -> list[str]:
    """TriviaQA references: the answer value followed by its aliases (duplicates kept, as released)."""
    ans = row["answer"]
    return [ans["value"], *ans.get("aliases", [])]


def select_questions(validation: Sequence[dict[str, Any]], n: int = N_QUESTIONS, *, seed: int = SEED,
                     max_references: int = MAX_REFERENCES) -> list[int]:
    """Indices of the exam questions: a seeded permutation, skipping questions with too many references."""
    import numpy as np

    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(validation))
    out: list[int] = []
    for i in order.tolist():
        if len(out) >= n:
            break
        if max_references > 0 and len(references_of(validation[i])) > max_references:
            continue
        out.append(i)
    return out


def fewshot_indices(n_train: int, k: int = N_FEWSHOT, *, seed: int = SEED) -> list[int]:
    import numpy as np

    return np.random.Generator(np.random.PCG64(seed)).choice(n_train, k, replace=False).tolist()


def exam_prompt(question: str, fewshot: Sequence[tuple[str, str]], *, chat: bool = False) -> str:
    block = "".join(FEWSHOT_TEMPLATE.format(question=q, answer=a) for q, a in fewshot)
    if chat:
        return CHAT_V2.format(fewshot=block, question=question)
    return f"{block}Q: {question}\nA:"


def parse_fewshot(prompt: str) -> list[tuple[str, str]]:
    """The (question, answer) few-shot pairs of a released exam prompt."""
    body = prompt.split("```")[1] if "```" in prompt else prompt
    return [(q, a) for q, a in re.findall(r"Q: (.*?)\nA: (.*?)\n\n", body, flags=re.S)]


# -- answer truncation ---------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.I)


def truncate_answer(text: str, preset: str = "newlinequestion") -> str:
    """Cut a generated answer as the paper does: `newlinequestion` at the first "\\nQ:",
    `newline` at the first newline, `skip` only strips, `eleutherai` cuts at the first newline,
    period or comma, then removes articles and punctuation, collapses whitespace and lower-cases."""
    stops = {"newlinequestion": ["\nQ:"], "newline": ["\n"], "skip": [], "eleutherai": ["\n", ".", ","]}
    if preset not in stops:
        raise ValueError(f"unknown truncation preset '{preset}' ({', '.join(stops)})")
    cut = len(text)
    for s in stops[preset]:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    out = text[:cut]
    if preset == "eleutherai":
        out = _ARTICLES.sub(" ", out)
        out = "".join(ch for ch in out if ch not in string.punctuation)
        out = " ".join(out.split()).lower()
    return out.strip()


# -- the synthetic exam --------------------------------------------------------------------------------
KINDS = ("correct", "correct_verbose", "incorrect", "partial", "dummy")
LABEL = {"correct": True, "correct_verbose": True, "incorrect": False, "partial": False, "dummy": False,
         "incorrect_verbose": False}
DUMMIES = ("Yes", "Sure", "{question}")
VERBOSE = "Thanks for asking this question! The correct answer is: {answer}."


@dataclass(frozen=True)
class ExamItem:
    id: str
    question: str
    references: tuple[str, ...]
    response: str
    kind: str
    label: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "references": list(self.references),
                "response": self.response, "kind": self.kind, "label": self.label, **self.meta}


def _matches(answer: str, refs: Sequence[str]) -> bool:
    a = normalize_answer(answer)
    return bool(a) and any(a == normalize_answer(r) or (normalize_answer(r) and normalize_answer(r) in a) for r in refs)


def _partial(refs: Sequence[str], rng: random.Random) -> tuple[str, str] | None:
    """An under-specified answer: a proper word-prefix of the answer value (the first reference),
    e.g. "Westminster" for "Westminster Abbey" or "Neil" for "Neil Robertson", that neither equals
    nor contains any reference after normalisation; failing that, the first word of another
    multi-word reference ("fragment"). Suffixes are not used (a surname alone is often accepted)."""
    norm = {normalize_answer(r) for r in refs}

    def ok(piece: str) -> bool:
        p = normalize_answer(piece)
        return len(p) >= 3 and p not in norm and not any(n and n in p for n in norm)

    strip = " ,;:-'\"("
    words = refs[0].split() if refs else []
    cands = [c for k in range(1, len(words)) if ok(c := " ".join(words[:k]).strip(strip))]
    if cands:
        return rng.choice(cands), "underspecified"
    cands = [c for r in dict.fromkeys(refs[1:]) if len(r.split()) > 1 and ok(c := r.split()[0].strip(strip))]
    return (rng.choice(cands), "fragment") if cands else None


def build_exam(questions: Sequence[tuple[str, Sequence[str]]], *, seed: int = 0,
               kinds: Sequence[str] = KINDS) -> list[ExamItem]:
    """Answers of known correctness for each (question, references):

    correct          a reference alias (label correct)
    correct_verbose  the alias inside a verbose sentence, "Thanks for asking ... : {alias}." (correct;
                     the paper's guideline 3)
    incorrect        another question's answer that matches none of this question's references
    partial          an under-specified answer: a word-prefix of the answer value ("Westminster" for
                     "Westminster Abbey"; the paper's guideline 1, incorrect); when no reference has several
                     words, a hedged "too many entities" answer "{alias} or {other answer}" (incorrect)
    dummy            "Yes", "Sure" or the question itself, in turn (incorrect)
    """
    rng = random.Random(seed)
    qs = [(q, as_references(r)) for q, r in questions]
    firsts = [refs[0] for _, refs in qs]
    items: list[ExamItem] = []
    for qi, (q, refs) in enumerate(qs):
        alias = rng.choice(list(dict.fromkeys(refs)))
        order = list(range(len(qs)))
        rng.shuffle(order)
        other = next((firsts[j] for j in order if j != qi and not _matches(firsts[j], refs)), None)
        for kind in kinds:
            meta: dict[str, Any] = {"qid": qi}
            if kind == "correct":
                resp = alias
            elif kind == "correct_verbose":
                resp = VERBOSE.format(answer=alias)
            elif kind in ("incorrect", "incorrect_verbose"):
                if other is None:
                    continue
                resp = other if kind == "incorrect" else VERBOSE.format(answer=other)
            elif kind == "partial":
                part = _partial(refs, rng)
                if part is not None:
                    resp, meta["subtype"] = part
                elif other is not None:
                    resp, meta["subtype"] = f"{alias} or {other}", "too_many"
                else:
                    continue
            elif kind == "dummy":
                d = DUMMIES[qi % len(DUMMIES)]
                resp, meta["subtype"] = d.format(question=q), ("question" if "{" in d else d.lower())
            else:
                raise ValueError(f"unknown exam item kind '{kind}' ({', '.join(LABEL)})")
            items.append(ExamItem(f"q{qi:03d}-{kind}", q, tuple(refs), resp, kind, LABEL[kind], meta))
    return items
