"""Loong configuration. Defaults follow the paper and its reference code unless noted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    collection: Literal["release", "synthetic"] = Field(
        "release", description="'release': loong.jsonl + the downloaded documents; 'synthetic': the "
        "project's generated mini collection (all four task types, offline)")
    questions: str = Field("loong/loong.jsonl", description="question file under SOLSTICE_DATA (release)")
    doc_dir: str = Field("", description="document folder (doc/ of doc.zip); empty = 'doc' next to the "
                         "question file")
    allow_missing_docs: bool = Field(False, description="run although documents are missing (each "
                                     "item's missing documents are counted); otherwise a one-line error lists them")
    synthetic_seed: int = Field(0, description="seed of the synthetic collection")
    types: list[Literal["financial", "legal", "paper"]] = Field([], description="document types to keep (empty = all)")
    levels: list[int] = Field([], description="task levels to keep: 1 Spotlight, 2 Comparison, 3 Clustering, "
                              "4 Chain of Reasoning (empty = all) (paper §2)")
    sets: list[int] = Field([], description="length sets to keep: 1 (10-50K), 2 (50-100K), 3 (100-200K), "
                            "4 (200-250K) (empty = all) (paper §2)")
    n_per_level: int | None = Field(None, description="instances per task level, spread over the types "
                                    "(None = all)")
    mode: Literal["fixed", "faithful"] = Field(
        "fixed", description="'faithful' reproduces the reference prompts (legal level-4 judgments leak into "
        "the documents); 'fixed' hides them when the question lists them")
    max_length: int = Field(120000, description="document budget of a prompt in tokens; whole documents "
                            "that overflow are skipped (reference run.sh: 120,000)")
    context_window: int | None = Field(None, description="the candidate's window (None = the model's own); "
                                       "the rendered prompt plus max_new_tokens must fit in it")
    token_counter: str = Field("model", description="token counter for budgeting: model (the candidate's "
                               "tokenizer), hf:<tokenizer>, tiktoken[:<encoding or file>], chars[:n] or words")
    shuffle_seed: int = Field(1000000007, description="seed of the document shuffles (reference args.py)")
    predictions_from: str = Field("", description="judge given answers instead of generating: a JSONL of {id, "
                                  "prediction} (or generate_response), e.g. released outputs; to re-judge a run use "
                                  "`solstice rescore RUN --model judge=...`")
    max_new_tokens: int = Field(512, description="candidate answer budget (the reference sets none)")
    judge_mode: Literal["auto", "model", "prefill", "exact"] = Field(
        "auto", description="'auto': 'model' when a judge model is given (or the judge is the target, as in "
        "the smoke/small protocol), else the rule-based 'exact' judge with a warning, since the default 135M "
        "judge gives no parsable rating for a real target; 'model': the judge role rates each answer with the paper's prompt (GPT-4-Turbo in "
        "the paper); 'prefill': the same prompt with the judge's turn prefilled by 'Rating: [[' so a small "
        "local judge must give a number (no explanation; not the paper's protocol); 'exact': a rule-based "
        "judge (normalised exact match → 100, else 0) answers the same prompt")
    judge_max_new_tokens: int = Field(256, description="judge output budget (explanation ≤ 100 words + rating)")
    judge_parser: Literal["strict", "reference"] = Field(
        "strict", description="'strict': only 'Rating: [[x]]' / '[[x]]' within [0, 100]; 'reference': first "
        "[[x]] else first [x], unchecked (metric.py)")
    out_of_range: Literal["unparsed", "clip"] = Field(
        "unparsed", description="a strict rating outside [0, 100]: unparsed (counted) or clipped")
    judge_probes: list[Literal["oracle", "empty"]] = Field(
        ["oracle", "empty"], description="also judge the gold answer and an empty answer per instance, to "
        "measure the judge (oracle should score 100, empty low)")
    batch_size: int = Field(4, description="prompts per model call")
