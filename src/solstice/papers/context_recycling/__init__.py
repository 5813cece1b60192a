"""Recycling the context (arXiv 2406.13632): demonstrations generated from the reader's own long context."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.context_recycling.config import Config


def _datasets(cfg: Config) -> list:
    from solstice.papers.context_recycling import data as D

    out = []
    if "hotpotqa" in cfg.experiments:
        out.append(D.HOTPOT_IRCOT)
    if "sweep" in cfg.experiments and cfg.sweep_questions:
        out.append(D.NQ_ORACLE)
    return out


_BIG = ("needs the paper's long-context readers (Gemini-family and 7B+ open models) over its QA sets; the same "
        "harness runs against an endpoint: `solstice run context_recycling --scale small --model "
        "openai:<7B-instruct>@<url>`")

CLAIMS = (
    Claim("avg_gain", "recycled demos raise QA accuracy by +16 points on average across models (v3 abstract; +23% "
          "in v1)", "abstract", not_run=_BIG),
    Claim("middle_gain", "gains are largest when the answer sits in the middle of the context", "§5", not_run=_BIG),
    Claim("recycled_beats_zero_shot", "recycled demos (with evidence) beat zero-shot with the same evidence "
          "instruction on HotpotQA accuracy, same questions", "§4",
          check="hp_paired_recycled_minus_zero_shot_accuracy > 0", setting="SmolLM2-135M-Instruct"),
    Claim("recycled_evidence_f1", "recycled demos improve paragraph attribution (evidence F1) over zero-shot",
          "§4 (evidence IDs)", check="hp_paired_recycled_minus_zero_shot_ev_f1 > 0", setting="SmolLM2-135M-Instruct"),
    Claim("evidence_line_helps", "demos with the evidence line beat the same demos without it", "§4 ablation",
          check="hp_paired_recycled_minus_recycled_noev_accuracy > 0", setting="SmolLM2-135M-Instruct"),
    Claim("cheaper_than_icl", "recycled prompts need far fewer tokens than classic ICL with foreign demos (k "
          "placeholder demos per question, the reader's tokenizer)", "§3 (cost argument)",
          check="hp_layout_tokens_icl > hp_layout_tokens_recycled", kind="harness"),
    Claim("paragraphs_once", "every paragraph appears exactly once in every built prompt", "spec check",
          check="hp_prompt_paragraphs_once >= 1", kind="harness"),
    Claim("oracle_scores_one", "a scripted oracle reader (gold ids + gold answer) scores 1.0 on evidence F1",
          "spec check", check="hp_oracle_ev_f1 >= 1", kind="harness"),
    Claim("oracle_accuracy_one", "the scripted oracle reader scores accuracy 1.0", "spec check",
          check="hp_oracle_accuracy >= 1", kind="harness"),
    Claim("sweep_mapping", "the position sweep keeps the gold id on the gold passage", "spec check",
          check="sweep_gold_mapping >= 1", kind="harness"),
    Claim("parse_ok", "recycled prompts parse (< 10% failures; spec success criterion)", "spec small plan",
          check="hp_recycled_parse_failure < 0.1", kind="harness"),
    Claim("demo_survival", "at least 70% of generated demos survive validation (spec success criterion)",
          "spec small plan", check="demo_survival >= 0.7", kind="harness"),
)

PAPER = PaperSpec(
    id="context_recycling",
    title="Can Few-shot Work in Long-Context? Recycling the Context to Generate Demonstrations",
    arxiv="2406.13632",
    kind="rag",
    version="1",
    config_cls=Config,
    run="solstice.papers.context_recycling.run:run",
    roles={"reader": Role(default="default", description="the long-context reader"),
           "generator": Role(default="default", description="writes the demos (the reader itself by default)")},
    claims=CLAIMS,
    scales={
        "smoke": Reproduction(
            "2 HotpotQA questions, k = 1 demo (at most 2 generator calls per context), all four arms (ICL on 1 "
            "question); the NQ sweep on 1 question with 3 passages at positions 1 and 3",
            {"questions": 2, "icl_questions": 1, "k": 1, "sweep_questions": 1, "sweep_docs": 3,
             "sweep_positions": [1, 3], "max_new_tokens": 16, "demo_max_new_tokens": 32, "demo_retries": 0,
             "demo_max_calls": 2},
            minutes=1),
        "small": Reproduction(
            "the spec's plan: 100 HotpotQA questions (k = 3; ICL on 50) and a 50-question NQ sweep over 10 passages "
            "with the gold at 1 / 5 / 10; at most 9 generator calls per context (k demos x 3 tries: the spec's cost "
            "assumes about 3 calls, an uncapped 135M generator needed 58)", {"demo_max_calls": 9}, minutes=120),
    },
    datasets=_datasets,
    summary="Generate demos from the context itself, show the context once, ask for evidence IDs then the answer.",
)
