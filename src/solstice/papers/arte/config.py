"""Configuration of the ARTE reproduction (spec small-scale plan, cut to a quick mode for a shared CPU)."""

from __future__ import annotations

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    bbh_dir: str = Field("bbh", description="the BBH folder (data/<task>.json), relative to SOLSTICE_DATA")
    tasks: list[str] = Field(["boolean_expressions", "sports_understanding", "web_of_lies"],
                             description="closed-label BBH tasks (spec: three binary tasks; paper: 23 tasks)")
    n_val: int = Field(100, description="validation items per task for IRT (spec 100; paper 100 from BIG-bench)")
    n_test: int = Field(145, description="test items per task (spec 150; sports_understanding has only 248 distinct inputs), disjoint from val by normalised input")
    n_seed_questions: int = Field(3, description="seed questions shown to the teacher (paper: 3)")
    split_seed: int = Field(0, description="seed of the val/test split")
    # -- IRT --------------------------------------------------------------------------------------
    respondent_shots: list[int] = Field([0, 1, 2, 3], description="k-shot settings of the respondents (paper: 0-3)")
    respondent_draws: int = Field(3, description="demo draws per k>0 (distinct respondents; paper: 5 models)")
    respondent_styles: list[str] = Field(["plain", "described"], description="prompt styles (with/without "
                                         "the task description) multiplying the respondents")
    k_pref: int = Field(20, description="D_pref size: most discriminating val items by IRT alpha (spec 20; paper 40)")
    # -- drafts and preferences ----------------------------------------------------------------------
    m_questions: int = Field(20, description="draft questions per task (spec 20; paper 250)")
    n_rationales: int = Field(4, description="rationales per question, one per system prompt (paper 4)")
    max_question_calls: int = Field(6, description="question-generation calls per wanted question before giving up")
    question_tokens: int = Field(80, description="max new tokens per question-generation call")
    rationale_tokens: int = Field(96, description="max new tokens per rationale")
    question_pairs: int = Field(25, description="DPO question pairs per task from top/bottom quartiles (spec 25; paper 50)")
    # -- DPO ----------------------------------------------------------------------------------------
    align: bool = Field(True, description="align the teacher with DPO (needs a local teacher)")
    dpo_lr: float = Field(2e-5, description="DPO learning rate (paper 1e-7 for 70B; spec 5e-6-5e-5 for small LoRA)")
    dpo_beta: float = Field(0.1, description="DPO beta (TRL default; paper: not reported)")
    dpo_epochs: float = Field(1.0, description="DPO epochs (paper 1)")
    dpo_batch_size: int = Field(4, description="DPO batch (paper 16)")
    lora_r: int = Field(8, description="LoRA rank for DPO and SFT (spec 8-16)")
    lora_alpha: float = Field(16, description="LoRA alpha")
    # -- generation, SFT, evaluation ------------------------------------------------------------------
    n_generate: int = Field(60, description="training examples per task from each teacher (spec 60; paper 6,750 total)")
    answer_tokens: int = Field(96, description="max new tokens of a generated answer")
    sft_lr: float = Field(2e-4, description="student LoRA SFT learning rate (spec 2e-4; paper 2e-5 full FT)")
    sft_epochs: float = Field(1.0, description="student SFT epochs (paper 1)")
    sft_batch_size: int = Field(4, description="student SFT batch")
    seeds: list[int] = Field([0, 1, 2], description="seeds of DPO, generation and SFT (spec: 3)")
    contamination_n: int = Field(13, description="n-gram size of the generated-vs-test contamination check")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not self.tasks or not self.seeds:
            raise ValueError("tasks and seeds must not be empty")
        if not 1 <= self.n_rationales <= 4:
            raise ValueError("n_rationales must be 1-4 (one per rationale system prompt)")
        if self.k_pref > self.n_val:
            raise ValueError(f"k_pref {self.k_pref} exceeds n_val {self.n_val}")
        if self.m_questions < 4:
            raise ValueError("m_questions must be at least 4 (quartiles)")
        return self
