"""Base vs Instruct LLMs in RAG (arXiv 2406.14972): one harness over any base/instruct model pair."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.base_vs_instruct_rag.config import Config


def _datasets(cfg: Config) -> list:
    from solstice.papers.base_vs_instruct_rag import data as D

    out = [D.NQ_TEST, D.NQ_ORACLE]
    if cfg.retrieval in ("bm25", "dense") or (cfg.retrieval == "file" and not cfg.corpus_file):
        out += [D.DISTRACTORS[n] for n in cfg.distractors]
    return out


_PAIRS = ("needs the paper's 7-8B base/instruct pairs (Llama-2/3, Mistral, Falcon) and Contriever top-10 over 21M "
          "Wikipedia passages; run e.g. `solstice run base_vs_instruct_rag --scale pair --model "
          "base=openai:<base>@<url>?mode=completions --model instruct=openai:<instruct>@<url>?mode=completions`")
_G = "NQ-open test file (2,889 questions)"
_NEEDS_BASE = ("no base checkpoint is available offline; with a base model, `solstice run base_vs_instruct_rag --scale "
               "pair --model base=hf:HuggingFaceTB/SmolLM2-135M --model instruct=hf:HuggingFaceTB/SmolLM2-135M-Instruct` "
               "reports the paired differences task1_paired_base_minus_instruct_{template,plain} with their CIs")

CLAIMS = (
    Claim("base_beats_instruct_avg", "base LLMs beat their instruct counterparts by ~20% on average in RAG accuracy "
          "(NQ-open, TriviaQA; 4 model pairs)", "abstract; Table 1", not_run=_PAIRS),
    Claim("base_beats_instruct_template", "the base model answers more questions correctly than the instruct model in "
          "its chat template, on the same questions (Task Instruction I)", "§4, Table 1", not_run=_NEEDS_BASE),
    Claim("base_beats_instruct_plain", "the base model beats the instruct model without its template, same questions",
          "§4, Table 1", not_run=_NEEDS_BASE),
    # -- harness checks (data facts and degenerate readers; no model involved) --
    Claim("gold_in_passage", "a gold answer occurs in the gold passage for 2,819 / 2,889 questions (paper's normaliser)",
          _G, metric="data_gold_in_passage", paper_value=2819 / 2889, tolerance=1e-9, kind="harness"),
    Claim("gold_in_passage_delete", "2,775 / 2,889 when punctuation is deleted instead of spaced", _G,
          metric="data_gold_in_passage_punct_delete", paper_value=2775 / 2889, tolerance=1e-9, kind="harness"),
    Claim("gold_in_passage_token", "2,817 / 2,889 on token boundaries", _G,
          metric="data_gold_in_passage_token", paper_value=2817 / 2889, tolerance=1e-9, kind="harness"),
    Claim("gold_in_passage_raw", "2,694 / 2,889 as a raw case-sensitive substring", _G,
          metric="data_gold_in_passage_raw", paper_value=2694 / 2889, tolerance=1e-9, kind="harness"),
    Claim("oracle_gold", "oracle reader on the gold passage: accuracy 2,819 / 2,889", _G,
          metric="gold_oracle_substring", paper_value=2819 / 2889, tolerance=1e-9, kind="harness"),
    Claim("oracle_rejects", "oracle reader: negative rejection 100% on the answer-absent questions", _G,
          metric="gold_oracle_negative_rejection", paper_value=1.0, tolerance=1e-9, kind="harness"),
    Claim("oracle_no_parametric", "oracle reader: parametric recall 0", _G,
          metric="gold_oracle_parametric_recall", paper_value=0.0, tolerance=1e-9, kind="harness"),
    Claim("nores_unguarded", "always-NO-RES reader: 2 / 2,889 correct under plain substring matching ('*' and 'S')",
          _G, metric="gold_nores_substring_unguarded", paper_value=2 / 2889, tolerance=1e-9, kind="harness"),
    Claim("nores_guarded", "always-NO-RES reader: 1 / 2,889 with the empty-answer guard", _G,
          metric="gold_nores_substring", paper_value=1 / 2889, tolerance=1e-9, kind="harness"),
    Claim("nores_token", "always-NO-RES reader: 0 with token-boundary matching", _G,
          metric="gold_nores_token_contains", paper_value=0.0, tolerance=1e-9, kind="harness"),
    Claim("echo_unguarded", "echo-the-question reader: 58 / 2,889", _G,
          metric="gold_echo_substring_unguarded", paper_value=58 / 2889, tolerance=1e-9, kind="harness"),
    Claim("echo_guarded", "echo-the-question reader: 57 / 2,889 with the guard", _G,
          metric="gold_echo_substring", paper_value=57 / 2889, tolerance=1e-9, kind="harness"),
    Claim("oracle_retrieved", "oracle reader on the retrieved documents: accuracy = answer-in-documents rate",
          "spec", check="task1_oracle_substring == task1_ans_in_docs", kind="harness"),
)

_SMALL = {"conditions": ["instruct_plain", "instruct_template"], "questions": 300, "proof_questions": 100,
          "query_only_questions": 300}

PAPER = PaperSpec(
    id="base_vs_instruct_rag",
    title="A Tale of Trust and Accuracy: Base vs. Instruct LLMs in RAG Systems",
    arxiv="2406.14972",
    kind="rag",
    version="1",
    config_cls=Config,
    run="solstice.papers.base_vs_instruct_rag.run:run",
    roles={"instruct": Role(default="default", description="the instruct model (conditions 2 and 3)"),
           "base": Role(default="default", description="the base model (condition 1); must differ from the instruct "
                        "model, e.g. hf:HuggingFaceTB/SmolLM2-135M beside hf:HuggingFaceTB/SmolLM2-135M-Instruct")},
    claims=CLAIMS,
    scales={
        "smoke": Reproduction(
            "checks on all 2,889 questions; BM25 top-2 over the gold passages; the two instruct conditions on 2 "
            "task1, 1 proof and 2 query_only questions (the embedded SmolLM2-135M-Instruct)",
            {"conditions": ["instruct_plain", "instruct_template"], "questions": 2, "proof_questions": 1,
             "query_only_questions": 2, "k": 2, "distractors": [], "proof_max_new_tokens": 24, "batch_size": 2},
            minutes=1),
        "small": Reproduction(
            "the spec's plan: BM25 top-5 over 2,841 gold passages + SQuAD/HotpotQA distractors, reversed and "
            "deduplicated; instruct without / with template on 300 task1, 100 proof, 300 query_only questions",
            _SMALL, minutes=45),
        "pair": Reproduction(
            "the small plan with all three conditions: needs --model base=... and --model instruct=...",
            {"questions": 300, "proof_questions": 100, "query_only_questions": 300}, minutes=60),
    },
    datasets=_datasets,
    summary="Base vs instruct readers (plain prompt, no template, chat template) on NQ-open RAG, with trust metrics.",
)
