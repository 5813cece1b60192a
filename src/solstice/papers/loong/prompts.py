"""Loong prompt construction and the judge prompt (reference: MozerWang/Loong, src/utils/prompt.py).

Two modes:
- `faithful` reproduces the reference: the legal level-4 judgments are appended to every document
  (its omission test looks for the judgment list in `instruction`, where it never is: answer
  leakage), financial reports are labelled with the last '-' field of their file stem, the paper
  instructions keep their `{{ }}` escapes, and the judge sees a literal `{docs}` for paper items.
- `fixed` (default) omits a legal document's judgment whenever the question lists the judgments
  to match, labels financial reports with their document key (the company), unescapes the braces
  and removes `{docs}` from every judge question.

Budgeting walks the documents in order (financial reports pre-shuffled), skips any whole document
that would overflow the budget and continues with the next, never cuts inside a document, then
shuffles the kept ones when `shuffle_doc` is set. Shuffles use a per-item RNG seeded with
(seed, item id), so an item's prompt does not depend on which other items were selected.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from solstice.errors import ConfigError
from solstice.papers.loong.data import Document, LoongItem, answer_text

REFERENCE_SEED = 1000000007  # src/utils/args.py --seed
REFERENCE_MAX_LENGTH = 120000  # src/run.sh MAX_LENGTH ("according to the context window of llm")
LEGAL_RESULTS_PHRASE_REFERENCE = "阅读以上判决文书，我将给你若干份判决结果："
LEGAL_RESULTS_MARK = "判决结果"
MODES = ("faithful", "fixed")

# Verbatim judge prompt (src/utils/prompt.py, get_evaluate_prompts); filled with str.format(question,
# gold answer, prediction).
JUDGE_PROMPT = '''[Question]
{}

[Gold Answer]
{}

[The Start of Assistant's Predicted Answer]
{}
[The End of Assistant's Predicted Answer]

[System]
We would like to request your feedback on the performance of the AI assistant in response to the user question displayed above according to the gold answer. Please use the following listed aspects and their descriptions as evaluation criteria:
    - Accuracy and Hallucinations: The assistant's answer is semantically consistent with the gold answer; The numerical value and order need to be accurate, and there should be no hallucinations.
    - Completeness: Referring to the reference answers, the assistant's answer should contain all the key points needed to answer the user's question; further elaboration on these key points can be omitted.
Please rate whether this answer is suitable for the question. Please note that the gold answer can be considered as a correct answer to the question.

The assistant receives an overall score on a scale of 1 to 100, where a higher score indicates better overall performance.
Please note that if the assistant's answer and the gold answer fully meet the above criteria, its overall rating should be the full marks (100).
Please first provide a comprehensive explanation of your evaluation, avoiding any potential bias.
Then, output a line indicating the score of the Assistant.

PLEASE OUTPUT WITH THE FOLLOWING FORMAT, WHERE THE SCORE IS A SCALE OF 1 TO 100 BY STRICTLY FOLLOWING THIS FORMAT: "[[score]]", FOR EXAMPLE "Rating: [[100]]":
<start output>
Evaluation evidence: your evluation explanation here, no more than 100 words
Rating: [[score]]
<end output>

Now, start your evaluation:'''

GOLD_MARK = "[Gold Answer]\n"
PRED_START = "[The Start of Assistant's Predicted Answer]\n"
PRED_END = "\n[The End of Assistant's Predicted Answer]"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"Loong mode must be 'faithful' or 'fixed', not '{mode}'")


def omits_results(item: LoongItem, mode: str) -> bool:
    """Whether a legal document's judgment (`result`) is left out of this item's prompt."""
    _check_mode(mode)
    if item.type != "legal" or item.level != 4:
        return False
    if mode == "faithful":
        return LEGAL_RESULTS_PHRASE_REFERENCE in item.instruction
    return LEGAL_RESULTS_MARK in item.question


def _instruction(item: LoongItem, mode: str) -> str:
    if mode == "fixed":
        return item.instruction.replace("{{", "{").replace("}}", "}")
    return item.instruction


def fill_template(item: LoongItem, mode: str) -> str:
    """The prompt template with question and instruction filled in; `{docs}` is still there."""
    _check_mode(mode)
    t = item.prompt_template.replace("{question}", item.question)
    return t.replace("{instruction}", _instruction(item, mode))


def render_doc(item: LoongItem, doc: Document, mode: str) -> str:
    if item.type == "financial":
        return f"《{doc.label}》\n{doc.text}\n\n"
    if item.type == "paper":
        return f"{doc.label}\n{doc.text}\n\n"
    body = doc.text if omits_results(item, mode) else doc.text + doc.result
    return f"《判决文书{doc.position + 1}》\n{body}\n\n"


def pack(tokens: Sequence[int], budget: int, order: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """Walk the documents (in `order`), keeping each whole document that still fits in `budget`
    tokens and skipping the others. Returns (kept, skipped) indices in walk order."""
    kept, skipped, used = [], [], 0
    for i in order if order is not None else range(len(tokens)):
        if used + tokens[i] > budget:
            skipped.append(i)
            continue
        kept.append(i)
        used += tokens[i]
    return kept, skipped


@dataclass
class BuiltPrompt:
    text: str
    kept: list[str]  # document keys in prompt order
    skipped: list[str]  # whole documents left out by the budget
    missing: list[str] = field(default_factory=list)  # documents absent from the folder
    doc_tokens: int = 0
    budget: int = 0
    omitted_results: bool = False

    def to_json(self) -> dict:
        return dict(self.__dict__)


def build_prompt(item: LoongItem, docs: Sequence[Document | None], count: Callable[[str], int],
                 doc_budget: int, *, mode: str = "fixed", seed: int = REFERENCE_SEED) -> BuiltPrompt:
    """The candidate prompt of an item within `doc_budget` tokens of documents."""
    filled = fill_template(item, mode)
    present = [d for d in docs if d is not None]
    missing = [k for k, d in zip(item.doc, docs) if d is None]
    rendered = [render_doc(item, d, mode) for d in present]
    tokens = [count(r) for r in rendered]
    rng = random.Random(f"{seed}:{item.id}")
    order = list(range(len(rendered)))
    if item.shuffle_doc and item.type == "financial":
        rng.shuffle(order)
    kept, skipped = pack(tokens, doc_budget, order)
    if item.shuffle_doc:
        rng.shuffle(kept)
    return BuiltPrompt(
        text=filled.replace("{docs}", "".join(rendered[i] for i in kept)),
        kept=[present[i].key for i in kept], skipped=[present[i].key for i in skipped], missing=missing,
        doc_tokens=sum(tokens[i] for i in kept), budget=doc_budget, omitted_results=omits_results(item, mode),
    )


def judge_question(item: LoongItem, mode: str = "fixed") -> str:
    """The [Question] section of the judge prompt: the filled template without documents."""
    t = item.prompt_template
    if item.type != "paper" or mode == "fixed":
        t = t.replace("{docs}", "")
    return t.replace("{question}", item.question).replace("{instruction}", _instruction(item, mode))


def judge_prompt(item: LoongItem, prediction: str, mode: str = "fixed") -> str:
    return JUDGE_PROMPT.format(judge_question(item, mode), answer_text(item.answer), prediction)


def split_judge_prompt(text: str) -> tuple[str, str]:
    """(gold answer, prediction) read back from a judge prompt (used by the rule-based judge)."""
    try:
        gold = text.split(GOLD_MARK, 1)[1].split("\n\n" + PRED_START, 1)[0]
        pred = text.split(PRED_START, 1)[1].rsplit(PRED_END, 1)[0]
    except IndexError:
        raise ConfigError("not a Loong judge prompt: the gold/prediction sections are missing") from None
    return gold, pred
