"""ARTE prompts, written from the paper's description (§3.1, Appendix; the official repository holds
no code or prompts). Question generation shows three seed questions in the paper's tag format and
asks for more; four rationale system prompts give four answering strategies, each ending with the
answer in <ans></ans> tags; the naive prompt is the one used for aligned-teacher answers."""

from __future__ import annotations

from collections.abc import Sequence

RATIONALE_SYSTEMS = (
    "You are an expert in {task}. {description} Apply the rules of the task carefully, then give the final "
    "answer as <ans>answer</ans>.",
    "Recall the rules needed for this kind of question first, then evaluate the question step by step. "
    "Finish with the final answer as <ans>answer</ans>.",
    "{description} Answer the question. Finish with the final answer as <ans>answer</ans>.",
    "Read the question and the possible answers ({labels}), eliminate the wrong ones, and choose. Finish with "
    "the final answer as <ans>answer</ans>.",
)


def question_prompt(task: str, description: str, seeds: Sequence[tuple[str, str]], start: int = 4) -> list[dict[str, str]]:
    """Chat messages asking for new questions, with the assistant turn prefilled with the next tag."""
    shown = "\n".join(f"<Question_{i + 1}><input>{q}</input><target>{t}</target></Question_{i + 1}>"
                      for i, (q, t) in enumerate(seeds))
    user = (f"Task: {task.replace('_', ' ')}. {description}\nHere are example questions:\n{shown}\n"
            f"Brainstorm 5 more questions for this task, numbered from {start}, in the same format with a unique "
            "id. They need not stick to the examples' context.")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": f"<Question_{start}><input>"}]


def rationale_prompt(k: int, task: str, description: str, labels: Sequence[str], question: str) -> list[dict[str, str]]:
    system = RATIONALE_SYSTEMS[k].format(task=task.replace("_", " "), description=description, labels=", ".join(labels))
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Question: {question}"}]


def naive_prompt(description: str, question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Task description: {description}\nQuestion: {question}\n"
             "Answer: Let's think step by step, and end with the final answer as <ans>answer</ans>."}]


def demo(question: str, answer: str) -> str:
    return f"Question: {question}\nAnswer: {answer}\n\n"


def scoring_prompt(demos: Sequence[tuple[str, str]], question: str, description: str = "") -> str:
    """Plain-text k-shot prompt ending where the student's answer label is read (after <ans>)."""
    head = f"{description}\n\n" if description else ""
    return head + "".join(demo(q, a) for q, a in demos) + f"Question: {question}\nAnswer: <ans>"
