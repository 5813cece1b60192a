"""Configuration of the Judging-the-Judges reproduction (arXiv:2406.12624)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from solstice.core.config import BaseConfig

TEMPLATE_STUDY = ("DEFAULT", "HUMAN_GUIDELINES_V4", "HUMAN_GUIDELINES_V2", "HUMAN_GUIDELINES_V1_2", "HUMAN_GUIDELINES_V3")


class Config(BaseConfig):
    release: Literal["v1", "v2"] = Field(
        "v1", description="released verdict file analysed by the metric layer: v1 (the paper's main 9 judges + EM + "
        "Contains, 3,600 rows) or v2 (auxiliary run, see README) (official repository, results/)")
    n_resamples: int = Field(1000, ge=0, description="bootstrap resamples for every CI (items resampled with replacement)")
    exam_questions: int = Field(400, ge=1, le=400, description="questions of the released 400-question exam used to build the "
                                "synthetic exam with known labels (paper §3: 400 TriviaQA questions)")
    exam_seed: int = Field(0, description="seed of the synthetic exam (alias choice, distractors, dummy answers)")
    judge_template: str = Field("HUMAN_GUIDELINES_V1_2", description="judge prompt for the live run (paper's main template, Appendix)")
    judge_mode: Literal["auto", "logprobs", "generate"] = Field(
        "auto", description="live verdicts from label log-probabilities (one forward pass; auto when the backend offers "
        "them) or from generated text parsed with the paper's rules")
    exact_labels: bool = Field(True, description="log-prob verdicts from the whole label words' sequence log-probabilities "
                               "(false: only their first distinct tokens, e.g. 'correct' vs the fragment 'inc')")
    probe_questions: int = Field(40, ge=0, le=400, description="questions (x5 answer kinds) for the vulnerability probes: "
                                 "template length, no reference, reference order, answer length (paper §5)")
    probe_templates: tuple[str, ...] = Field(TEMPLATE_STUDY, description="templates of the guideline-length study (paper §5.1)")
    generate_items: int = Field(40, ge=0, description="exam items also judged with generated verdict text, to measure the "
                                "text parser's unparsed rate and its agreement with log-prob verdicts")
    max_new_tokens: int = Field(8, ge=1, description="tokens generated per text verdict (the paper asks for one word)")
    batch_size: int = Field(16, ge=1, description="items per judge call (one resumable batch)")
    lexical_cased: bool = Field(False, description="case-sensitive EM / Contains (the paper: case-insensitive)")
    triviaqa_path: str = Field("", description="optional local TriviaQA `unfiltered` copy (a datasets folder saved with "
                               "save_to_disk, holding train + validation) to rebuild the 400-question selection "
                               "(PCG64(51), max 10 references) and check it against the released questions")

    @field_validator("judge_template")
    @classmethod
    def _known_template(cls, v: str) -> str:
        from solstice.judge.templates import TEMPLATES

        if v not in TEMPLATES:
            raise ValueError(f"unknown judge template '{v}' (choose from {', '.join(TEMPLATES)})")
        return v

    @field_validator("probe_templates")
    @classmethod
    def _known_templates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from solstice.judge.templates import TEMPLATES

        bad = [t for t in v if t not in TEMPLATES or t == "TAG"]
        if bad:
            raise ValueError(f"unusable probe template(s) {bad} (choose from {', '.join(t for t in TEMPLATES if t != 'TAG')})")
        return v

    @model_validator(mode="after")
    def _tag_needs_text(self) -> Config:
        if self.judge_template == "TAG" and self.judge_mode == "logprobs":
            raise ValueError("the TAG template asks for reasoning before the verdict; use judge_mode=generate with it")
        return self
