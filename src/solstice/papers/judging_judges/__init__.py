"""Judging the Judges: Evaluating Alignment and Vulnerabilities in LLMs-as-Judges (arXiv:2406.12624).

Judge-human agreement of the paper's released TriviaQA verdicts (PA, Cohen's kappa, Scott's pi,
Krippendorff's alpha, leniency, exam-taker rankings), and a live judge (any model, default
SmolLM2-135M-Instruct) on a synthetic exam with known labels, with the paper's vulnerability probes.
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.judging_judges.config import Config


def _datasets(cfg: Config):
    from solstice.papers.judging_judges.data import RELEASES

    return [RELEASES[cfg.release]]


V1 = "v1 abstract (official README)"
LATER = "abstract, v2+ / GEM 2025"

PAPER = PaperSpec(
    id="judging_judges",
    title="Judging the Judges: Evaluating Alignment and Vulnerabilities in LLMs-as-Judges",
    arxiv="2406.12624",
    kind="evaluation",
    version="1",
    config_cls=Config,
    run="solstice.papers.judging_judges.run:run",
    roles={"judge": Role(default="default", requires=frozenset({"generate"}),
                         description="the live judge (log-prob verdicts when the backend offers them)")},
    claims=(
        Claim("kappa_gap", "JudgeLM-7B and Contains have up to 34 points lower human alignment than the best judges",
              V1, metric="kappa_gap_best_vs_rankers", paper_value=0.34, tolerance=0.03,
              setting="released v1 verdicts; Cohen's kappa of the best of GPT-4/Llama3-70B minus the lower of JudgeLM/Contains", kind="harness"),
        Claim("top_aligned", "Llama-3-70B and GPT-4 Turbo align best with humans (kappa above every other judge)", V1,
              check="kappa_top2_min > kappa_rest_max", setting="released v1 verdicts, 3,595 rows", kind="harness"),
        Claim("rank_outperformed", "in ranking the 9 exam-takers, JudgeLM-7B and Contains outperform GPT-4 Turbo and "
              "Llama-3-70B", V1, check="rank_rho_rankers_min > rank_rho_top_max",
              setting="Spearman rho of the 9 exam-taker scores vs the human scores", kind="harness"),
        Claim("pa_hides_gap", "judges with high percent agreement can still assign vastly different scores", V1,
              check="pa_hides_gap >= 10",
              setting="largest exam-taker score deviation (points) among judges with PA >= 0.85; 10 points is our reading of 'vastly'", kind="harness"),
        Claim("best_within_5", "even the best judges' scores differ from human scores by up to 5 points", LATER,
              check="max_abs_dev_GPT-4 <= 5",
              setting="later versions judge with 13 models and other prompts; checked here on v1's GPT-4 column", kind="harness"),
        Claim("leniency", "judges show a tendency toward leniency (P_+ > 0.5)", LATER,
              check="p_plus_median_llm > 0.5", setting="median P_+ of the 9 v1 LLM judges (leniency model, §5)", kind="harness"),
        Claim("leniency_live", "judges lean toward leniency: the judge under test says 'correct' more often than "
              "its errors would explain (P_+ > 0.5)", "§5 (leniency model)", check="live_p_plus > 0.5",
              unparsed="live_unparsed",
              setting="the live judge on our synthetic exam (known labels); P_+ of the leniency model, CI over items"),
        Claim("human_iaa", "inter-human agreement is high (Cohen's kappa about 0.96; unverified value)", "§3",
              not_run="the release holds one human label per answer, so inter-human agreement cannot be recomputed"),
        Claim("rejudge_real_answers", "judges re-run on the 9 exam-takers' real answers", "§4",
              not_run="the exam-takers' answers are not released (the CSV's response column holds the exam prompt)"),
    ),
    scales={
        "smoke": Reproduction("released-verdict analysis (200 resamples) + 6 questions x 5 answers judged live, "
                              "probes on 1 question", {"n_resamples": 200, "exam_questions": 6, "probe_questions": 1,
                                                        "generate_items": 4, "batch_size": 8}, minutes=2),
        "small": Reproduction("released-verdict analysis + the full 2,000-answer synthetic exam judged live, probes on "
                              "80 questions x 5 answer kinds = 400 items (5 templates, no reference, reversed references, verbose "
                              "answers; the spec's 5 x 400), 40 generated verdicts", {"probe_questions": 80}, minutes=60),
    },
    datasets=_datasets,
    summary="LLM-as-judge agreement with humans on TriviaQA: kappa / pi / alpha / PA, rankings, leniency, probes.",
)
