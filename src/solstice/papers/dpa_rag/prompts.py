"""Reader and augmentation prompts.

The paper's reader prompt is not public; ours puts the question first so that a question's
closed-book prompt and its with-document prompts share a leading token prefix (the system turn and
the question), which the model layer's shared-prefix scorer reads once per question.

The five augmentation operators follow the paper's §3.1 descriptions (its prompts are published
only as an image); the wording below is ours.
"""

from __future__ import annotations

from collections.abc import Sequence

from solstice.models.base import Message

ANSWER_INSTRUCTION = "Answer the question with a short answer (a few words)."


def reader_prompt(question: str, documents: Sequence[str] = ()) -> list[Message]:
    """Closed-book when `documents` is empty; otherwise the documents follow the question, best first."""
    if not documents:
        body = f"Question: {question}\n\n{ANSWER_INSTRUCTION}"
    elif len(documents) == 1:
        body = f"Question: {question}\n\nDocument: {documents[0]}\n\n{ANSWER_INSTRUCTION}"
    else:
        docs = "\n\n".join(f"Document [{i + 1}] {d}" for i, d in enumerate(documents))
        body = f"Question: {question}\n\n{docs}\n\n{ANSWER_INSTRUCTION}"
    return [{"role": "user", "content": body}]


OPERATORS: dict[str, str] = {
    "rephrasing": "Rephrase the question with different words while keeping exactly the same meaning and intent.",
    "complexity": "Rewrite the question so that it is semantically more complex (longer, more elaborate wording) "
                  "while asking for the same answer.",
    "decomposition": "Decompose the question into two or three simpler sub-questions whose answers lead to the "
                     "answer of the original question. Write them on one line, separated by spaces.",
    "constraint": "Rewrite the question adding one extra condition or constraint that the answer still "
                  "satisfies, so that it asks for the same answer.",
    "sparql": "Rewrite the question as a SPARQL query over Wikidata that would retrieve its answer. Write the "
              "query on one line.",
}


def augment_prompt(operator: str, question: str) -> list[Message]:
    return [{"role": "user", "content": f"{OPERATORS[operator]}\n\nQuestion: {question}\n\n"
             "Reply with the rewritten question only."}]


def clean_rewrite(text: str, operator: str) -> str:
    """The rewrite from a generator's reply: the first non-empty line, or every line joined for
    decomposition and SPARQL (multi-line by nature); a leading label and quotes are removed."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    out = " ".join(lines) if operator in ("decomposition", "sparql") else lines[0]
    for lead in ("Rewritten question:", "Rewrite:", "Question:", "Sub-questions:", "SPARQL:"):
        if out.lower().startswith(lead.lower()):
            out = out[len(lead):].strip()
    return out.strip().strip('"').strip("'").strip()
