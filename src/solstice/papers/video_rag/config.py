from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig

Experiment = Literal["retrieval", "answers", "multi"]
Arm = Literal["raw", "fallback", "llm", "llm_dense"]


class Config(BaseConfig):
    experiments: list[Experiment] = Field(
        ["retrieval", "answers", "multi"],
        description="retrieval: SQuAD-as-video-library moment retrieval by arm; answers: grounded answers with "
        "validated citations; multi: HotpotQA two-moment questions (our protocol: the paper defines no metric)")
    arms: list[Arm] = Field(
        ["raw", "fallback", "llm"],
        description="raw: BM25 on the request; fallback: model-free keyword queries + RRF; llm: the query "
        "generator's queries + RRF (paper §3); llm_dense: llm + a MiniLM dense arm fused by RRF")
    retrieval_questions: int = Field(500, ge=1, description="SQuAD questions sampled (seeded) for the model-free arms")
    llm_questions: int = Field(200, ge=0, description="of those, questions also given to the query generator "
                               "(the first N of the sample; paired comparisons use them)")
    multi_questions: int = Field(200, ge=1, description="HotpotQA two-moment questions (seeded sample)")
    answer_questions: int = Field(100, ge=0, description="questions answered with citations")
    n_queries: int = Field(5, ge=1, description="keyword queries per request (paper: at least 5)")
    keywords_per_query: int = Field(5, ge=1, description="keywords per query (paper: about 5)")
    per_query_k: int = Field(20, ge=1, description="BM25 depth per query before fusion")
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant (Cormack et al. 2009)")
    raw_weight: float | None = Field(
        1.0, ge=0, description="weight of the raw request's ranking in the fusion (1.0: the plain RRF sum of the "
        "spec; None: as much as all generated queries together)")
    cap: int = Field(50, ge=1, description="moments kept after fusion (paper: 50)")
    iou: float = Field(0.5, ge=0, le=1, description="temporal IoU above which a worse overlapping moment is dropped")
    ks: list[int] = Field([5, 10, 50], description="recall cut-offs")
    answer_top: int = Field(5, ge=1, description="moments shown to the answer model")
    answer_budget: int = Field(1000, ge=64, description="token budget of the moments in the answer prompt (reader tokens)")
    answer_arm: Arm = Field("fallback", description="retrieval arm feeding the answer model")
    snap_seconds: float = Field(2.0, ge=0, description="a citation this close to a retrieved moment is snapped to it")
    max_new_tokens: int = Field(96, ge=1, description="answer tokens")
    query_max_new_tokens: int = Field(64, ge=1, description="query-generation tokens")
    batch_size: int = Field(8, ge=1, description="prompts per model call")
    encoder: str = Field("minilm", description="dense arm encoder (llm_dense)")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.llm_questions > self.retrieval_questions:
            raise ValueError("llm_questions cannot exceed retrieval_questions")
        if any(k < 1 for k in self.ks):
            raise ValueError("ks must be positive")
        if self.answer_arm not in self.arms and "answers" in self.experiments:
            raise ValueError(f"answer_arm '{self.answer_arm}' is not among arms {self.arms}")
        return self
