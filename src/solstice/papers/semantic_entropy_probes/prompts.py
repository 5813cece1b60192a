"""Prompts (paper §4 / appendix; the reference's generation, p(True) and entailment prompts,
paraphrased where the reference builds them in code)."""

from __future__ import annotations

from collections.abc import Sequence

BRIEF = "Answer the following question as briefly as possible.\n"
BRIEF_CHAT = "Answer the following question in a single brief but complete sentence.\n"

# Stop sequences of the reference (method A), strongest first; EOS stops as well.
STOP = ("\n\n\n\n", "\n\n\n", "\n\n", "\n", "Question:", "Context:")

ENTAILMENT_PROMPT = (
    "We are evaluating answers to the question \"{question}\"\n"
    "Here are two possible answers:\n"
    "Possible Answer 1: {a}\n"
    "Possible Answer 2: {b}\n"
    "Does Possible Answer 1 semantically entail Possible Answer 2? "
    "Respond with entailment, contradiction, or neutral.\n"
    "Response:"
)

P_TRUE_LABELS = (" A", " B")  # A) True, B) False


def qa_prompt(question: str, *, few_shot: Sequence[tuple[str, str]] = (), instruction: bool = True,
              chat: bool = False, context: str = "") -> str:
    """`[instruction][few-shot block][Context: c\\n]Question: q\\nAnswer:`."""
    head = (BRIEF_CHAT if chat else BRIEF) if instruction else ""
    block = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in few_shot)
    ctx = f"Context: {context}\n" if context else ""
    return f"{head}{block}{ctx}Question: {question}\nAnswer:"


def p_true_prompt(question: str, brainstormed: Sequence[str], proposed: str) -> str:
    """Kadavath et al. (2022) p(True): the model sees its own samples and judges the proposed
    answer; p(True) is the probability of ' A'."""
    ideas = "\n".join(a.strip() for a in brainstormed if a.strip())
    return (
        f"Question: {question}\n"
        f"Here are some brainstormed ideas:\n{ideas}\n"
        f"Possible answer: {proposed.strip()}\n"
        "Is the possible answer:\nA) True\nB) False\n"
        "The possible answer is:"
    )
