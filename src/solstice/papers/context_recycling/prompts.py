"""Prompts of context recycling (Cattan et al. 2024, §3) and the output parser.

Reader prompt (the context appears once):
    instruction
    [1] Title: … text …            numbered paragraphs, 1-based
    …
    answer format (evidence IDs first, then a short answer; or a short answer only)
    Question: q1 / Evidence: [i] / Answer: a1       k demos from this very context
    Question: q  / Evidence:                          the reader completes evidence and answer
Arms: zero_shot (evidence instruction, no demos), recycled (demos with evidence), recycled_noev
(demos and instruction without the evidence line), icl (k demos from *other* contexts, each shown
with its own numbered context, then the target context). The task sentence comes first and the
answer-format sentence after the context, so that every arm but ICL starts with the same
instruction + context (read once for all arms by `models.prefix_generate`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

INSTRUCTION = "Answer the question using the numbered paragraphs of the context below."
FORMAT_EV = "First list the IDs of the paragraphs that support the answer as Evidence, then give a short answer."
FORMAT_NOEV = "Give a short answer."
DEMO_PROMPT = ("Here is a paragraph.\n\nTitle: {title}\n{text}\n\nWrite one question that can be answered from this "
               "paragraph alone, whose answer is a short span copied from the paragraph. Reply as\n"
               "Question: ...\nAnswer: ...")
ARMS = ("zero_shot", "recycled", "recycled_noev", "icl")


@dataclass(frozen=True)
class Demo:
    """A generated (question, answer) pair and the paragraph it came from (content key)."""

    question: str
    answer: str
    source: str  # Paragraph.key() of its source paragraph


def render_context(paragraphs: Sequence) -> str:
    return "\n".join(f"[{i}] Title: {p.title}\n{p.text}" for i, p in enumerate(paragraphs, 1))


def render_demo(question: str, ids: Sequence[int], answer: str, evidence: bool) -> str:
    ev = f"Evidence: {' '.join(f'[{i}]' for i in ids)}\n" if evidence else ""
    return f"Question: {question}\n{ev}Answer: {answer}"


def demo_ids(paragraphs: Sequence, demo: Demo) -> list[int]:
    """1-based positions of the demo's source paragraph in this context (ids follow any permutation)."""
    return [i for i, p in enumerate(paragraphs, 1) if p.key() == demo.source]


def reader_prompt(arm: str, paragraphs: Sequence, question: str, demos: Sequence[Demo] = (),
                  foreign: Sequence[tuple[Sequence, Demo]] = ()) -> tuple[str, str]:
    """(prompt body, answer cue) for one arm; the cue ("Evidence:" or "Answer:") ends the prompt
    (or is the assistant prefill with a chat template)."""
    evidence = arm != "recycled_noev"
    fmt = FORMAT_EV if evidence else FORMAT_NOEV
    parts = [INSTRUCTION]
    if arm == "icl":
        for ctx, d in foreign:
            parts.append(f"Context:\n{render_context(ctx)}\n\n{FORMAT_EV}\n\n"
                         f"{render_demo(d.question, demo_ids(ctx, d), d.answer, True)}")
    parts += [f"Context:\n{render_context(paragraphs)}", fmt]
    if arm in ("recycled", "recycled_noev"):
        parts += [render_demo(d.question, demo_ids(paragraphs, d), d.answer, evidence) for d in demos]
    parts.append(f"Question: {question}")
    return "\n\n".join(parts) + "\n", ("Evidence:" if evidence else "Answer:")


# -- parsing ---------------------------------------------------------------------------------
_ID = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Parsed:
    evidence: tuple[int, ...]
    answer: str
    failed: bool  # no "Answer:" where one was expected


def parse_output(text: str, cue: str, titles: Sequence[str] = ()) -> Parsed:
    """Evidence ids and answer from a continuation of `cue`.

    After "Evidence:": ids are every `[n]` before "Answer:" (when there are no
    brackets: titles of the context named there, matched case-insensitively, then bare numbers),
    sorted and deduplicated; the answer is
    the text after "Answer:" up to the line end. A trailing "Question:" round is cut first. No
    "Answer:" is a parse failure: the answer is then the first line, id markers removed. After an "Answer:" cue the first line
    is the answer."""
    text = (text or "").split("\nQuestion:", 1)[0]
    if cue == "Answer:":
        return Parsed((), text.strip().split("\n", 1)[0].strip(), False)
    head, sep, tail = text.partition("Answer:")
    ids = [int(x) for x in _ID.findall(head)]
    if not ids and titles:
        low = head.lower()
        ids = [i for i, t in enumerate(titles, 1) if t and t.lower() in low]
    if not ids:
        ids = [int(x) for x in re.findall(r"\b(\d{1,2})\b", head)]
    n = len(titles) if titles else None
    ids = sorted(i for i in set(ids) if n is None or 1 <= i <= n)
    if sep:
        answer = tail.strip().split("\n", 1)[0].strip()
    else:  # tolerate a direct answer: its first line without id markers (still a parse failure)
        answer = _ID.sub("", head).strip().split("\n", 1)[0].strip()
    return Parsed(tuple(ids), answer, not sep)


def parse_demo(text: str) -> tuple[str, str] | None:
    """(question, answer) from a generator reply `Question: …\\nAnswer: …` (the leading
    "Question:" may be the prefill); None when either part is missing."""
    t = (text or "").strip()
    if not t.startswith("Question:"):
        t = "Question: " + t
    m = re.search(r"Question:\s*(.+?)\s*\n+\s*Answer:\s*(.+)", t)
    if not m:
        return None
    q, a = m.group(1).strip(), m.group(2).strip().split("\n", 1)[0].strip()
    return (q, a) if q and a else None
