"""Configuration of the LLM-rationality paper (Liu et al. 2024, arXiv:2406.17055)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from solstice.core.config import BaseConfig

Mode = Literal[
    "individual_zero_shot", "act_individual_zero_shot", "aggregate_zero_shot",
    "individual_cot", "act_individual_cot", "aggregate_cot",
]
Framing = Literal["positive", "negative"]
Method = Literal["zero_shot", "cot"]


class Config(BaseConfig):
    tasks: list[Literal["forward", "inverse"]] = Field(
        ["forward", "inverse"], description="which experiments to run: forward (choices13k) and/or inverse (Jern et al.) (paper §3, §4)"
    )
    # -- forward modelling (risky choice) -------------------------------------------------------
    modes: list[Mode] = Field(
        ["individual_zero_shot", "act_individual_zero_shot", "aggregate_zero_shot",
         "individual_cot", "act_individual_cot", "aggregate_cot"],
        description="prompt modes: predict an individual, simulate one (act_), predict the group (aggregate_); zero-shot or CoT (paper §3.1)",
    )
    rows: int = Field(2000, ge=1, description="analyse the first N rows of choices13k (paper: first 2,000; 14,568 = all)")
    mode_rows: dict[str, int] = Field(
        {}, description="per-mode cap on rows (e.g. fewer rows for the costly CoT modes); missing modes use `rows`"
    )
    estimator: Literal["auto", "logprobs", "sample"] = Field(
        "auto",
        description="zero-shot A/B modes: read P(A), P(B) from one pass over the answer labels (logprobs) or count n "
        "samples (sample, the paper's protocol); auto = logprobs when the model offers label log-probabilities",
    )
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature; also the softmax temperature of the logprob shortcut (paper §3.1: 0.7)")
    samples: int = Field(0, ge=0, description="samples per row for the sampled estimator; 0 = the row's number of human participants n (paper)")
    zero_shot_max_tokens: int = Field(1, ge=1, description="max new tokens of a sampled zero-shot A/B answer (paper: 1)")
    cot_max_tokens: int = Field(256, ge=8, description="max new tokens of a chain-of-thought answer")
    cot_samples: int = Field(1, ge=1, description="completions per row in CoT modes (paper: n for most models, 1 for Claude)")
    aggregate_max_tokens: int = Field(64, ge=4, description="max new tokens of a zero-shot aggregate (JSON percentages) answer")
    aggregate_samples: int = Field(1, ge=1, description="completions per row in aggregate modes (their parsed P(A) are averaged)")
    render: Literal["faithful", "amb_aware"] = Field(
        "faithful",
        description="faithful: every probability shown, as in the paper's code; amb_aware: hide B's probabilities on rows "
        "where participants did not see them (Amb = True)",
    )
    drop_zero_prob: bool = Field(False, description="omit outcomes with probability 0 (the paper's code shows e.g. '$26.0 with 0.0% chance')")
    shuffle_outcomes: bool = Field(True, description="shuffle the outcome order within each machine (seeded per row; paper: unseeded)")
    sample_check_rows: int = Field(
        0, ge=0, description="also run the sampled estimator on the first K rows of individual_zero_shot to check the logprob shortcut"
    )
    fit_rows: int = Field(
        0, ge=0, description="training rows for the fitted reference models (EU, prospect theory): rows outside the analysed "
        "ones whose Problem is not analysed; 0 = all of them"
    )
    batch_size: int = Field(16, ge=1, description="rows per model call (and per resumable record batch)")
    sample_batch_size: int | None = Field(
        None, ge=1, description="rows per call in sampled modes (None: the model's own concurrency setting for "
        "endpoints, batch_size otherwise)")
    # -- inverse modelling (Jern, Lucas & Kemp 2017) --------------------------------------------
    framings: list[Framing] = Field(["positive", "negative"], description="candy (positive) and electric-shock (negative) framings (paper §4)")
    methods: list[Method] = Field(["zero_shot"], description="inverse prompting: zero_shot and/or cot (paper §4)")
    participants: int = Field(43, ge=1, description="simulated participants per framing x method, each judging all pairs (paper: 43, about the human N)")
    inverse_choices: int = Field(47, ge=3, le=47, description="number of the 47 choices used (evenly spread over the human order); 47 = all")
    inverse_estimator: Literal["auto", "logprobs", "sample"] = Field(
        "auto",
        description="zero-shot pairwise judgements: P('Choice 1') vs P('Choice 2') from one pass (logprobs) or one sampled "
        "answer per pair (sample, the paper's protocol); auto = logprobs when the model has exact log-likelihoods",
    )
    inverse_zero_shot_max_tokens: int = Field(50, ge=1, description="max new tokens of a sampled zero-shot pairwise answer (paper: 50)")
    inverse_cot_max_tokens: int = Field(500, ge=8, description="max new tokens of a CoT pairwise answer (paper: 500)")
    requery_max_tokens: int = Field(10, ge=1, description="max new tokens when an unparsed CoT answer is condensed by re-asking (paper: 10)")
    max_retries: int = Field(2, ge=0, description="re-samples of a CoT pair whose condensed answer still does not parse (paper: until parsed)")
    mapping_per: Literal["pair", "participant"] = Field(
        "pair", description="draw the item -> colour/location mapping per pair (the paper's code) or once per participant"
    )
    prior_samples: int = Field(500_000, ge=1000, description="prior samples of the rational models (Jern: 2e7; 5e5 suffices)")
    choice_scale: float = Field(1.0, gt=0.0, description="softmax scale s of the noisy-rational choice rule (Jern: 1)")
    tie_threshold: float = Field(5e-4, ge=0.0, description="rational-model scores closer than this share a rank (Jern's DIFFERENCE_THRESHOLD)")

    @field_validator("modes", "framings", "methods", "tasks")
    @classmethod
    def _nonempty_unique(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError("lists must not repeat entries")
        return v

    @field_validator("mode_rows")
    @classmethod
    def _known_modes(cls, v: dict[str, int]) -> dict[str, int]:
        known = set(Mode.__args__)  # type: ignore[attr-defined]
        bad = [k for k in v if k not in known]
        if bad:
            raise ValueError(f"unknown mode(s) {bad}; modes: {sorted(known)}")
        if any(n < 1 for n in v.values()):
            raise ValueError("mode_rows values must be positive")
        return v
