"""MoA configuration. Defaults are the spec's small-scale plan for SmolLM2-135M (the paper's own
values, for 7B models, are given in each description)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    profile_lengths: list[int] = Field(
        [1024, 2048], description="profile lengths P (multiples of 64); the paper uses 2k, 4k, 8k (§5.1)")
    extend_length: int = Field(
        4096, description="longest length with a density constraint, also the unseen validation length; the "
        "paper constrains 16k and validates at 12k (§4.2)")
    min_length: int = Field(512, description="minimum length m of the config grid; the paper uses 2k (§4.2)")
    alpha_step: int = Field(256, description="α grid step; the paper uses 1024 (upstream config grid)")
    beta_step: float = Field(0.125, description="β grid step (paper: 0.125)")
    block: int = Field(64, description="profiling block size b (paper: 64)")
    calib_items: int = Field(24, description="calibration items per profile length (upstream MultiNews subset)")
    answer_tokens: int = Field(128, description="max tokens of the dense model's own greedy answer (§4.1)")
    aggregate: Literal["sum", "max"] = Field(
        "sum", description="how a KV head's query heads are combined: sum (first-order, additive) or max "
        "(upstream parity)")
    densities: list[float] = Field([0.5, 0.25], description="KV density budgets B (paper: 0.5, §5)")
    lower_ratio: float = Field(0.9, description="density band lower bound as a fraction of B (upstream: 0.9)")
    max_rules_per_layer: int = Field(2, description="distinct rules allowed per layer (paper §4.2: 2)")
    bands: int = Field(4, description="ε-constraint levels per secondary objective (upstream: 4)")
    max_plans: int = Field(10, description="Pareto plans kept for validation (spec: ≤ 10)")
    solve_time_limit: float = Field(120.0, description="seconds per MILP (HiGHS time limit)")
    val_items: int = Field(4, description="held-out WikiText items for plan selection at extend_length")
    copy_lengths: list[int] = Field([512, 1024, 1536, 2000], description="copy-task block lengths D "
                                    "(sequence = R then R again; loss on the second copy)")
    copy_items: int = Field(8, description="copy sequences per length")
    retrieval_lengths: list[int] = Field([1536, 3072], description="lines/passkey prompt lengths in tokens; "
                                         "the paper sweeps 2k–256k")
    retrieval_items: int = Field(50, description="prompts per task and length (10 depth bins)")
    retrieval_tasks: list[Literal["lines", "passkey"]] = Field(["lines", "passkey"], description="retrieval tasks")
    wikitext_items: int = Field(8, description="WikiText articles scored at extend_length")
    eval_batch: int = Field(2, description="sequences per forward in evaluation")
    retrieval_threshold: float = Field(0.9, description="effective context length = longest length with "
                                       "retrieval accuracy ≥ this (paper §5.2: ~90%)")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not self.profile_lengths:
            raise ValueError("at least one profile length is needed")
        for p in self.profile_lengths + [self.extend_length, self.min_length]:
            if p <= 0 or p % self.block:
                raise ValueError(f"length {p} must be a positive multiple of the block size {self.block}")
        if self.extend_length < max(self.profile_lengths):
            raise ValueError("extend_length must be at least the longest profile length")
        if any(not 0 < d <= 1 for d in self.densities):
            raise ValueError("densities must lie in (0, 1]")
        if not 0 < self.lower_ratio <= 1:
            raise ValueError("lower_ratio must lie in (0, 1]")
        return self
