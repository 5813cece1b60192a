"""The released judge verdicts of "Judging the Judges" and their loader.

The official repository releases, per exam-taker answer, every judge's verdict and the human label
for the paper's TriviaQA exam (9 exam-takers x 400 questions). Its `response` column holds the
exam *prompt* (few-shot block + question, ending in "A:"), not the exam-taker's answer: answers
were not released, so judges cannot be re-run on the real answers and only the metric layer can be
reproduced exactly. Verdict cells are True / False / blank; a blank is "no verdict" (never mapped
to a label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from solstice.data import DataSource
from solstice.data.catalogue import JUDGES_TRIVIAQA_V1
from solstice.errors import DataError

_REPO = "https://raw.githubusercontent.com/UMass-Meta-LLM-Eval/llm_eval/7c0bf28e75703cd41c6088bebb64eefcdf348bd4/results/"

RELEASES = {
    "v1": JUDGES_TRIVIAQA_V1,
    "v2": DataSource(
        "judges-triviaqa-v2", "judges-triviaqa/TriviaQA_Judges_w_HumanJudgement_V2.csv",
        url=_REPO + "TriviaQA_Judges_w_HumanJudgement_V2.csv",
        sha256="35291cdf5042a0f29d215f5707f975a021e0027a043bad35fcdda659ea8e3096",
        license="MIT (UMass-Meta-LLM-Eval/llm_eval); TriviaQA Apache-2.0",
        description="auxiliary run: 8 exam-takers, gpt-4t twice (400 rows unlabelled), 9 LLM judges",
    ),
}

META = ("model", "response", "question", "references", "benchmark")
HUMAN = {"v1": "HumanJudgement", "v2": "Human-Eval"}

JUDGES = {
    "GPT-4": "GPT-4 Turbo (2024-04-09)",
    "Llama3-70B": "Llama-3-70B-Instruct",
    "Llama3-8B": "Llama-3-8B-Instruct",
    "Llama-70B": "Llama-2-70B-chat",
    "Llama-13B": "Llama-2-13B-chat",
    "Llama-7B": "Llama-2-7B-chat",
    "Mistral-7B": "Mistral-7B-Instruct-v0.2",
    "Gemma-2B": "Gemma-2B-it",
    "JudgeLM": "JudgeLM-7B",
    "EM": "exact match (lexical)",
    "Contains": "contains (lexical)",
}
LEXICAL = ("EM", "Contains")


@dataclass
class Release:
    """A loaded release: one row per (exam-taker, question) with verdicts as True / False / None."""

    version: str
    rows: list[dict]
    judges: list[str]
    human: str

    def labels(self, column: str) -> list[bool | None]:
        return [r[column] for r in self.rows]

    @property
    def takers(self) -> list[str]:
        return list(dict.fromkeys(r["model"] for r in self.rows))

    @property
    def questions(self) -> list[str]:
        return list(dict.fromkeys(r["question"] for r in self.rows))


def _cell(v, column: str, line: int) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, float) and v != v:
        return None
    s = str(v).strip().lower()
    if s in ("", "nan", "none"):
        return None
    if s in ("true", "1", "1.0", "yes"):
        return True
    if s in ("false", "0", "0.0", "no"):
        return False
    raise DataError(f"unexpected verdict '{v}' in column '{column}' (row {line}); expected True/False/blank")


def load_release(path: str | Path, version: str = "v1") -> Release:
    """Read a released verdict CSV (columns: model, response, question, references, benchmark, one
    column per judge, and the human label column)."""
    import pandas as pd

    if version not in HUMAN:
        raise DataError(f"unknown release '{version}' (v1, v2)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the judge release '{path}': {str(exc).splitlines()[0]}") from exc
    human = HUMAN[version]
    missing = [c for c in (*META, human) if c not in df.columns]
    if missing:
        raise DataError(f"'{path}' is not a judges-triviaqa {version} release: missing column(s) {', '.join(missing)}")
    judges = [c for c in df.columns if c not in META and not c.startswith(human)]
    if not judges:
        raise DataError(f"'{path}' has no judge columns")
    rows = []
    for i, rec in enumerate(df.to_dict("records")):
        row = {k: rec[k] for k in META}
        for c in (*judges, human):
            row[c] = _cell(rec[c], c, i + 2)
        row["row"] = i
        rows.append(row)
    return Release(version, rows, judges, human)


def scorable(rel: Release) -> list[dict]:
    """Rows with a human label and at least one judge verdict (v1 drops the 5 malformed
    llama2-7b-chat rows, v2 the 400 unlabelled gpt-4t rows)."""
    return [r for r in rel.rows if r[rel.human] is not None and any(r[j] is not None for j in rel.judges)]
