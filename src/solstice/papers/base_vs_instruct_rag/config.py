from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig

Condition = Literal["base", "instruct_plain", "instruct_template"]
Task = Literal["task1", "proof", "query_only"]


class Config(BaseConfig):
    conditions: list[Condition] = Field(
        ["base", "instruct_plain", "instruct_template"],
        description="(1) base model + plain prompt, (2) instruct model + the same plain prompt, (3) instruct model "
        "in its chat template (paper §3); 'base' needs --model base=<a base model>")
    tasks: list[Task] = Field(["task1", "proof", "query_only"], description="Task Instruction I (extractive, NO-RES), "
                              "Task Instruction II (answer + Proof, one example), closed-book query_only (paper §3)")
    questions: int = Field(300, ge=1, description="NQ-open test questions for task1, spread evenly over the 2,889 "
                           "(paper: all; spec small plan: 300)")
    proof_questions: int = Field(100, ge=1, description="questions for the proof task (spec small plan: 100)")
    query_only_questions: int = Field(300, ge=1, description="questions for closed-book query_only (spec: 300)")
    rejection: bool = Field(True, description="instruction asks for NO-RES when no document holds the answer "
                            "(False: the paper's _no_rejection variant)")
    token_cap: bool = Field(True, description="NQ instruction says '(max 5 tokens)' (paper: NQ yes, TriviaQA no)")
    retrieval: Literal["bm25", "dense", "gold", "file"] = Field(
        "bm25", description="bm25 / dense over the mini-corpus (paper: Contriever over 21M Wikipedia passages), gold "
        "(the gold passage alone), file (a precomputed top-k file with corpus ids)")
    k: int = Field(5, ge=1, description="retrieved documents per question (paper main: 10; spec small plan: 5)")
    encoder: str = Field("minilm", description="dense encoder (sentence-transformers id or folder; paper: Contriever)")
    distractors: list[Literal["squad", "hotpotqa"]] = Field(
        ["squad", "hotpotqa"], description="distractor paragraphs added to the 2,841 gold passages")
    topk_file: str = Field("", description="retrieval=file: JSONL {id|example_id|question, ctxs: [ids or {id, title?, "
                           "text?, score?}]}, best first")
    corpus_file: str = Field("", description="retrieval=file: the corpus the ids refer to (JSONL {docid|id, title, text} "
                             "or DPR TSV); '' = the mini-corpus")
    answer_absent: float = Field(0.0, ge=0.0, le=1.0, description="bm25/dense: share of questions (seeded) whose retrieved "
                                 "documents skip every passage holding a gold answer, so that negative rejection and "
                                 "parametric recall have a subset to measure on (paper: 0, open retrieval misses often)")
    absent_depth: int = Field(50, ge=0, description="extra ranks searched to refill k documents without the answer")
    seed: int = Field(0, description="seed of the answer-absent selection")
    reverse: bool = Field(True, description="documents in reverse rank order, best last next to the question (paper)")
    dedup: bool = Field(True, description="skip duplicate passages (hash of title + text; paper)")
    system_slot: Literal["auto", "system", "merge"] = Field(
        "auto", description="condition (3): instruction in the system message, or merged into the user turn (paper: "
        "merged for Mistral, which has no system role); auto tests the template (endpoints: system)")
    max_new_tokens: int = Field(15, ge=1, description="answer tokens (paper: NQ 15)")
    proof_max_new_tokens: int = Field(200, ge=1, description="proof-task tokens (paper: 200)")
    batch_size: int = Field(4, ge=1, description="prompts per model call")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not self.conditions or not self.tasks:
            raise ValueError("conditions and tasks must not be empty")
        if self.retrieval == "file" and not self.topk_file:
            raise ValueError("retrieval=file needs topk_file")
        return self
