"""Question sets: the four offline GeoNames tasks, and loaders for the paper's QA sets
(TriviaQA, SQuAD closed-book, NQ-open, BioASQ) for users who have the files.

Every set becomes a list of `QAItem`s (question, gold aliases, optional distractors). Few-shot
examples are drawn from the same set and removed from it, as in the reference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solstice.data import DataSource
from solstice.data.catalogue import JUDGES_TRIVIAQA_V1, SQUAD24
from solstice.data.geonames_qa import GEONAMES_TASKS, QAItem, geonames_questions
from solstice.errors import ConfigError, DataError, require

NQ_OPEN = DataSource(
    "nq-open-dev", "nq-open/NQ-open.dev.jsonl",
    url="https://raw.githubusercontent.com/google-research-datasets/natural-questions/master/nq_open/NQ-open.dev.jsonl",
    license="CC BY-SA 3.0", description="NQ-open dev, 3,610 questions with answer aliases",
)
SQUAD_V11_24 = SQUAD24  # 4,961 answerable questions, used closed-book
SQUAD_V2 = DataSource(
    "squad-dev-v2.0", "squad/dev-v2.0.json", url="https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json",
    license="CC BY-SA 4.0", description="SQuAD v2.0 dev (unanswerable questions count as incorrect)",
)
TRIVIAQA = DataSource(
    "triviaqa-rc-nocontext-validation", "triviaqa/rc.nocontext-validation.parquet",
    hub=("mandarjoshi/trivia_qa", "rc.nocontext/validation-00000-of-00001.parquet",
         "d82c2ac58cbe9a7590ea4f378f85772e328acb77"),
    license="Apache-2.0", description="TriviaQA rc.nocontext validation (17,944 questions)",
)
# The 400 TriviaQA questions (with aliases) of a judge-evaluation release, shared with judging_judges.
TRIVIAQA_400 = JUDGES_TRIVIAQA_V1
BIOASQ = DataSource(
    "bioasq-training11b", "bioasq/training11b.json",
    description="BioASQ Task B training set (registration at bioasq.org required; place the JSON here)",
)

ONLINE_SETS: dict[str, DataSource] = {
    "nq_open": NQ_OPEN, "squad": SQUAD_V11_24, "squad_v2": SQUAD_V2, "triviaqa": TRIVIAQA,
    "triviaqa_400": TRIVIAQA_400, "bioasq": BIOASQ,
}
ALL_SETS = (*GEONAMES_TASKS, *ONLINE_SETS)


def data_sources(names: list[str]) -> list[DataSource]:
    return [ONLINE_SETS[n] for n in names if n in ONLINE_SETS]


def _check(names: list[str]) -> None:
    bad = [n for n in names if n not in ALL_SETS]
    if bad:
        raise ConfigError(f"unknown question set '{bad[0]}'; choose from {', '.join(ALL_SETS)}")


def _nq(path: Path) -> list[QAItem]:
    from solstice.data import read_jsonl

    out = []
    for i, r in enumerate(read_jsonl(path)):
        q = str(r["question"]).strip()
        out.append(QAItem(f"nq_open-{i}", q if q.endswith("?") else q + "?", tuple(r["answer"]), "nq_open"))
    return out


def _squad(path: Path, name: str) -> list[QAItem]:
    data = json.loads(path.read_text())
    out = []
    for art in data["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                out.append(QAItem(f"{name}-{qa['id']}", qa["question"].strip(), answers, name,
                                  metadata={"unanswerable": bool(qa.get("is_impossible", False))}))
    return out


def _triviaqa(path: Path) -> list[QAItem]:
    import pandas as pd

    require("pyarrow", "qa", "reading the TriviaQA parquet file")

    df = pd.read_parquet(path, columns=["question", "question_id", "answer"])
    out = []
    for q, qid, ans in zip(df["question"], df["question_id"], df["answer"]):
        aliases = tuple(dict.fromkeys([ans["value"], *list(ans["aliases"])]))
        out.append(QAItem(f"triviaqa-{qid}", str(q).strip(), aliases, "triviaqa"))
    return out


def _triviaqa_400(path: Path) -> list[QAItem]:
    import pandas as pd

    df = pd.read_csv(path, usecols=["question", "references"]).drop_duplicates("question")
    out = []
    for i, (q, refs) in enumerate(zip(df["question"], df["references"])):
        aliases = tuple(dict.fromkeys(r.strip() for r in str(refs).split("\n") if r.strip()))
        out.append(QAItem(f"triviaqa_400-{i}", str(q).strip(), aliases, "triviaqa_400"))
    return out


def _bioasq(path: Path) -> list[QAItem]:
    data = json.loads(path.read_text())
    out = []
    for q in data.get("questions", []):
        if q.get("type") != "factoid" or "exact_answer" not in q:
            continue
        exact = q["exact_answer"]
        flat = [a for x in exact for a in (x if isinstance(x, list) else [x])] if isinstance(exact, list) else [exact]
        out.append(QAItem(f"bioasq-{q.get('id', len(out))}", q["body"].strip(), tuple(map(str, flat)), "bioasq"))
    return out


_LOADERS: dict[str, Callable[[Path], list[QAItem]]] = {
    "nq_open": _nq, "squad": lambda p: _squad(p, "squad"), "squad_v2": lambda p: _squad(p, "squad_v2"),
    "triviaqa": _triviaqa, "triviaqa_400": _triviaqa_400, "bioasq": _bioasq,
}


def load_question_set(name: str, resolve: Callable[[DataSource], Path] | None = None) -> list[QAItem]:
    """All questions of a set, in file order (GeoNames sets in their seeded order)."""
    _check([name])
    if name in GEONAMES_TASKS:
        return geonames_questions(name)
    from solstice.data import resolve as default_resolve

    path = (resolve or default_resolve)(ONLINE_SETS[name])
    try:
        items = _LOADERS[name](path)
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path.name} is not in the expected {name} format ({type(exc).__name__}: {exc})") from None
    if not items:
        raise DataError(f"{path.name} holds no usable {name} questions")
    return items


def select(items: list[QAItem], n: int, n_few_shot: int, seed: int) -> tuple[list[QAItem], list[QAItem]]:
    """(few-shot examples, up to n evaluation questions): a seeded shuffle, the first
    `n_few_shot` answerable items become examples and never appear among the questions."""
    order = list(items)
    random.Random(seed).shuffle(order)
    shots = [it for it in order if it.answers][:n_few_shot]
    chosen = {it.id for it in shots}
    rest = [it for it in order if it.id not in chosen]
    return shots, rest[:n]


def as_row(item: QAItem) -> dict[str, Any]:
    return {"id": item.id, "question": item.question, "answers": list(item.answers), "source": item.source}
