"""Semantic Entropy Probes: Robust and Cheap Hallucination Detection in LLMs (Kossen, Han,
Razzak, Schut, Malik, Gal; arXiv 2406.15927)."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.semantic_entropy_probes.config import Config

GEO = ["capital_of", "currency_of", "continent_of", "country_of_city"]


def _datasets(cfg: Config):
    from solstice.papers.semantic_entropy_probes.questions import _check, data_sources

    _check([*cfg.datasets, *cfg.stress_datasets])
    return data_sources(list(cfg.datasets))  # stress sets are optional and resolved in the run


CLAIMS = (
    Claim("se_beats_naive", "Semantic entropy detects wrong answers better than naive (token) entropy",
          "§5, Fig. 4 (after Farquhar et al. 2024)", check="se_minus_naive_auroc > 0",
          setting="paired over the same questions (AUROC difference, stratified bootstrap)"),
    Claim("sep_predicts_se", "A linear probe on one generation's hidden states predicts binarised SE "
          "(best mid-to-late layers)", "§5.1, Fig. 3", check="sep_se_auroc_id_slt >= 0.7"),
    Claim("se_before_generation", "SE is already linearly decodable at the token before generation",
          "§5.1, Fig. 3 (TBG)", check="sep_se_auroc_id_tbg > 0.5"),
    Claim("slt_ge_tbg", "The second-last token predicts SE at least as well as the token before generation "
          "(our operationalisation: no more than 0.05 AUROC below)",
          "§5.1 (labels swapped in the reference code, issue #3)", check="sep_se_slt_minus_tbg_id > -0.05",
          setting="SLT minus TBG AUROC, paired over the same test questions"),
    Claim("sep_close_id", "In distribution, SEPs detect hallucinations nearly as well as accuracy probes "
          "(our operationalisation: within 0.05 AUROC)", "§5.2, Fig. 5", check="sep_minus_acc_id_slt > -0.05"),
    Claim("sep_ood", "Out of distribution, SEPs detect hallucinations better than accuracy probes",
          "§5.3, Fig. 6", check="sep_minus_acc_ood_slt > 0"),
    Claim("sep_ood_tbg", "The OOD advantage holds for TBG probes", "§5.3, Fig. 6",
          check="sep_minus_acc_ood_tbg > 0"),
    Claim("cheap", "SEPs remove the 5-10x sampling cost of SE at test time", "§1, §5",
          not_run="a speed ratio: measured by bench/semantic_entropy_probes_cost.py (see the README)"),
    Claim("big_models", "SEP AUROCs for Llama-2-7B/70B, Mistral-7B and Phi-3 on TriviaQA, SQuAD, BioASQ, NQ-open",
          "§5, Figs. 3-6", not_run="needs 7B-70B models on a GPU; run with --model hf:<dir> and datasets=[...]"),
    Claim("long_form", "SEPs detect hallucinations in long-form generations (Llama-2-70B, Llama-3-70B)",
          "§5.4", not_run="needs 70B models and GPT-4/GPT-3.5 judges"),
)

PAPER = PaperSpec(
    id="semantic_entropy_probes",
    title="Semantic Entropy Probes: Robust and Cheap Hallucination Detection in LLMs",
    arxiv="2406.15927",
    kind="uncertainty",
    version="1",
    config_cls=Config,
    run="solstice.papers.semantic_entropy_probes.run:run",
    roles={
        "target": Role("default", frozenset({"generate"}), "the model whose answers are scored (hf for probes)"),
        "judge": Role("default", frozenset({"label_logprobs"}), "entailment judge, used only when judge=llm"),
    },
    claims=CLAIMS,
    scales={
        "smoke": Reproduction(
            "4 GeoNames sets x 8 questions, 5 samples, 2-fold probes", minutes=2.0,
            overrides={"n_per_dataset": 8, "n_samples": 5, "max_new_tokens": 12, "cv_folds": 2,
                       "n_bootstrap": 200, "batch_size": 8}),
        "small": Reproduction(
            "4 GeoNames sets x 200 questions (+ NQ-open/TriviaQA stress sets when present), 10 samples, "
            "5-fold probes, embedding-judge ablation", minutes=75.0,
            overrides={"n_per_dataset": 200, "max_new_tokens": 16, "cv_folds": 5,
                       "stress_datasets": ["nq_open", "triviaqa_400"], "n_stress": 50,
                       "ablation_judges": ["embedding"], "min_task_accuracy": 0.1, "max_task_accuracy": 0.9}),
    },
    datasets=_datasets,
    summary="Semantic entropy over sampled answers, and linear probes on one generation's hidden states "
            "that predict it (TBG and SLT), with in- and out-of-distribution hallucination AUROCs.",
)
