"""The long reader's zero-shot prompts and the short-answer extraction prompt.

The two reader prompts and the extraction instruction are quoted from the official repository
(TIGER-AI-Lab/LongRAG, utils/gpt_inference.py; MIT licence, © 2024 TIGER-AI-Lab), including its
missing spaces and double spaces, so that any reader sees exactly what GPT-4o saw. The
demonstrations are our own: the reference loads 8 NQ examples from the hub at run time; these are
written for Solstice in the same `Question / Long Answer / Short Answer` shape (one demonstration
per gold alias), and a user may pass their own file instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from solstice.errors import DataError

# utils/gpt_inference.py, GPTInference.predict_nq
NQ_READER = (
    "Go through the following context and then extract the answer of the question from the context. "
    "The context is a list of Wikipedia documents, ordered by title: {titles}. "
    "Each Wikipedia document contains a title field and a text field. "
    "The context is: {context}. "
    "Find the useful documents from the context, then extract the answer to answer the question: {question}."
    "Answer the question directly. Your response should be very concise. "
)

# utils/gpt_inference.py, GPTInference.predict_hqa
HOTPOTQA_READER = (
    "Go through the following context and then answer the question "
    "The context is a list of Wikipedia documents titled: {titles}. "
    "There are two types of questions: comparison questions, which require a yes or no answer or a "
    "selection from two candidates, "
    "and general questions, which demand a concise response. "
    "The context is: {context}. "
    "Find the useful documents from the context, then answer the question: {question}."
    "For general questions, you should use the exact words from the context as the answer to avoid ambiguity. "
    "Answer the question directly and don't output other thing.  "
)

READERS = {"nq": NQ_READER, "hotpotqa": HOTPOTQA_READER}

# utils/gpt_inference.py, GPTInference.extract_answer
EXTRACT_INSTRUCTION = (
    "As an AI assistant, you have been provided with a question and its long answer. "
    "Your task is to derive a very concise short answer, extracting a substring from the given long answer. "
    "Short answer is typically an entity without any other redundant words."
    "It's important to ensure that the output short answer remains as simple as possible.\n\n"
)

# Our own demonstrations (not the reference's): question, long answer, gold short answers.
DEMOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("how many strings does a standard violin have",
     "A standard violin is strung with four strings, tuned in perfect fifths.", ("four",)),
    ("who composed the opera the magic flute",
     "The Magic Flute is a two-act opera composed by Wolfgang Amadeus Mozart to a German libretto by "
     "Emanuel Schikaneder.", ("Wolfgang Amadeus Mozart",)),
    ("what is the capital city of australia",
     "Canberra, a planned city chosen as a compromise between Sydney and Melbourne, is the capital of "
     "Australia.", ("Canberra",)),
    ("when did the berlin wall fall",
     "The Berlin Wall fell on the night of 9 November 1989, when the border crossings were opened.",
     ("9 November 1989", "1989")),
    ("which planet is known as the red planet",
     "Mars is often called the Red Planet because iron oxide on its surface gives it a reddish look.",
     ("Mars",)),
    ("who were the first two people to walk on the moon",
     "Neil Armstrong stepped onto the Moon first during Apollo 11 in 1969, followed by Buzz Aldrin.",
     ("Neil Armstrong", "Buzz Aldrin")),
    ("what language is mainly spoken in brazil",
     "The official and most widely spoken language of Brazil is Portuguese, a legacy of colonial rule.",
     ("Portuguese",)),
    ("is the tomato botanically a fruit",
     "Yes. Botanically the tomato is a berry, and therefore a fruit, although it is cooked as a vegetable.",
     ("yes",)),
)

_ANSWER = re.compile(r"(?i)(?<=\banswer:\s).*")


def format_titles(titles: Sequence[str]) -> str:
    """The title list as the reference passes it: a Python list literal."""
    return "[" + ", ".join(repr(t) for t in titles) + "]"


def reader_prompt(kind: str, context: str, question: str, titles: Sequence[str]) -> str:
    if kind not in READERS:
        raise KeyError(f"unknown reader prompt '{kind}' (use {', '.join(READERS)})")
    return READERS[kind].format(titles=format_titles(titles), context=context, question=question)


def post_process(text: str) -> str:
    """Keep what follows 'answer: ' when the output has it (the reference's post-processing)."""
    m = _ANSWER.search(text)
    return (m.group(0) if m else text).strip()


def load_demos(path: str | Path | None) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Demonstrations from a JSONL file of {question, long_answer, answers}, or ours when None."""
    if path is None or str(path) == "":
        return DEMOS
    p = Path(path)
    if not p.is_file():
        raise DataError(f"extraction demonstrations file '{p}' does not exist")
    out = []
    for i, line in enumerate(p.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            ans = r["answers"]
            out.append((r["question"], r["long_answer"], tuple([ans] if isinstance(ans, str) else ans)))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{p.name}: line {i + 1} needs question, long_answer and answers") from None
    if not out:
        raise DataError(f"{p.name} holds no demonstrations")
    return tuple(out)


def extraction_prompt(question: str, long_answer: str, demos: Sequence[tuple[str, str, Sequence[str]]] = DEMOS) -> str:
    prompt = EXTRACT_INSTRUCTION
    if demos:
        prompt += "Here are some examples: "
        for q, la, answers in demos:
            for a in answers:
                prompt += f"Question: {q}\nLong Answer: {la}\nShort Answer: {a}\n\n"
    return prompt + f"Question: {question}\nLong Answer: {long_answer}\nShort Answer: "
