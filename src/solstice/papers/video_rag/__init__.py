"""Towards Retrieval Augmented Generation over Large Video Libraries (Tevissen, Guetari & Petitpont,
2024; arXiv:2406.14938). Video Library Question Answering: moments as timed text documents, an LLM's
keyword queries fused over BM25, and answers citing `[video_id start–end]`, validated against the
retrieved moments. No reference code or data exist; the evaluation protocol is ours."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.video_rag.config import Config


def _datasets(cfg: Config) -> list:
    from solstice.papers.video_rag import data as D

    out = []
    if {"retrieval", "answers"} & set(cfg.experiments):
        out.append(D.SQUAD24)
    if "multi" in cfg.experiments:
        out.append(D.HOTPOT_IRCOT)
    return out


_QUALITATIVE = ("the paper reports worked examples only (no metric, no data, undisclosed fine-tuned models); "
                "run `solstice run video_rag --model generator=openai:<model>@<url> --model answerer=...` "
                "to apply our protocol to a real model")

CLAIMS = (
    Claim("vlqa_examples", "VLQA: answers over a whole library grounded in specific moments, usable by editors",
          "§4 (qualitative)", not_run=_QUALITATIVE),
    Claim("multiquery_helps", "an LLM's keyword queries, fused, retrieve the gold moment more often than the "
          "raw request (paired, recall@10)", "§3 (the reason for the query generator)",
          check="squad_d_r10_llm_raw > 0", setting="SQuAD-24 as a video library; generator = the run's model"),
    Claim("multiquery_multi", "the same for two-moment questions (all-gold recall@10, paired)",
          "§3", check="hotpot_allgold_d_r10_llm_raw > 0", setting="HotpotQA two-moment proxy"),
    Claim("answers_grounded", "answers are grounded: at least 80% of answers cite a moment they were given "
          "(a valid or snapped citation)", "§3 (answers cite moments)", check="grounded_answer_rate >= 0.8",
          unparsed="answers_without_citation"),
    Claim("squad_library", "the SQuAD-24 library has 913 moments in 24 videos", "data fact",
          metric="library_moments", paper_value=913, tolerance=0, kind="harness"),
)

PAPER = PaperSpec(
    id="video_rag",
    title="Towards Retrieval Augmented Generation over Large Video Libraries",
    arxiv="2406.14938",
    kind="rag",
    version="1",
    config_cls=Config,
    run="solstice.papers.video_rag.run:run",
    roles={
        "generator": Role(default="default", description="turns a request into keyword queries"),
        "answerer": Role(default="default", description="writes answers citing [video_id start–end]"),
    },
    claims=CLAIMS,
    scales={
        "smoke": Reproduction(
            "SQuAD library: 200 questions by raw/fallback BM25, 8 also through the query generator; 100 HotpotQA "
            "two-moment questions (8 with the generator); 2 grounded answers",
            {"retrieval_questions": 200, "llm_questions": 8, "multi_questions": 100, "answer_questions": 2,
             "query_max_new_tokens": 48, "max_new_tokens": 64, "answer_budget": 600}, minutes=1),
        "small": Reproduction(
            "the spec's plan: 500 SQuAD questions (raw, fallback; 200 through SmolLM2 queries, with and without "
            "the MiniLM dense arm), 200 HotpotQA two-moment questions, 100 grounded answers",
            {"arms": ["raw", "fallback", "llm", "llm_dense"]}, minutes=30),
    },
    datasets=_datasets,
    summary="Moments as timed documents, multi-query RRF retrieval, answers with validated timestamp citations.",
)
