"""LongIns configuration. Defaults follow the paper and its reference code unless noted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    settings: list[Literal["GIST", "LIST", "LIMT"]] = Field(
        ["GIST"], description="settings to evaluate: GIST (global instruction, single task), LIST (local "
        "instructions, single task), LIMT (local instructions, mixed tasks; never released, built "
        "synthetically from the GIST items) (paper §3.1)")
    lengths: list[int] = Field(
        [256, 512], description="context-length buckets in tokens: 256, 512, 1024, 2048, 4096, 8192, 16384 "
        "(paper §3.2)")
    synthesize_missing: bool = Field(
        True, description="when a LIST bucket file is absent, build it from the GIST file of the same length "
        "(same items, instruction repeated per item; reported as LISTsyn). LIMT is always synthetic")
    limt_source_lengths: list[int] = Field(
        [256, 512], description="GIST buckets whose items feed the synthetic LIMT samples")
    n_per_bucket: int | None = Field(
        None, description="category-stratified subset size per bucket (None = every sample; the paper "
        "uses all)")
    limt_samples: int = Field(200, description="synthetic LIMT samples per length")
    max_new_tokens: int = Field(
        64, description="generation budget; the reference allows 10,000, answers are short bracket lists")
    whitespace: Literal["normalized", "faithful"] = Field(
        "normalized", description="'faithful' keeps the reference's indentation runs between prompt parts "
        "(infer/data_loader.py); 'normalized' joins the parts with single newlines")
    truncation: Literal["skip", "middle", "error"] = Field(
        "skip", description="prompts longer than the model window: 'skip' (not run, scored 0), 'middle' "
        "(drop the middle of the question block, LongBench-style) or 'error' (stop the run); counts "
        "per bucket are always reported")
    context_window: int | None = Field(
        None, description="the model's window in tokens (None = the model's own, e.g. 8192 for SmolLM2)")
    token_counter: str = Field(
        "model", description="token counter: model (the model's tokenizer), hf:<tokenizer>, "
        "tiktoken[:<encoding or file>], chars[:n] or words")
    baselines: bool = Field(True, description="score the oracle, all-indices, first-only and random "
                            "predictors on the same samples (no model)")
    random_q: float = Field(0.5, description="probability with which the random predictor flags each item")
    batch_size: int = Field(8, description="prompts per generation call")
    @field_validator("lengths", "limt_source_lengths")
    @classmethod
    def _known_lengths(cls, v: list[int]) -> list[int]:
        bad = [x for x in v if x not in (256, 512, 1024, 2048, 4096, 8192, 16384)]
        if bad:
            raise ValueError(f"unknown LongIns length {bad[0]}; use 256, 512, 1024, 2048, 4096, 8192 or 16384")
        if not v:
            raise ValueError("at least one length is needed")
        return v

    @field_validator("random_q")
    @classmethod
    def _prob(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("random_q must lie in [0, 1]")
        return v

