from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig

Arm = Literal["zero_shot", "recycled", "recycled_noev", "icl"]


class Config(BaseConfig):
    experiments: list[Literal["hotpotqa", "sweep"]] = Field(
        ["hotpotqa", "sweep"], description="HotpotQA arms comparison; NQ gold-position sweep (spec small plan)")
    arms: list[Arm] = Field(["zero_shot", "recycled", "recycled_noev", "icl"],
                            description="zero-shot with evidence, recycled demos with / without evidence, classic ICL "
                            "with foreign demos (paper §3-4)")
    questions: int = Field(100, ge=1, description="HotpotQA questions (seeded sample; spec small plan: 100)")
    icl_questions: int = Field(50, ge=0, description="of those, how many also get the classic-ICL arm (spec: 50)")
    k: int = Field(3, ge=1, description="demos per context (paper default k = 3)")
    demo_temperature: float = Field(0.7, ge=0.0, description="demo sampling temperature (spec: 0.7)")
    demo_retries: int = Field(2, ge=0, description="retries per paragraph before moving on (spec: 2)")
    min_words: int = Field(20, ge=1, description="paragraphs shorter than this are not used for demos (spec: 20)")
    max_answer_tokens: int = Field(10, ge=1, description="demo answers longer than this (DPR tokens) are dropped")
    demo_max_calls: int = Field(0, ge=0, description="cap on generator calls per context (0 = none; the spec has "
                                "no cap: 2 retries per paragraph, then the next paragraph)")
    demo_max_new_tokens: int = Field(48, ge=8, description="tokens per generated demo")
    max_new_tokens: int = Field(64, ge=1, description="reader tokens (spec: 64, stop at the next 'Question:')")
    sweep_questions: int = Field(50, ge=0, description="NQ questions in the position sweep (spec: 50)")
    sweep_docs: int = Field(10, ge=2, description="passages per NQ context (spec: 10)")
    sweep_positions: list[int] = Field([1, 5, 10], description="gold positions (1-based; spec: first / middle / last)")
    sweep_arms: list[Arm] = Field(["zero_shot", "recycled"], description="arms in the sweep")
    chat: bool = Field(True, description="wrap prompts in the reader's chat template (one user turn + an assistant "
                       "prefill 'Evidence:' / 'Answer:'); False: raw text")
    shared_prefix: bool = Field(True, description="read the context once per question for all arms (hf readers)")
    seed: int = Field(0, description="question sampling, paragraph choice and demo sampling seed")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not self.arms:
            raise ValueError("arms must not be empty")
        if any(p < 1 or p > self.sweep_docs for p in self.sweep_positions):
            raise ValueError(f"sweep_positions must lie in 1..sweep_docs ({self.sweep_docs})")
        return self
