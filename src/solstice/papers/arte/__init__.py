"""ARTE: aligning a teacher with a student's preferences for tailored training data (arXiv 2406.19227).

Pipeline: `solstice.papers.arte.run` (IRT-selected preference items, drafts, one-shot scores, DPO
pairs, TRL DPO with LoRA, generation, student SFT through the training layer). The 2PL IRT fit is
the shared `solstice.metrics.irt`.
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.arte.config import Config


def _datasets(cfg):
    from solstice.papers.arte.run import datasets

    return datasets(cfg)


_SETTING = ("SmolLM2-135M as both teacher and student (degenerate: not the paper's 70B teacher / 2B student), "
            "binary BBH tasks (1 in `quick`, 3 in `small`), option log-likelihood scoring")
_SEED_CLAIMS = tuple(
    c for s in (0, 1, 2) for c in (
        Claim(f"aligned_beats_original_s{s}", f"the student trained on ARTE data beats the one trained on the "
              f"original teacher's data (seed {s}; paired over test items)", "Table 1 (+4.4 BBH avg)",
              check=f"aligned_minus_original_s{s} > 0", setting=_SETTING),
        Claim(f"aligned_beats_majority_s{s}", f"the ARTE-data student beats the majority-class baseline (seed {s}; "
              "spec success criterion)", "spec small-scale plan", check=f"aligned_minus_majority_s{s} > 0",
              setting=_SETTING),
    )
)

PAPER = PaperSpec(
    id="arte",
    title="Aligning Teacher with Student Preferences for Tailored Training Data Generation (ARTE)",
    arxiv="2406.19227",
    kind="training",
    version="1",
    config_cls=Config,
    run="solstice.papers.arte.run:run",
    roles={
        "teacher": Role(default="default", requires=frozenset({"generate"}),
                        description="drafts questions and rationales; aligned by DPO when local (hf:)"),
        "student": Role(default="default", requires=frozenset({"whitebox", "label_logprobs"}),
                        description="scores drafts in context and is fine-tuned on the generated data"),
    },
    claims=(
        Claim("paper_bbh_zero_shot", "Gemma-2B trained on ARTE data reaches 41.96 BBH average (0-shot) vs 37.55 with "
              "the original Llama-3-70B teacher's data", "Table 1",
              not_run="needs Llama-3-70B-Instruct as teacher and Gemma-2B as student (GPUs); "
              "`solstice run arte --model teacher=hf:LLAMA3_70B --model student=hf:GEMMA_2B`"),
        Claim("paper_ood", "out-of-domain average 51.82 (ARTE) vs 48.24 (best baseline)", "Table 3",
              not_run="needs PIQA/CSQA/ARC/GSM8K (offline unavailable) and the paper's models"),
        *_SEED_CLAIMS,
        Claim("dpo_starts_at_ln2", "the DPO loss at the first step is ln 2 (LoRA starts at zero: policy = reference)",
              "DPO objective (harness)", metric="dpo_first_loss_s0", paper_value=0.6931, tolerance=0.002,
              kind="harness"),
    ),
    scales={
        "smoke": Reproduction(
            "1 task, 8 val / 8 test items, 3 respondents, 4 drafts x 2 rationales, 1 seed; tiny generations",
            {"tasks": ["boolean_expressions"], "n_val": 8, "n_test": 8, "respondent_shots": [0, 1],
             "respondent_draws": 2, "respondent_styles": ["plain"], "k_pref": 4, "m_questions": 4,
             "n_rationales": 2, "max_question_calls": 1, "question_tokens": 32, "rationale_tokens": 16,
             "question_pairs": 2, "n_generate": 4, "answer_tokens": 16, "seeds": [0], "dpo_batch_size": 2},
            minutes=0.7,
        ),
        "small": Reproduction(
            "the spec's small-scale plan: 3 binary tasks, 100 val / 145 test items, 20 respondents, D_pref 20, 20 "
            "drafts x 4 rationales, 25 question pairs per task, 60 generated examples per task and teacher, seeds "
            "0/1/2 (about 3.5 h on an idle 2-core CPU, measured; most of it the 18 generation stages)",
            {},
            minutes=210.0,
        ),
        "quick": Reproduction(
            "what fitted a shared, overloaded 2-core CPU: 1 task (boolean_expressions), 16 val / 40 test items, "
            "3 respondents, D_pref 6, 6 drafts x 2 rationales, 3 question pairs, 6 generated examples per teacher "
            "and seed, 32-token generations, seeds 0/1/2",
            {"tasks": ["boolean_expressions"], "n_val": 16, "n_test": 40, "respondent_shots": [0, 1],
             "respondent_draws": 2, "respondent_styles": ["plain"], "k_pref": 6, "m_questions": 6,
             "n_rationales": 2, "max_question_calls": 2, "question_tokens": 40, "rationale_tokens": 32,
             "question_pairs": 3, "n_generate": 6, "answer_tokens": 32, "dpo_batch_size": 2},
            minutes=20.0,
        ),
    },
    datasets=_datasets,
    summary="Align a teacher with DPO on what a specific student learns from in context, then generate its data.",
)
