"""Tasks of the continual-learning benchmark (O-LoRA / MIGU format) and the user's own.

A task folder holds `labels.json` (the label words) and `train.json` / `test.json`: JSON lists of
{"sentence": ..., "label": ...} (JSONL files `train.jsonl` / `test.jsonl` are read too). A task with
only one split is divided into disjoint train and test parts with a fixed seed. Rows whose label is
not a label word (MNLI's "-") are dropped.

The instruction lines are ours (the reference's per-task templates likewise name the task and list
the label options); the prompt ends with "Answer:" and the target is " <label word>".
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.errors import DataError

log = logging.getLogger(__name__)

# name -> (folder under CL_Benchmark, instruction)
BENCHMARK: dict[str, tuple[str, str]] = {
    "agnews": ("TC/agnews", "What is the topic of this news article?"),
    "dbpedia": ("TC/dbpedia", "Which category does this encyclopedia article belong to?"),
    "yahoo": ("TC/yahoo", "What is the topic of this question and answer?"),
    "amazon": ("SC/amazon", "How positive is this product review?"),
    "yelp": ("SC/yelp", "How positive is this business review?"),
    "sst2": ("SC/SST-2", "Is the sentiment of this movie review good or bad?"),
    "imdb": ("SC/IMDB", "Is the sentiment of this movie review good or bad?"),
    "mnli": ("NLI/MNLI", "Does sentence 1 entail sentence 2, contradict it, or neither?"),
    "rte": ("NLI/RTE", "Does sentence 1 entail sentence 2?"),
    "cb": ("NLI/CB", "Does sentence 1 entail sentence 2, contradict it, or neither?"),
    "qqp": ("QQP/QQP", "Do the two questions ask the same thing?"),
    "boolq": ("BoolQA/BoolQA", "Given the passage, is the answer to the question true or false?"),
    "wic": ("WiC/WiC", "Is the word used with the same meaning in both sentences?"),
    "copa": ("COPA/COPA", "Which alternative is more plausible?"),
    "multirc": ("MultiRC/MultiRC", "Given the paragraph, is the answer to the question correct?"),
}

# The paper's task orders (from the upstream run scripts): 1-3 standard, 4-6 long benchmark.
ORDERS: dict[str, list[str]] = {
    "order1": ["dbpedia", "amazon", "yahoo", "agnews"],
    "order2": ["dbpedia", "amazon", "agnews", "yahoo"],
    "order3": ["yahoo", "amazon", "agnews", "dbpedia"],
    "order4": ["mnli", "cb", "wic", "copa", "qqp", "boolq", "rte", "imdb", "yelp", "amazon", "sst2",
               "dbpedia", "agnews", "multirc", "yahoo"],
    "order5": ["multirc", "boolq", "wic", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia",
               "agnews", "yelp", "amazon", "yahoo"],
    "order6": ["yelp", "amazon", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia", "agnews",
               "yahoo", "multirc", "boolq", "wic"],
}


@dataclass(frozen=True)
class Example:
    uid: str
    sentence: str
    label: str


@dataclass
class Task:
    name: str
    instruction: str
    labels: list[str]
    train: list[Example]
    test: list[Example]

    def prompt(self, sentence: str) -> str:
        return f"{self.instruction}\nOptions: {', '.join(self.labels)}\n{sentence.strip()}\nAnswer:"

    @staticmethod
    def target(label: str) -> str:
        return " " + label


def _read_rows(folder: Path, split: str) -> list[dict[str, Any]] | None:
    for name in (f"{split}.json", f"{split}.jsonl"):
        p = folder / name
        if not p.is_file():
            continue
        try:
            if name.endswith(".jsonl"):
                return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
            rows = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{p} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise DataError(f"{p} must hold a JSON list of {{'sentence', 'label'}} rows")
        return rows
    return None


def load_task(name: str, folder: Path, instruction: str | None = None, *, split_seed: int = 0,
              test_fraction: float = 0.2) -> Task:
    """Read one task folder (see the module docstring)."""
    if not folder.is_dir():
        raise DataError(f"task '{name}': folder {folder} does not exist")
    train, test = _read_rows(folder, "train"), _read_rows(folder, "test")
    if train is None and test is None:
        hint = " (the local benchmark copy ships only labels.json for yahoo: add Yahoo Answers in the same format)" if name == "yahoo" else ""
        raise DataError(f"task '{name}': {folder} has neither train.json nor test.json{hint}")
    for rows, split in ((train, "train"), (test, "test")):
        for i, r in enumerate(rows or []):
            if not isinstance(r, dict) or "sentence" not in r or "label" not in r:
                raise DataError(f"task '{name}' {split} row {i} lacks 'sentence' or 'label'")
    lab_file = folder / "labels.json"
    if lab_file.is_file():
        labels = [str(x) for x in json.loads(lab_file.read_text(encoding="utf-8"))]
    else:
        labels = sorted({str(r["label"]) for r in (train or []) + (test or [])})
    if len(labels) < 2:
        raise DataError(f"task '{name}' needs at least two label words, found {labels}")
    if train is None or test is None:
        rows = list(train or test or [])
        random.Random(f"{name}/{split_seed}").shuffle(rows)
        cut = max(1, int(round(len(rows) * test_fraction)))
        test, train = rows[:cut], rows[cut:]
        log.info("task %s has one split: %d train / %d test after a seeded split", name, len(train), len(test))

    def examples(rows: list[dict[str, Any]], split: str) -> list[Example]:
        out = [Example(f"{name}/{split}/{i}", str(r["sentence"]), str(r["label"]))
               for i, r in enumerate(rows) if str(r["label"]) in labels]
        if len(out) < len(rows):
            log.info("task %s %s: dropped %d rows whose label is not a label word", name, split, len(rows) - len(out))
        return out

    return Task(name, instruction or f"Task: {name}. Choose the right label.", labels,
                examples(train, "train"), examples(test, "test"))


def resolve_task(spec: str, root: Path | None, instructions: dict[str, str], **kw: Any) -> Task:
    """A benchmark task name (read under `root`), or a path to a task folder of the user's."""
    if spec in BENCHMARK:
        if root is None:
            raise DataError(f"task '{spec}' needs the CL benchmark folder")
        sub, instr = BENCHMARK[spec]
        return load_task(spec, root / sub, instructions.get(spec, instr), **kw)
    p = Path(spec).expanduser()
    if p.is_dir():
        return load_task(p.name, p, instructions.get(p.name), **kw)
    raise DataError(f"unknown task '{spec}': use one of {', '.join(BENCHMARK)} or a folder with labels.json and train/test JSON")


def subsample(examples: list[Example], n: int | None, seed: int | str) -> list[Example]:
    """A seeded random subset of at most n examples (all, shuffled, when n is None)."""
    rows = list(examples)
    random.Random(str(seed)).shuffle(rows)
    return rows if n is None else rows[:n]


def truncate_sentence(tokenizer: Any, sentence: str, max_tokens: int | None) -> str:
    """Keep the sentence's first `max_tokens` tokens (the instruction and answer cue stay whole)."""
    if not max_tokens:
        return sentence
    ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
    return sentence if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])
