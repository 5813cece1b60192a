from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig

Experiment = Literal["parity", "retrieval", "squad", "reader"]
ADJACENCIES = ("links", "mentions", "sequence", "knn", "none")
COUNTERS = ("minilm", "words", "words*", "hf:", "tiktoken:")


class Config(BaseConfig):
    experiments: list[Experiment] = Field(
        ["parity", "retrieval", "squad", "reader"],
        description="what to run: metric parity on the released reader outputs, the retrieval experiment "
        "(passages vs grouped units vs random groups), same-source grouping on SQuAD, the long reader")
    dataset: Literal["hotpotqa", "custom"] = Field(
        "hotpotqa", description="hotpotqa: the 9,339-paragraph union of the HotpotQA files; custom: corpus_file + "
        "questions_file")
    corpus_file: str = Field("", description="custom corpus: JSONL of {docid, title, text[, links, source, position]} "
                             "or a DPR-style TSV (id, text, title)")
    questions_file: str = Field("", description="custom questions: JSONL of {question, answers[, id, supporting]}")
    include_amor: bool = Field(True, description="also ask the AMOR-file HotpotQA questions whose supporting "
                               "paragraphs are in the corpus (140 beyond the 500 IRCoT ones)")
    retrieval_questions: int = Field(0, ge=0, description="use N questions spread evenly over the list (0 = all)")
    # -- grouping (paper §2.1) --
    adjacency: str = Field(
        "mentions", description="how documents relate (paper: Wikipedia hyperlinks): links, mentions (text of A "
        "contains the title of B), sequence (consecutive chunks of one source), knn (embedding neighbours); "
        "combine with '+'")
    mention_case_sensitive: bool = Field(True, description="title mentions match case-sensitively")
    strip_disambiguation: bool = Field(True, description="a title 'X (film)' is also matched by 'X' (when X has >= 2 words)")
    knn_m: int = Field(5, ge=1, description="knn adjacency: neighbours per document")
    knn_threshold: float = Field(0.6, description="knn adjacency: minimum cosine similarity")
    group_caps: list[int] = Field([1000, 2000, 4000], description="token budgets of grouped units (paper: 4,000)")
    split_oversized: bool = Field(False, description="cut documents longer than the budget into pieces (paper: kept whole)")
    random_control: bool = Field(True, description="also score random groups with the member counts of the largest-cap units")
    maxp_ablation: bool = Field(True, description="also score the largest units by their first chunk only "
                                "(the truncation MaxP avoids)")
    seed_control: int = Field(0, description="seed of the random-group control")
    counter: str = Field("minilm", description="token counter for sizes and budgets: minilm, words, words*1.3, "
                         "hf:<tokenizer>, tiktoken:<enc> (paper: tiktoken cl100k)")
    # -- retrieval (paper §2.2) --
    retrievers: list[Literal["bm25", "dense"]] = Field(["bm25", "dense"], description="retrieval backends")
    encoder: str = Field("minilm", description="dense encoder: minilm (embedded all-MiniLM-L6-v2) or any "
                         "sentence-transformers id/folder (paper: BAAI/bge-large-en-v1.5)")
    query_prefix: str | None = Field(None, description="query instruction prefix (None: the encoder's known prefix)")
    dense_search: Literal["numpy", "faiss"] = Field("numpy", description="exact inner-product search backend")
    chunk_tokens: int = Field(200, ge=8, description="MaxP chunk size in counter tokens (paper: 512 for bge; "
                              "MiniLM's window is 256 word-pieces)")
    chunking: Literal["window", "document", "packed"] = Field("window", description="how units are cut into chunks")
    ks: list[int] = Field([1, 2, 4, 8], description="numbers of retrieved units (paper: 1-8 grouped units)")
    budgets: list[int] = Field([500, 1000, 2000, 4000, 8000], description="token budgets for equal-token comparison")
    depth: int = Field(200, ge=1, description="retrieval depth per query (paper: 200)")
    index_dir: str = Field("", description="keep indexes here and reuse them across runs ('' = in memory)")
    squad_caps: list[int] = Field([1000, 2000], description="SQuAD same-source grouping budgets")
    squad_questions: int = Field(0, ge=0, description="use N SQuAD questions spread evenly over the list (0 = all)")
    # -- reader (paper §2.3) --
    reader_questions: int = Field(100, ge=1, description="questions read, spread evenly over the question list")
    reader_budget: int = Field(2000, ge=64, description="context tokens given to the reader, in the reader's tokens "
                               "(paper: ~30K; SmolLM2's window is 8K)")
    reader_cap: int = Field(0, ge=0, description="grouping budget of the reader's units in the reader's tokens (0 = 85% of reader_budget, leaving room for the titles)")
    reader_retriever: Literal["bm25", "dense"] = Field("dense", description="retriever feeding the reader")
    reader_arms: list[Literal["passages", "units"]] = Field(["passages", "units"], description="contexts compared")
    reader_prompt: Literal["auto", "hotpotqa", "nq"] = Field("auto", description="reader prompt (auto: by dataset)")
    max_new_tokens: int = Field(64, ge=1, description="long-answer tokens (reference: 1000 for GPT-4o)")
    extraction: Literal["always", "long", "never"] = Field(
        "always", description="second-pass short-answer extraction: always (paper), only for long answers, never")
    extraction_max_new_tokens: int = Field(24, ge=1, description="short-answer tokens")
    extraction_demos: str = Field("", description="JSONL of {question, long_answer, answers} demonstrations "
                                  "('' = ours)")
    reader_batch_size: int = Field(2, ge=1, description="prompts per model call")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if any(k < 1 for k in self.ks) or any(b < 1 for b in self.budgets):
            raise ValueError("ks and budgets must be positive")
        if any(c < 1 for c in self.group_caps + self.squad_caps):
            raise ValueError("grouping caps must be positive")
        if self.dataset == "custom" and not (self.corpus_file and self.questions_file):
            raise ValueError("dataset=custom needs corpus_file and questions_file")
        bad = [k for k in self.adjacency.split("+") if k.strip() not in ADJACENCIES]
        if bad:
            raise ValueError(f"unknown adjacency '{bad[0]}'; use {', '.join(ADJACENCIES)} (combine with '+')")
        if not (self.counter in ("minilm", "words") or self.counter.startswith(COUNTERS[2:])):
            raise ValueError(f"unknown token counter '{self.counter}'; use minilm, words, words*<f>, hf:<tok>, tiktoken:<enc>")
        return self
