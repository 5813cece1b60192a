from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig

Scorer = Literal["logprob", "generate", "has_answer"]
Task = Literal["point", "pair", "contrast"]


class Config(BaseConfig):
    harness: bool = Field(True, description="check our scorer and label rule against the released DPA-RAG example "
                          "rows (needs dpa-rag-examples/, local only; false skips these harness checks)")
    # -- data and candidates (spec small plan step 1) --
    train_questions: int = Field(500, ge=1, description="training questions mined with the reader, drawn (seeded) "
                                 "from the 80% split (spec small plan: 500; paper: the full training sets)")
    test_questions: int = Field(0, ge=0, description="held-out questions evaluated; 0 = all of the 20% split "
                                "(spec small plan: all)")
    test_share: float = Field(0.2, gt=0.0, lt=1.0, description="share of questions held out, split by question "
                              "(spec small plan: 80/20)")
    split_seed: int = Field(0, description="seed of the train/test split and of the question draws")
    corpus_docs: int = Field(0, ge=0, description="passages in the corpus: 0 = every distinct gold passage of the "
                             "2,655 NQ-open oracle questions (spec); n > 0 = the used questions' gold passages topped "
                             "up to n (seeded) — for quick runs only")
    retrieval_k: int = Field(10, ge=1, description="top-k of each retriever, BM25 and MiniLM (spec: 10; paper: "
                             "DPR top-100)")
    candidates: int = Field(10, ge=2, description="candidates per question: the reciprocal-rank fusion of the two "
                            "top-k lists, cut here; this fused order is the 'retriever order' (spec: 10)")
    encoder: str = Field("minilm", description="dense retriever (sentence-transformers id or folder; paper: DPR)")
    # -- preference mining (spec §2) --
    scorer: Scorer = Field("logprob", description="reader-preference labels: logprob = Δ log p(gold | q, d) − log "
                           "p(gold | q) with thresholds ±tau (ours, one pass per pair); generate = the paper's rule "
                           "on closed-book vs with-document answers (Hits, then F1); has_answer = the document "
                           "contains a gold answer (zero-cost baseline, no reader)")
    tau: float = Field(1.0, ge=0.0, description="logprob scorer: |Δ| (nats) above which a document is aligned / "
                       "unaligned (ours; not in the paper)")
    gen_rule_questions: int = Field(200, ge=0, description="also label this many training questions with the "
                                    "paper's generation rule and report agreement with the default scorer (spec "
                                    "small plan: 200 × 5 docs; 0 = off)")
    gen_rule_docs: int = Field(5, ge=1, description="candidates per question for the generation-rule comparison")
    max_new_tokens: int = Field(32, ge=1, description="reader answer tokens (generation rule and evaluation)")
    # -- query augmentation (spec §3-4) --
    augment_queries: int = Field(50, ge=0, description="training queries rewritten with the five operators "
                                 "(spec small plan: 50; paper: all)")
    augment_filter: str = Field("minilm", description="consistency filter: 'minilm' (cosine to the original ≥ "
                                "augment_threshold, offline) or an NLI model id/folder (paper: "
                                "MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7; contradicted rewrites "
                                "dropped)")
    augment_threshold: float = Field(0.6, ge=-1.0, le=1.0, description="MiniLM cosine threshold (spec: 0.6)")
    augment_max_new_tokens: int = Field(64, ge=1, description="tokens per rewrite")
    train_on_augmented: bool = Field(True, description="add the kept rewrites (inheriting documents and labels) "
                                     "to the reranker's training records (paper)")
    # -- reranker (spec §5) --
    reranker_init: str = Field("minilm", description="cross-encoder initial weights: 'minilm' (the embedded "
                               "all-MiniLM-L6-v2, new 1-logit head; spec) or a CrossEncoder id/folder (paper: "
                               "BAAI/bge-reranker-large)")
    tasks: list[Task] = Field(["point", "pair", "contrast"], description="reranker tasks (paper: all three)")
    weighting: Literal["sum", "mgda"] = Field("sum", description="task weights (paper: MGDA-UB; spec: sum on CPU)")
    compare_weighting: bool = Field(True, description="also train a 1-epoch reranker with the other weighting on "
                                    "reader labels and report it (spec small plan step 3)")
    epochs: int = Field(2, ge=1, description="reranker epochs (paper: 10, best validation epoch; spec: 2)")
    lr: float = Field(1e-5, gt=0.0, description="AdamW learning rate (paper: 1e-5)")
    rr_batch: int = Field(4, ge=1, description="training records per step (paper: 4 queries)")
    max_length: int = Field(256, ge=16, description="cross-encoder tokens per (query, document) (paper 512; spec "
                            "256)")
    list_size: int = Field(4, ge=2, description="documents in a record's ranked list (paper: 4)")
    # -- evaluation (spec §4) --
    reader_k: list[int] = Field([1, 3], description="documents given to the reader (paper: top-3)")
    batch_size: int = Field(8, ge=1, description="prompts per reader call")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not self.reader_k or min(self.reader_k) < 1 or max(self.reader_k) > self.candidates:
            raise ValueError(f"reader_k must lie in 1..candidates={self.candidates}")
        if self.candidates > 2 * self.retrieval_k:
            raise ValueError("candidates cannot exceed the union of two top-retrieval_k lists")
        if not self.tasks:
            raise ValueError("tasks must not be empty")
        return self
