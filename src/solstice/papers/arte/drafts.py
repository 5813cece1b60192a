"""Step 1 (knowledge elicitation): the teacher drafts questions and rationales.

Questions: sampled (temperature 1) from the question-generation prompt, parsed from the
`<input>…</input><target>…</target>` tags; kept when new (by normalised input), non-empty and with a
target in the task's label set. Rationales: one greedy answer per system prompt, kept when the
extracted answer is a label. Everything is seeded (the model layer's GenParams.seed)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from solstice.papers.arte import prompts as P
from solstice.papers.arte.answers import extract, normalise
from solstice.papers.arte.tasks import Task, norm_input

_ITEM = re.compile(r"^(.*?)</input>\s*<target>(.*?)</target>", re.S)
_MORE = re.compile(r"<input>(.*?)</input>\s*<target>(.*?)</target>", re.S)


def parse_questions(continuation: str) -> list[tuple[str, str]]:
    """(input, target) pairs from a continuation of '<Question_k><input>' (the first item's opening
    tag is in the prompt), malformed items dropped."""
    out = []
    m = _ITEM.match(continuation)
    if m:
        out.append((m.group(1).strip(), m.group(2).strip()))
        rest = continuation[m.end():]
    else:
        rest = continuation
    out += [(a.strip(), b.strip()) for a, b in _MORE.findall(rest)]
    return [(q, t) for q, t in out if q and t and "<" not in q]


def label_of(answer: str, labels: Sequence[str]) -> str | None:
    """The label an extracted answer names (normalised comparison), or None."""
    a = normalise(answer)
    for lab in labels:
        if normalise(lab) == a:
            return lab
    return None


def draft_questions(teacher: Any, task: Task, m: int, *, seed: int, max_calls: int, max_tokens: int,
                    exclude: Sequence[str] = ()) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Up to m distinct questions with a valid target; stats of calls and drops."""
    from solstice.models.base import GenParams

    seeds = [(it.input, it.target) for it in task.seeds]
    msgs = P.question_prompt(task.name, task.description, seeds, start=len(seeds) + 1)
    seen = {norm_input(q) for q in exclude} | {norm_input(q) for q, _ in seeds}
    out: list[dict[str, str]] = []
    stats = {"calls": 0, "parsed": 0, "bad_label": 0, "duplicate": 0}
    batch = 4
    while len(out) < m and stats["calls"] < max_calls * m:
        params = GenParams(max_new_tokens=max_tokens, temperature=1.0, seed=seed * 100003 + stats["calls"])
        comps = teacher.generate([msgs] * batch, params.replace(n=1)) if batch > 1 else teacher.generate([msgs], params)
        for c in comps:
            stats["calls"] += 1
            for q, t in parse_questions(c[0].text):
                stats["parsed"] += 1
                lab = label_of(t, task.labels)
                if lab is None:
                    stats["bad_label"] += 1
                elif norm_input(q) in seen:
                    stats["duplicate"] += 1
                else:
                    seen.add(norm_input(q))
                    out.append({"question": q, "target": lab})
    return out[:m], stats


def draft_rationales(teacher: Any, task: Task, question: str, n: int, max_tokens: int) -> list[dict[str, Any]]:
    """One greedy rationale per system prompt; `answer` is the label it ends with (None if unparsed)."""
    from solstice.models.base import GenParams

    msgs = [P.rationale_prompt(k, task.name, task.description, task.labels, question) for k in range(n)]
    comps = teacher.generate(msgs, GenParams(max_new_tokens=max_tokens, temperature=0.0))
    out = []
    for k, c in enumerate(comps):
        text = c[0].text.strip()
        out.append({"style": k, "rationale": text, "answer": label_of(extract(text), task.labels)})
    return out
